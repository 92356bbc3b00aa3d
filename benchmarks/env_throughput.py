"""Env steps/s on one core, state and vision (two 64x64 cameras, MUJOCO_GL=egl).

  python benchmarks/env_throughput.py [--steps 4000] [--image_size 64]

Prints one JSON line per figure.  Actions come from the mastery teacher so
contacts (grasps, stacks) are exercised as in real data collection; the
teacher's own compute is excluded from `env_steps_per_s` and included in
`teacher_rollout_steps_per_s`.
"""

import argparse
import json
import os
import time

os.environ.setdefault('MUJOCO_GL', 'egl')
# One core, as the target says: MuJoCo steps on one thread, and Mesa's
# llvmpipe rasteriser is told to use one thread too.
os.environ.setdefault('LP_NUM_THREADS', '1')

import envs  # pylint: disable=g-import-not-at-top


def measure(obs_mode: str, steps: int, image_size: int) -> dict:
  env = envs.make_env('triplet1', obs_mode=obs_mode, image_size=image_size, seed=0)
  teacher = envs.make_teacher('mastery', 'triplet1')
  ts = env.reset()
  env_time, teacher_time, done = 0.0, 0.0, 0
  while done < steps:
    t0 = time.perf_counter()
    action = teacher.distribution(ts.observation).mode()
    t1 = time.perf_counter()
    ts = env.step(action)
    t2 = time.perf_counter()
    teacher_time += t1 - t0
    env_time += t2 - t1
    done += 1
  env.close()
  return {
      'benchmark': 'env_throughput', 'obs_mode': obs_mode, 'image_size': image_size,
      'steps': steps, 'env_steps_per_s': round(steps / env_time, 1),
      'teacher_rollout_steps_per_s': round(steps / (env_time + teacher_time), 1),
      'target_env_steps_per_s': 900 if obs_mode == 'state' else 350,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--steps', type=int, default=4000)
  parser.add_argument('--image_size', type=int, default=64)
  args = parser.parse_args()
  for mode in ('state', 'vision'):
    print(json.dumps(measure(mode, args.steps, args.image_size)), flush=True)


if __name__ == '__main__':
  main()
