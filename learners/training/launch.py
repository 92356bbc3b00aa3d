r"""Launch one run of the study: a method under a data budget.

  python -m learners.training.launch --method r_crr --triplet triplet1 \
      --teacher generalization --obs state --budget 10000 \
      --offline_episodes 5000 --workdir runs/x

Loads (or builds, saying so) the nested teacher dataset of `--offline_episodes`
episodes, starts a Reverb server on localhost, collects student episodes
(logged to RLDS under the workdir) until offline + online episodes = budget
(`--num_actors N` > 1: in N actor processes that feed the server over gRPC),
evaluates, and writes ledger.json, config.json, eval.json, summary.json,
metrics.jsonl, TensorBoard events and checkpoints under --workdir.
Offline-only methods (bc, crr) train for --grad_steps instead.  The
console shows the run's own lines and a progress bar; the libraries' log
lines go to <workdir>/run.log (`--verbosity 1` shows them).
`--config file.yaml|json` sets defaults; flags given on the command line win.
SIGTERM or Ctrl-C writes a final checkpoint and exits 143 / 130, printing
the command that resumes; after a crash, `--resume` ingests every complete
episode the run logged (see docs/reliability.md).
"""

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import shlex
import shutil
import sys
from typing import Optional, Sequence, get_args

import yaml

from learners.training import config as config_lib
from learners.training import console
from learners.training import workdir as workdir_lib


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
  parser.add_argument('--verbosity', type=int, default=0,
                      help='0: libraries\' log lines (Beam, absl, TF, Reverb) go to '
                           '<workdir>/run.log; 1: to the console too')
  for field in dataclasses.fields(config_lib.RunConfig):
    help_text = field.metadata['help'] or f'default: {field.default}'
    if field.name == 'resume':
      parser.add_argument('--resume', action='store_true', default=None, help=help_text)
      continue
    parser.add_argument(f'--{field.name}', type=_arg_type(field.type), default=None,
                        help=help_text)
  return parser


def _read_config_file(path: str) -> dict:
  with open(path) as f:
    if path.endswith(('.yaml', '.yml')):
      data = yaml.safe_load(f) or {}
    else:
      data = json.load(f)
  known = {f.name for f in dataclasses.fields(config_lib.RunConfig)}
  unknown = sorted(set(data) - known)
  if unknown:
    raise ValueError(f'{path}: unknown keys {unknown}; valid: {sorted(known)}.')
  return data


def config_from_args(argv: Optional[Sequence[str]] = None) -> config_lib.RunConfig:
  return _config(build_parser().parse_args(argv))


def _config(args: argparse.Namespace) -> config_lib.RunConfig:
  values = _read_config_file(args.config) if args.config else {}
  for field in dataclasses.fields(config_lib.RunConfig):
    given = getattr(args, field.name)
    if given is not None:
      values[field.name] = given
  return config_lib.RunConfig(**values)


def _set_tf_threads(intra_op: int, inter_op: int) -> None:
  """TF's thread pools, before TF runs its first op (they cannot change after)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)
  except RuntimeError as e:  # `main` called in a process that already ran TF (tests).
    logging.warning('TF thread pools left as they are: %s', e)


def resume_command(argv: Optional[Sequence[str]]) -> str:
  """The command line that continues this run."""
  args = [a for a in (sys.argv[1:] if argv is None else argv) if a != '--resume']
  return shlex.join(['python', '-m', 'learners.training.launch', *args, '--resume'])


# How long a launcher waits for another process to leave its workdir (a retried
# run's earlier launcher writing its final checkpoint after a SIGTERM).
_LOCK_WAIT_S = 120.0


def _only_a_log(workdir: str) -> bool:
  """Whether a workdir this call created holds nothing but the log of its refusal."""
  return set(os.listdir(workdir)) <= {workdir_lib.RUN_LOG_FILE, workdir_lib.CONFIG_FILE,
                                      workdir_lib.DATASET_FILE, workdir_lib.LOCK_FILE}


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    config = _config(args)
    config_lib.check_config(config)
  except (ValueError, NotImplementedError, OSError, yaml.YAMLError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  try:  # Before the library log is opened inside the workdir of another run.
    config_lib.check_workdir(config)
  except (FileExistsError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  fresh = not os.path.exists(config.workdir)
  failed = refused = False
  log_path = os.path.join(config.workdir, workdir_lib.RUN_LOG_FILE)
  os.makedirs(config.workdir, exist_ok=True)
  with contextlib.ExitStack() as held:
    try:
      held.enter_context(workdir_lib.exclusive(config.workdir, _LOCK_WAIT_S))
    except FileExistsError as e:
      print(f'error: {e}', file=sys.stderr)
      return 1
    held.enter_context(console.libraries_log(log_path, args.verbosity))
    _set_tf_threads(config.intra_op_threads, config.inter_op_threads)
    from learners.training import loop  # pylint: disable=g-import-not-at-top
    from pipelines import teacher_dataset  # pylint: disable=g-import-not-at-top
    try:
      summary = loop.train(config)
    except config_lib.Stopped as e:
      print(f'stopped by {e}\nResume with:\n  {resume_command(argv)}', file=sys.stderr)
      return e.exit_code
    except (FileExistsError, config_lib.TrainingError, teacher_dataset.TeacherDatasetError,
            ValueError) as e:
      print(f'error: {e}', file=sys.stderr)
      refused = fresh and _only_a_log(config.workdir)
      if not args.verbosity and not refused:
        print(f'(library logs: {log_path})', file=sys.stderr)
      failed = True
  if refused:  # Refused before any work (e.g. no dataset): leave nothing behind.
    shutil.rmtree(config.workdir)
  if failed:
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
