r"""Launch one run of the study: a method under a data budget.

  python -m learners.launch --method r_crr --triplet triplet1 \
      --teacher generalization --obs state --budget 10000 \
      --offline_episodes 5000 --workdir runs/x

Loads (or builds, saying so) the nested teacher dataset of `--offline_episodes`
episodes, starts a Reverb server on localhost, collects student episodes
(logged to RLDS under the workdir) until offline + online episodes = budget
(`--num_actors N` > 1: in N actor processes that feed the server over gRPC),
evaluates, and writes ledger.json, config.json, eval.json, summary.json,
metrics.jsonl, TensorBoard events and checkpoints under --workdir.
Offline-only methods (bc, crr) train for --grad_steps instead.
`--config file.yaml|json` sets defaults; flags given on the command line win.
"""

import argparse
import dataclasses
import json
import os
import sys
from typing import Optional, Sequence, get_args

from learners import training

_HELP = {
    'method': 'bc, crr, crr_mixed, awac, dagger, dagger_mixed, mpo, r_mpo, r_crr, r_crr_target',
    'budget': 'episodes on the target task: offline_episodes + online episodes '
              '(offline-only methods: omit, or = offline_episodes)',
    'offline_episodes': 'teacher dataset size (0 for online-only methods)',
    'grad_steps': 'gradient steps of offline-only methods',
    'offline_pretrain_steps': 'offline-only steps before collection (default: from the '
                              'method schedule, AWAC 500000)',
    'env_steps_per_grad_step': 'fixed update rate of online methods',
    'eval_every': 'grad steps between evaluations (0: only the final one)',
    'num_actors': '1: synchronous loop in this process; N > 1: N actor processes feeding '
                  'the Reverb server over gRPC (docs/launch.md)',
    'variable_update_period': 'env steps between an actor\'s fetches of the policy '
                              'weights (num_actors > 1)',
    'beta': 'teacher share of the prior, a constant replacing the method row\'s (beta sweep)',
    'offline_fraction': 'share of dataset items per batch, a constant replacing the method '
                        'row\'s (batch ratio sweep)',
    'resume': 'continue the run whose checkpoints are in --workdir',
    'data_dir': 'TFDS data dir of the teacher datasets',
}


def _bool(text: str) -> bool:
  if text.lower() in ('1', 'true', 'yes'):
    return True
  if text.lower() in ('0', 'false', 'no'):
    return False
  raise argparse.ArgumentTypeError(f'expected a boolean, got {text!r}')


def _arg_type(annotation):
  """The argparse type of a RunConfig field (Optional[X] parses as X)."""
  args = [a for a in get_args(annotation) if a is not type(None)]
  kind = args[0] if len(args) == 1 else annotation
  if kind is bool:
    return _bool
  return kind if kind in (int, float) else str


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  parser.add_argument('--config', default=None, help='YAML or JSON file of defaults')
  for field in dataclasses.fields(training.RunConfig):
    if field.name == 'resume':
      parser.add_argument('--resume', action='store_true', default=None, help=_HELP['resume'])
      continue
    parser.add_argument(f'--{field.name}', type=_arg_type(field.type), default=None,
                        help=_HELP.get(field.name, f'default: {field.default}'))
  return parser


def _read_config_file(path: str) -> dict:
  with open(path) as f:
    if path.endswith(('.yaml', '.yml')):
      import yaml  # pylint: disable=g-import-not-at-top
      data = yaml.safe_load(f) or {}
    else:
      data = json.load(f)
  known = {f.name for f in dataclasses.fields(training.RunConfig)}
  unknown = sorted(set(data) - known)
  if unknown:
    raise ValueError(f'{path}: unknown keys {unknown}; valid: {sorted(known)}.')
  return data


def config_from_args(argv: Optional[Sequence[str]] = None) -> training.RunConfig:
  args = build_parser().parse_args(argv)
  values = _read_config_file(args.config) if args.config else {}
  for field in dataclasses.fields(training.RunConfig):
    given = getattr(args, field.name)
    if given is not None:
      values[field.name] = given
  return training.RunConfig(**values)


def main(argv: Optional[Sequence[str]] = None) -> int:
  try:
    config = config_from_args(argv)
    training.check_config(config)
  except (ValueError, NotImplementedError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  from pipelines import teacher_dataset  # pylint: disable=g-import-not-at-top
  try:
    summary = training.train(config)
  except (FileExistsError, training.TrainingError, teacher_dataset.TeacherDatasetError,
          ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  ledger = summary['ledger']
  print(f'done: {ledger["spent"]}/{ledger["budget"]} episodes '
        f'({ledger["offline_episodes"]} offline + {ledger["online_episodes"]} online), '
        f'{ledger["grad_steps"]} grad steps, {ledger["env_steps"]} env steps, '
        f'{ledger["eval_episodes"]} eval episodes; outputs in '
        f'{os.path.abspath(config.workdir)}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
