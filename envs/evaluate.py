"""Evaluate teachers on stacking triplets: success rate with a 95% interval.

  python -m envs.evaluate --teacher generalization --triplet triplet1 --episodes 200
  python -m envs.evaluate --teacher mastery,generalization --triplet all --episodes 200 \
      --workers 2 --output runs/teacher_table.json   # the Table I equivalent
  python -m envs.evaluate --teacher mastery --triplet triplet2 --episodes 3 \
      --video runs/mastery_t2.gif               # watch what the teacher does

Evaluation episodes use their own seeds (shared by every policy, so numbers
are comparable across teachers and students) and the deterministic action
unless `--policy_mode stochastic`.
"""

import argparse
import json
import math
import multiprocessing
import os
import sys
import time

import numpy as np
from tqdm import tqdm

import envs
from envs import rollout as rollout_lib
from envs import specs
from envs.stacking import make_env
from envs.teachers import TEACHER_NAMES, make_teacher
from envs.triplets import TRIPLET_NAMES, get_triplet

EVAL_SEED_TAG = 'evaluation'


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
  """95% Wilson score interval for a success rate (sane at 0% and 100%)."""
  if n == 0:
    return (0.0, 1.0)
  p = successes / n
  denom = 1 + z * z / n
  centre = (p + z * z / (2 * n)) / denom
  half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
  return (max(0.0, centre - half), min(1.0, centre + half))


def encode_outcomes(successes) -> str:
  """Per-start outcomes as JSON keeps them: '1' success, '0' failure, in start order."""
  return ''.join('1' if s else '0' for s in successes)


def decode_outcomes(outcomes: str) -> np.ndarray:
  if set(outcomes) - {'0', '1'}:
    raise ValueError(f'outcomes must be a string of 0 and 1, got {outcomes[:40]!r}')
  return np.frombuffer(outcomes.encode(), dtype=np.uint8) - ord('0')


def eval_seed(triplet: str, index: int) -> int:
  return rollout_lib.episode_seed(triplet, EVAL_SEED_TAG, index)


def _run_chunk(task):
  teacher, triplet, start, stop, policy_mode, episode_steps = task
  env = make_env(triplet, episode_steps=episode_steps)
  policy = make_teacher(teacher, triplet)
  results = []
  for i in range(start, stop):
    traj = rollout_lib.rollout(env, policy, policy_mode, eval_seed(triplet, i))
    results.append((teacher, triplet, i, traj.success, traj.episode_return))
  env.close()
  return results


def evaluate(teachers: list, triplets: list, episodes: int, policy_mode: str = 'deterministic',
             workers: int = 1, episode_steps: int = specs.EPISODE_STEPS,
             chunk: int = 10, start: int = 0) -> list[dict]:
  """Success of each (teacher, triplet) cell over `episodes` evaluation episodes,
  those of evaluation starts `start` on (`outcomes` in that order)."""
  for t in triplets:
    get_triplet(t)  # fail before any work on a bad name
  stop = start + episodes
  tasks = [(teacher, triplet, s, min(s + chunk, stop), policy_mode, episode_steps)
           for teacher in teachers for triplet in triplets for s in range(start, stop, chunk)]
  outcomes = {}
  with tqdm(total=len(teachers) * len(triplets) * episodes, desc='evaluating',
            unit='episode', disable=None) as bar:
    if workers > 1:
      with multiprocessing.get_context('spawn').Pool(workers) as pool:
        for chunk_results in pool.imap_unordered(_run_chunk, tasks):
          for r in chunk_results:
            outcomes[r[:3]] = r[3:]
          bar.update(len(chunk_results))
    else:
      for task in tasks:
        chunk_results = _run_chunk(task)
        for r in chunk_results:
          outcomes[r[:3]] = r[3:]
        bar.update(len(chunk_results))
  cells = []
  for teacher in teachers:
    for triplet in triplets:
      rows = [outcomes[(teacher, triplet, i)] for i in range(start, stop)]
      wins = int(sum(r[0] for r in rows))
      low, high = wilson_interval(wins, episodes)
      cells.append({
          'teacher': teacher, 'triplet': triplet, 'policy_mode': policy_mode,
          'episodes': episodes, 'successes': wins, 'success_rate': wins / episodes,
          'ci95': [low, high], 'mean_return': float(np.mean([r[1] for r in rows])),
          # Start by start (from eval index `start`), for paired comparisons with students.
          'outcomes': encode_outcomes(r[0] for r in rows),
      })
  return cells


