"""Teacher dataset build throughput (1 vs 2 Beam workers) and bytes per episode.

  python benchmarks/dataset_build.py [--episodes 24] [--episode_steps 400]

Prints one JSON line per figure.  Build time is the whole job (Beam start-up,
simulation, shard writing, assembly), so small --episodes understate speed.
"""

import argparse
import json
import os
import tempfile
import time

from pipelines import build_teacher_datasets as job_lib
from pipelines import teacher_config
from pipelines import teacher_dataset


def _build(data_dir, obs, episodes, steps, workers):
  job = job_lib.JobConfig(triplets=['triplet1'], teachers=['mastery'],
                          obs_modes=[obs], sizes=[episodes], data_dir=data_dir,
                          episode_steps=steps)
  start = time.time()
  job_lib.run(job, job_lib.local_beam_options([], workers))
  seconds = time.time() - start
  config = teacher_config.make_config('triplet1', 'mastery', obs, episodes,
                                      episode_steps=steps)
  vdir = teacher_dataset.version_dir(data_dir, config)
  shard_bytes = sum(os.path.getsize(os.path.join(vdir, f))
                    for f in teacher_dataset.shard_files(vdir))
  return seconds, shard_bytes


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--episodes', type=int, default=24)
  parser.add_argument('--vision_episodes', type=int, default=4)
  parser.add_argument('--episode_steps', type=int, default=400)
  args = parser.parse_args()
  rates = {}
  for workers in (1, 2):
    with tempfile.TemporaryDirectory() as d:
      seconds, shard_bytes = _build(d, 'state', args.episodes,
                                    args.episode_steps, workers)
    rates[workers] = args.episodes / seconds
    print(json.dumps({'figure': 'build_throughput', 'obs': 'state',
                      'workers': workers, 'episodes': args.episodes,
                      'episode_steps': args.episode_steps,
                      'seconds': round(seconds, 2),
                      'episodes_per_s': round(rates[workers], 3)}), flush=True)
  print(json.dumps({'figure': 'build_speedup_2_vs_1',
                    'speedup': round(rates[2] / rates[1], 3),
                    'target': 1.6}), flush=True)
  print(json.dumps({'figure': 'bytes_per_episode', 'obs': 'state',
                    'episode_steps': args.episode_steps,
                    'bytes_per_episode': shard_bytes // args.episodes}),
        flush=True)
  with tempfile.TemporaryDirectory() as d:
    _, vision_bytes = _build(d, 'vision', args.vision_episodes,
                             args.episode_steps, 2)
  print(json.dumps({'figure': 'bytes_per_episode', 'obs': 'vision',
                    'image_size': 64, 'encoding': 'png',
                    'episode_steps': args.episode_steps,
                    'bytes_per_episode': vision_bytes // args.vision_episodes}),
        flush=True)


if __name__ == '__main__':
  main()
