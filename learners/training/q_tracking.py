r"""Does a run's critic track the return? Q against the discounted return-to-go.

  python -m learners.training.q_tracking RUN_DIR [--episodes 20] [--output DIR]

Restores the run's latest learner checkpoint, rolls out its teacher
(stochastic, as in the teacher dataset) on held-out seeds (the evaluation
seeds: never in a teacher dataset), and compares the critic's mean Q(s_t, a_t)
with the discounted return-to-go G_t = sum_k gamma^k r_{t+k} of the same
episode, with the sparse (success) reward every method but MPO trains on.

Prints one JSON line: Pearson correlation of Q and G over all steps, mean
bias Q - G, and the mean Q at the first step of succeeded vs failed episodes
(a critic that ranks anything separates those).  Writes `q_tracking.png`:
Q_t and G_t of a few succeeded and failed episodes.  G_t is truncated at the
episode's end (400 steps), so late steps under-count a return that would go on.
"""

import argparse
import json
import os
import sys
from typing import Optional, Sequence

import numpy as np

from envs import evaluate as envs_evaluate
from envs import rollout as rollout_lib
from envs import specs
from envs import stacking
from envs import teachers as teachers_lib
from learners.training import setup

HELD_OUT_TAG = 'q-tracking'


def discounted_return_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
  """G_t = r_t + gamma G_{t+1}, G_T = r_T (r_t: the reward after action t)."""
  returns = np.zeros(len(rewards), np.float64)
  running = 0.0
  for t in range(len(rewards) - 1, -1, -1):
    running = rewards[t] + gamma * running
    returns[t] = running
  return returns


def summarise(episodes: Sequence[dict]) -> dict:
  """Correlation, bias and the succeeded/failed gap of Q, from per-episode q/g/success."""
  q = np.concatenate([e['q'] for e in episodes])
  g = np.concatenate([e['g'] for e in episodes])
  first = lambda won: [float(e['q'][0]) for e in episodes if e['success'] == won]
  succeeded, failed = first(True), first(False)
  return dict(
      episodes=len(episodes), steps=int(q.size),
      pearson=float(np.corrcoef(q, g)[0, 1]) if q.std() > 0 and g.std() > 0 else None,
      mean_bias=float(np.mean(q - g)), mean_q=float(q.mean()), mean_g=float(g.mean()),
      q0_succeeded=float(np.mean(succeeded)) if succeeded else None,
      q0_failed=float(np.mean(failed)) if failed else None,
      succeeded=len(succeeded))


def plot(episodes: Sequence[dict], path: str, title: str, per_kind: int = 3) -> str:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
  for ax, won in zip(axes, (True, False)):
    shown = [e for e in episodes if e['success'] == won][:per_kind]
    for i, e in enumerate(shown):
      line, = ax.plot(e['q'], linewidth=1, label=f'Q, episode {e["index"]}')
      ax.plot(e['g'], linestyle='--', color=line.get_color(), linewidth=1,
              label=f'return-to-go, episode {e["index"]}')
    ax.set(title=f'{"succeeded" if won else "failed"} teacher episodes',
           xlabel='step', ylabel='discounted return')
    if shown:
      ax.legend(fontsize=6)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('run', help='a run workdir with a learner checkpoint')
  parser.add_argument('--episodes', type=int, default=20)
  parser.add_argument('--output', default=None, help='where the figure goes (default: RUN)')
  args = parser.parse_args(argv)
  try:
    config, method, learner = setup.restore_run(args.run)
  except setup.TrainingError as e:
    parser.error(str(e))
  if not method.uses_critic:
    parser.error(f'{method.name} trains no critic; nothing to track.')
  teacher = teachers_lib.make_teacher(config.teacher, config.triplet)
  env = stacking.make_env(config.triplet, obs_mode=config.obs,
                          episode_steps=config.episode_steps, image_size=config.image_size,
                          reward=method.reward)
  keys = specs.STUDENT_KEYS[config.obs]
  episodes = []
  for i in range(args.episodes):
    traj = rollout_lib.rollout(env, teacher, 'stochastic',
                               envs_evaluate.eval_seed(config.triplet, i))
    obs = {k: np.stack([ts.observation[k] for ts in traj.timesteps[:-1]]) for k in keys}
    rewards = np.array([float(ts.reward) for ts in traj.timesteps[1:]])
    episodes.append(dict(index=i, success=traj.success,
                         q=learner.q_values(obs, np.stack(traj.actions)),
                         g=discounted_return_to_go(rewards, config.gamma)))
  env.close()
  stats = dict(run=args.run, method=method.name, grad_steps=learner.num_steps,
               **summarise(episodes))
  title = (f'{method.name}, {config.triplet}, {config.teacher} teacher, n_step {config.n_step}'
           f', {learner.num_steps} grad steps: pearson {stats["pearson"]:.2f}'
           if stats['pearson'] is not None else method.name)
  stats['figure'] = plot(episodes, os.path.join(args.output or args.run, 'q_tracking.png'),
                         title)
  print(json.dumps(stats))
  return 0


if __name__ == '__main__':
  sys.exit(main())