def write_video(path: str, teacher: str, triplet: str, episodes: int, policy_mode: str,
                episode_steps: int) -> None:
  import imageio  # pylint: disable=g-import-not-at-top
  env = make_env(triplet, episode_steps=episode_steps)
  policy = make_teacher(teacher, triplet)
  frames = []
  for i in range(episodes):
    views = []
    traj = rollout_lib.rollout(env, policy, policy_mode, eval_seed(triplet, i), views)
    print(f'video episode {i}: success={traj.success}')
    # Every other control step (10 fps) keeps GIFs small.
    frames += [np.concatenate([v[n] for n in specs.CAMERA_NAMES], axis=1) for v in views[::2]]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  imageio.mimsave(path, frames, duration=0.1, loop=0)
  env.close()


def format_table(cells: list[dict]) -> str:
  lines = [f'{"teacher":<16}{"triplet":<12}{"success":>9}  {"95% interval":<16}{"episodes":>9}']
  for c in cells:
    lo, hi = c['ci95']
    lines.append(f'{c["teacher"]:<16}{c["triplet"]:<12}{100 * c["success_rate"]:>8.1f}%  '
                 f'[{100 * lo:5.1f}, {100 * hi:5.1f}]  {c["episodes"]:>9}')
  return '\n'.join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--teacher', default='generalization',
                      help=f'{", ".join(TEACHER_NAMES)}, a comma list, "all", or a SavedModel path')
  parser.add_argument('--triplet', default='triplet1',
                      help=f'{", ".join(TRIPLET_NAMES)}, a comma list, "all", or "r3;s0;b2"')
  parser.add_argument('--episodes', type=int, default=200)
  parser.add_argument('--policy_mode', default='deterministic',
                      choices=('deterministic', 'stochastic'))
  parser.add_argument('--episode_steps', type=int, default=specs.EPISODE_STEPS)
  parser.add_argument('--workers', type=int, default=1)
  parser.add_argument('--output', default=None, help='JSON file for the results')
  parser.add_argument('--video', default=None, help='write a GIF of the first episodes here')
  parser.add_argument('--video_episodes', type=int, default=2)
  args = parser.parse_args(argv)
  if args.episodes < 1:
    parser.error('--episodes must be >= 1')
  if args.episode_steps < 1:  # Else every worker's env would raise, one traceback each.
    parser.error('--episode_steps must be >= 1')
  teachers = list(TEACHER_NAMES) if args.teacher == 'all' else args.teacher.split(',')
  # Custom triplets use ';' between ids so that ',' can separate several triplets.
  triplets = (list(TRIPLET_NAMES) if args.triplet == 'all'
              else [t.replace(';', ',') for t in args.triplet.split(',')])
  try:
    for teacher in teachers:
      make_teacher(teacher, triplets[0])
    for triplet in triplets:
      get_triplet(triplet)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  start = time.time()
  cells = evaluate(teachers, triplets, args.episodes, args.policy_mode, args.workers,
                   args.episode_steps)
  print(format_table(cells))
  print(f'({time.time() - start:.0f} s)')
  if args.output:
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, 'w') as f:
      command = 'python -m envs.evaluate ' + ' '.join(sys.argv[1:] if argv is None else argv)
      json.dump({'cells': cells, 'command': command,
                 'env_version': envs.ENV_VERSION}, f, indent=2)
    print(f'wrote {args.output}')
  if args.video:
    write_video(args.video, teachers[0], triplets[0], args.video_episodes, args.policy_mode,
                args.episode_steps)
    print(f'wrote {args.video}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
