"""How far a trained student's action is from its teacher's, along whose rollout.

  python benchmarks/action_gap.py RUN_DIR [--episodes 3]

Restores the run's latest checkpoint and runs `--episodes` episodes on the
evaluation seeds twice: once driven by the student (the states it meets when
evaluated), once driven by the teacher's mode action (the states its data
show).  At every step it compares the student's evaluation action with the
teacher's mode, max |a_student - a_teacher| over the action's dimensions, and
prints one JSON line per rollout kind with the mean gap at a few steps, and
the student's largest stddev there (a likelihood loss that gives up on a
state raises the stddev instead of moving the mean).  A
student that fits its teacher on the teacher's path and drifts on its own
(compounding error) shows a small gap on the first line and a large one on
the second.  `--starts dataset` starts from the first episodes of the
run's teacher dataset instead (the same seeds as the Beam job's episodes
0, 1, ...): a gap at step 0 there and not at the evaluation starts is a
failure to fit; at the evaluation starts only, a failure to generalise to a
new start.  State observations only.
"""

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from envs import evaluate as envs_evaluate  # pylint: disable=g-import-not-at-top
from envs import rollout  # pylint: disable=g-import-not-at-top
from envs import stacking  # pylint: disable=g-import-not-at-top
from envs import teachers as teachers_lib  # pylint: disable=g-import-not-at-top
from envs.policy import call_unbatched  # pylint: disable=g-import-not-at-top
from learners.training import setup  # pylint: disable=g-import-not-at-top

AT_STEPS = (0, 10, 25, 50, 100, 200)


def gaps(learner, teacher, env, seeds, driver: str) -> tuple[np.ndarray, np.ndarray]:
  """[episode, step] max-abs action gap and the student's largest stddev.

  Each episode is driven by `driver`.
  """
  gap, stddev = [], []
  for seed in seeds:
    env.reseed(seed)
    timestep, gap_row, stddev_row = env.reset(), [], []
    while not timestep.last():
      dist = call_unbatched(learner.eval_distribution, timestep.observation)
      student, mode = dist.mode(), teacher.distribution(timestep.observation).mode()
      gap_row.append(float(np.max(np.abs(student - mode))))
      stddev_row.append(float(np.max(dist.stddev)))
      timestep = env.step(student if driver == 'student' else mode)
    gap.append(gap_row)
    stddev.append(stddev_row)
  return np.asarray(gap), np.asarray(stddev)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('run_dir')
  parser.add_argument('--episodes', type=int, default=3)
  parser.add_argument('--starts', choices=('eval', 'dataset'), default='eval',
                      help="the evaluation seeds, or the teacher dataset's episode seeds")
  args = parser.parse_args(argv)
  try:
    config, _, learner = setup.restore_run(args.run_dir)
  except setup.TrainingError as e:
    parser.error(str(e))
  if config.obs != 'state':
    parser.error('action_gap reads state runs only')
  teacher = teachers_lib.make_teacher(config.teacher, config.triplet)
  env = stacking.make_env(config.triplet, obs_mode='state', episode_steps=config.episode_steps)
  if args.starts == 'eval':
    seeds = [envs_evaluate.eval_seed(config.triplet, i) for i in range(args.episodes)]
  else:
    seeds = [rollout.episode_seed(config.triplet, config.teacher, i)
             for i in range(args.episodes)]
  for driver in ('teacher', 'student'):
    gap, stddev = gaps(learner, teacher, env, seeds, driver)
    print(json.dumps({'figure': 'action_gap', 'run': os.path.basename(args.run_dir.rstrip('/')),
                      'starts': args.starts, 'rollouts_of': driver, 'episodes': args.episodes,
                      'grad_step': learner.num_steps,
                      'mean_gap_at_step': {str(k): round(float(gap[:, k].mean()), 3)
                                           for k in AT_STEPS if k < gap.shape[1]},
                      'mean_gap': round(float(gap.mean()), 3),
                      'student_max_stddev_at_step': {str(k): round(float(stddev[:, k].mean()), 3)
                                                     for k in AT_STEPS if k < stddev.shape[1]}}))
  env.close()
  return 0


if __name__ == '__main__':
  sys.exit(main())
