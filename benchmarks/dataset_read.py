"""Read throughput of a built teacher dataset as n-step transitions (tf.data).

  python benchmarks/dataset_read.py [--data_dir D --name CONFIG]

Without --data_dir it builds a 50-episode state dataset first.  Prints one
JSON line per figure (target: >= 20 000 transitions/s, state).
"""

import argparse
import json
import tempfile
import time

from pipelines import build_teacher_datasets as job_lib
from pipelines import teacher_dataset
from pipelines import transitions


def measure(name, data_dir, n_step, batch_size, epochs):
  count, start = 0, None
  for epoch in range(epochs + 1):
    episodes = teacher_dataset.load_teacher_dataset(name, data_dir)
    ds = transitions.batched_transitions(episodes, batch_size, n_step=n_step,
                                         gamma=0.99)
    for batch in ds:
      if epoch > 0:  # epoch 0 warms up tracing and the file cache
        count += int(batch['reward'].shape[0])
    if epoch == 0:
      start = time.time()
  return count, time.time() - start


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--name', default='triplet1_mastery_state_50')
  parser.add_argument('--n_step', type=int, default=5)
  parser.add_argument('--batch_size', type=int, default=256)
  parser.add_argument('--epochs', type=int, default=3)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    data_dir = args.data_dir
    if data_dir is None:
      data_dir = tmp
      job_lib.run(job_lib.JobConfig(['triplet1'], ['mastery'], ['state'], [50],
                                    data_dir),
                  job_lib.local_beam_options([], 2))
    count, seconds = measure(args.name, data_dir, args.n_step,
                             args.batch_size, args.epochs)
  print(json.dumps({'figure': 'read_throughput', 'obs': 'state',
                    'dataset': args.name, 'n_step': args.n_step,
                    'batch_size': args.batch_size, 'transitions': count,
                    'seconds': round(seconds, 2),
                    'transitions_per_s': round(count / seconds),
                    'target': 20000}))


if __name__ == '__main__':
  main()
