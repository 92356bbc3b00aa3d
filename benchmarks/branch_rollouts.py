"""When is a teacher episode's outcome decided?  Branch its own episodes and replay.

  python benchmarks/branch_rollouts.py --triplet triplet2 --teacher generalization \
      --episodes 40 [--first_episode 0] --branch_steps 0,25,50,100,200 --continuations 4

Regenerates the teacher's dataset episodes 0, 1, ... exactly as the Beam job
collects them (same seed, same stochastic actions: `envs.rollout`), and from
each, at every branch step t, runs `--continuations` new episodes that repeat its
first t actions and then draw fresh action noise from the same teacher.  A
continuation's success rate is then the teacher's chance from that state on.

A critic can rank a failed episode's actions only if some action there could
still have won: at t = 0 every continuation is a fresh teacher episode (its
success rate is the data's), and the step at which the failed episodes'
continuations stop succeeding is when their failure was sealed.  Had it been
sealed before the first action, no offline method learning from this teacher
could repair it.  (The paper's students also collect their own episodes; this
asks only what the teacher's data can teach.)

One JSON line per (outcome of the original episode, branch step): the
continuations' success rate with its 95 % interval, and how many originals
had at least one continuation end the other way.  The draws are seeded by
(episode, continuation), so a rerun gives the same numbers.
"""

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from envs import evaluate as envs_evaluate  # pylint: disable=g-import-not-at-top
from envs import rollout as rollout_lib  # pylint: disable=g-import-not-at-top
from envs import stacking  # pylint: disable=g-import-not-at-top
from envs import teachers  # pylint: disable=g-import-not-at-top
from envs.policy import action_of  # pylint: disable=g-import-not-at-top

_CONTINUATION_STREAM = 1_000  # rng streams [seed, 1000 + k]; the original uses [seed, 1].


def branch(env, policy, seed: int, prefix: list, k: int) -> bool:
  """Replays `prefix` from the episode's start, then the teacher with noise stream k."""
  env.reseed(seed)
  timestep = env.reset()
  for action in prefix:
    timestep = env.step(action)
  rng = np.random.default_rng([seed, _CONTINUATION_STREAM + k])
  while not timestep.last():
    timestep = env.step(action_of(policy.distribution(timestep.observation), 'stochastic',
                                  rng))
  return bool(env.success)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--triplet', default='triplet2')
  parser.add_argument('--teacher', default='generalization')
  parser.add_argument('--episodes', type=int, default=40,
                      help='how many teacher episodes, as the dataset holds them')
  parser.add_argument('--first_episode', type=int, default=0,
                      help='index of the first (to split the work across processes)')
  parser.add_argument('--branch_steps', default='0,25,50,100,200')
  parser.add_argument('--continuations', type=int, default=4)
  args = parser.parse_args(argv)
  try:
    steps = sorted({int(t) for t in args.branch_steps.split(',')})
    policy = teachers.make_teacher(args.teacher, args.triplet)
    env = stacking.make_env(args.triplet)
  except ValueError as e:
    parser.error(str(e))
  if args.episodes < 1 or args.continuations < 1 or min(steps) < 0 or args.first_episode < 0:
    parser.error('--episodes and --continuations must be >= 1, --first_episode and branch '
                 'steps >= 0')
  # wins[(original succeeded, t)] = per original episode, its continuations' successes
  wins = {}
  for index in range(args.first_episode, args.first_episode + args.episodes):
    seed = rollout_lib.episode_seed(args.triplet, args.teacher, index)
    original = rollout_lib.rollout(env, policy, 'stochastic', seed)
    for t in steps:
      if t >= len(original.actions):
        continue
      won = [branch(env, policy, seed, original.actions[:t], k)
             for k in range(args.continuations)]
      wins.setdefault((original.success, t), []).append(won)
  for (succeeded, t), rows in sorted(wins.items()):
    won = np.asarray(rows)
    lo, hi = envs_evaluate.wilson_interval(int(won.sum()), won.size)
    flipped = int(np.sum(won.any(axis=1) if not succeeded else ~won.all(axis=1)))
    print(json.dumps({
        'figure': 'branch_rollouts', 'triplet': args.triplet, 'teacher': args.teacher,
        'episodes': [args.first_episode, args.first_episode + args.episodes],
        'original': 'succeeded' if succeeded else 'failed', 'branch_step': t,
        'originals': len(rows), 'continuations': int(won.size),
        'continuations_won': int(won.sum()),
        'success_rate': round(float(won.mean()), 4), 'ci95': [round(lo, 4), round(hi, 4)],
        'originals_with_other_outcome': flipped}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
