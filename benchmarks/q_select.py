"""Does the run's critic pick better actions than its policy's mode?

  python benchmarks/q_select.py RUN_DIR [--samples 0,4,16] [--episodes 100]

Restores the run's latest checkpoint and evaluates it on the evaluation seeds
(the students' and the teacher's, `envs.evaluate.eval_seed`) once per value of
`--samples`: with M samples, each step draws M actions from the evaluation
policy, adds its mode, and executes the one the critic rates highest (Q's
mean return); M = 0 is the plain evaluation, the mode.  This is critic-guided
action selection among policy samples (as in EMaQ or IQL's sampled policy),
a diagnostic and not a method of the study: cloning the teacher cannot beat
it (docs/results/ablations.md, the teacher under action noise), so a student
that beats it needs actions better than the teacher's where it fails, and this
asks whether the critic knows any.  `--pick random` is the control: one of the
same candidates at random, the same exploration without the critic (with the
mode among M + 1 candidates, a random pick is a sampled action most of the
time, and the outcome is chaotic in the actions).  One JSON line per M: success with its
95 % interval, and the episodes paired with M = 0 (both succeed, only this M,
only the mode).  The draws are seeded by the episode, so a rerun gives the
same numbers.  State observations only.
"""

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from envs import evaluate as envs_evaluate  # pylint: disable=g-import-not-at-top
from envs import stacking  # pylint: disable=g-import-not-at-top
from envs.policy import call_unbatched  # pylint: disable=g-import-not-at-top
from learners.training import setup  # pylint: disable=g-import-not-at-top


def select(learner, observation, samples: int, rng: np.random.Generator,
           pick: str = 'q') -> np.ndarray:
  """The mode, or of the mode and `samples` policy samples the highest-Q one
  (`pick` 'q') or one at random (`pick` 'random', the control: as noisy, no critic)."""
  dist = call_unbatched(learner.eval_distribution, observation)
  if samples == 0:
    return dist.mode()
  candidates = np.stack([dist.mode()] + [dist.sample(rng) for _ in range(samples)])
  if pick == 'random':
    return candidates[rng.integers(len(candidates))]
  batch = {k: np.repeat(np.asarray(v)[None], len(candidates), axis=0)
           for k, v in observation.items()}
  return candidates[int(np.argmax(learner.q_values(batch, candidates)))]


def successes(learner, env, triplet: str, episodes: int, samples: int,
              pick: str) -> np.ndarray:
  """[episodes] bool: whether each evaluation episode ends stacked."""
  out = []
  for i in range(episodes):
    seed = envs_evaluate.eval_seed(triplet, i)
    rng = np.random.default_rng([seed, samples])
    env.reseed(seed)
    timestep = env.reset()
    while not timestep.last():
      timestep = env.step(select(learner, timestep.observation, samples, rng, pick))
    out.append(bool(env.success))
  return np.asarray(out)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('run_dir')
  parser.add_argument('--samples', default='0,4,16',
                      help='comma-separated M; 0 (the mode) is always run first')
  parser.add_argument('--episodes', type=int, default=100)
  parser.add_argument('--pick', choices=('q', 'random'), default='q',
                      help="the critic's choice, or a random one of the same candidates "
                           '(the control: the same action noise without the critic)')
  args = parser.parse_args(argv)
  try:
    values = sorted({0} | {int(m) for m in args.samples.split(',')})
  except ValueError:
    parser.error(f'--samples must be comma-separated integers, got {args.samples!r}')
  if values[0] < 0 or args.episodes < 1:
    parser.error('--samples must be >= 0 and --episodes >= 1')
  try:
    config, method, learner = setup.restore_run(args.run_dir)
  except setup.TrainingError as e:
    parser.error(str(e))
  if config.obs != 'state' or not method.uses_critic:
    parser.error(f'q_select reads state runs with a critic; {args.run_dir} is '
                 f'{method.name} on {config.obs}')
  env = stacking.make_env(config.triplet, obs_mode='state', episode_steps=config.episode_steps,
                          reward='sparse')
  mode = None
  for samples in values:
    won = successes(learner, env, config.triplet, args.episodes, samples, args.pick)
    mode = won if mode is None else mode
    wins = int(won.sum())
    print(json.dumps({
        'figure': 'q_select', 'run': os.path.basename(args.run_dir.rstrip('/')),
        'grad_step': learner.num_steps, 'samples': samples, 'pick': args.pick,
        'episodes': args.episodes,
        'success_rate': wins / args.episodes,
        'ci95': [round(x, 4) for x in envs_evaluate.wilson_interval(wins, args.episodes)],
        'both': int(np.sum(won & mode)), 'only_this': int(np.sum(won & ~mode)),
        'only_mode': int(np.sum(~won & mode))}), flush=True)
  env.close()
  return 0


if __name__ == '__main__':
  sys.exit(main())
