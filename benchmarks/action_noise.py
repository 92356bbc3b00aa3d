"""How a teacher's success falls with noise on its actions: the precision a clone needs.

  python benchmarks/action_noise.py --teacher generalization --triplet triplet3 \
      --stddevs 0,0.02,0.05,0.1,0.15 --episodes 200 --workers 2

A student is its teacher plus a cloning error. This runs the teacher on the
evaluation seeds every student is evaluated on, with its mean action plus
Gaussian noise of a fixed stddev per dimension (clipped, like every action;
stddev 0 is the deterministic teacher the students are compared with), and
prints one JSON line per stddev: success with its Wilson 95 % interval, and,
paired by seed with stddev 0, in how many episodes both, only the noisy or only
the noise-free teacher, or neither succeed. Each episode draws its noise from a
generator seeded by the episode (`envs.rollout`), so every stddev scales the
same draws: the rows differ by the noise's size only.
"""

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from envs import evaluate  # pylint: disable=g-import-not-at-top
from envs import policy as policy_lib  # pylint: disable=g-import-not-at-top
from envs import rollout as rollout_lib  # pylint: disable=g-import-not-at-top
from envs import specs  # pylint: disable=g-import-not-at-top
from envs.stacking import make_env  # pylint: disable=g-import-not-at-top
from envs.teachers import TEACHER_NAMES, make_teacher  # pylint: disable=g-import-not-at-top


@dataclasses.dataclass(frozen=True)
class FixedNoise:
  """The wrapped policy's mean with a fixed stddev in place of its own."""
  policy: policy_lib.Policy
  stddev: float

  @property
  def name(self) -> str:
    return f'{self.policy.name}+N(0,{self.stddev:g})'

  def distribution(self, observation):
    dist = self.policy.distribution(observation)
    return policy_lib.GaussianAction(dist.mean, np.full_like(dist.mean, self.stddev))


def _chunk(task) -> list[tuple[float, int, bool, float]]:
  teacher, triplet, stddev, start, stop, episode_steps = task
  env = make_env(triplet, episode_steps=episode_steps)
  policy = FixedNoise(make_teacher(teacher, triplet), stddev)
  mode = 'stochastic' if stddev > 0 else 'deterministic'
  out = []
  for i in range(start, stop):
    traj = rollout_lib.rollout(env, policy, mode, evaluate.eval_seed(triplet, i))
    out.append((stddev, i, traj.success, traj.episode_return))
  env.close()
  return out


def measure(teacher: str, triplet: str, stddevs: list[float], episodes: int,
            workers: int = 1, episode_steps: int = specs.EPISODE_STEPS,
            chunk: int = 10) -> list[dict]:
  """One row per stddev (0 added if missing: the pairing's reference)."""
  if any(s < 0 for s in stddevs):
    raise ValueError(f'--stddevs must be >= 0, got {stddevs}.')
  stddevs = sorted(set(stddevs) | {0.0})
  tasks = [(teacher, triplet, s, i, min(i + chunk, episodes), episode_steps)
           for s in stddevs for i in range(0, episodes, chunk)]
  if workers > 1:
    with multiprocessing.get_context('spawn').Pool(workers) as pool:
      results = [r for rows in pool.imap_unordered(_chunk, tasks) for r in rows]
  else:
    results = [r for task in tasks for r in _chunk(task)]
  won = {(s, i): success for s, i, success, _ in results}
  returns = {}
  for s, _, _, episode_return in results:
    returns.setdefault(s, []).append(episode_return)
  rows = []
  for s in stddevs:
    wins = sum(won[(s, i)] for i in range(episodes))
    base = [won[(0.0, i)] for i in range(episodes)]
    noisy = [won[(s, i)] for i in range(episodes)]
    rows.append({
        'figure': 'success_under_action_noise', 'teacher': teacher, 'triplet': triplet,
        'stddev': s, 'episodes': episodes, 'successes': wins,
        'success_rate': round(wins / episodes, 4),
        'ci95': [round(x, 4) for x in evaluate.wilson_interval(wins, episodes)],
        'mean_return': round(float(np.mean(returns[s])), 3),
        'paired_with_stddev_0': {
            'both': sum(b and n for b, n in zip(base, noisy)),
            'noisy_only': sum(n and not b for b, n in zip(base, noisy)),
            'noise_free_only': sum(b and not n for b, n in zip(base, noisy)),
            'neither': sum(not b and not n for b, n in zip(base, noisy))}})
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--teacher', default='generalization', choices=TEACHER_NAMES)
  parser.add_argument('--triplet', default='triplet3')
  parser.add_argument('--stddevs', default='0,0.02,0.05,0.1,0.15',
                      help='comma-separated noise stddevs (0 is always added)')
  parser.add_argument('--episodes', type=int, default=200)
  parser.add_argument('--episode_steps', type=int, default=specs.EPISODE_STEPS)
  parser.add_argument('--workers', type=int, default=1)
  args = parser.parse_args(argv)
  try:
    stddevs = [float(s) for s in args.stddevs.split(',') if s.strip()]
    rows = measure(args.teacher, args.triplet, stddevs, args.episodes, args.workers,
                   args.episode_steps)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  for row in rows:
    print(json.dumps(row))
  return 0


if __name__ == '__main__':
  sys.exit(main())
