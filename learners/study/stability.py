"""How much a run's success swings between neighbouring evaluations.

  python -m learners.study.stability RUN_DIR [RUN_DIR ...] [--after STEP]

A comparison built on one checkpoint is only as good as the checkpoint-to-
checkpoint swing is small.  For each run and each evaluation label in its
`eval.json` ('eval': the policy the run reports, the EMA copy when
`policy_ema` > 0; 'eval_raw': the trained policy on the same episodes), prints
one JSON line: the periodic success rates after `--after` grad steps, their
mean, their standard deviation and the mean absolute change between
neighbouring evaluations.  A last line pools the runs per label.
"""

import argparse
import json
import os
import sys
from typing import Optional, Sequence

import numpy as np

from learners.training import workdir as workdir_lib

PERIODIC_LABELS = ('eval', 'eval_raw')


def swing(successes: Sequence[float]) -> dict:
  """Mean, std and mean |change| between neighbours of a success sequence."""
  values = np.asarray(successes, np.float64)
  if values.size < 2:
    raise ValueError(f'need >= 2 evaluations to measure a swing, got {values.size}.')
  return dict(evaluations=int(values.size), mean=float(values.mean()),
              std=float(values.std(ddof=1)),
              mean_abs_change=float(np.mean(np.abs(np.diff(values)))))


def periodic(evals: Sequence[dict], label: str, after: int) -> list:
  """Success rates of `label`'s periodic evaluations past `after` grad steps, in order."""
  return [e['success_rate'] for e in sorted(evals, key=lambda e: e['grad_step'])
          if e['label'] == label and e['grad_step'] > after]


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('runs', nargs='+', help='run workdirs (each has eval.json)')
  parser.add_argument('--after', type=int, default=0,
                      help='ignore evaluations at or before this grad step (warm-up)')
  args = parser.parse_args(argv)
  pooled = {label: [] for label in PERIODIC_LABELS}
  for run in args.runs:
    path = os.path.join(run, workdir_lib.EVAL_FILE)
    if not os.path.exists(path):
      parser.error(f'{path} does not exist: is {run} a run workdir?')
    with open(path) as f:
      evals = json.load(f)
    for label in PERIODIC_LABELS:
      values = periodic(evals, label, args.after)
      if len(values) >= 2:
        stats = swing(values)
        pooled[label].append(stats)
        print(json.dumps(dict(run=run, label=label, successes=values, **stats)))
  for label, runs in pooled.items():
    if runs:
      print(json.dumps(dict(
          pooled=label, runs=len(runs),
          mean=float(np.mean([r['mean'] for r in runs])),
          std=float(np.mean([r['std'] for r in runs])),
          mean_abs_change=float(np.mean([r['mean_abs_change'] for r in runs])))))
  return 0


if __name__ == '__main__':
  sys.exit(main())
