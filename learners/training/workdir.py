"""A run's workdir on disk: file names, atomic JSON, the state snapshot, resume checks.

Layout (everything a run writes is under its workdir):

  config.json          the resolved RunConfig (+ the method row)
  ledger.json          budget counters (`ledger.Ledger`)
  eval.json            every evaluation, periodic and final
  summary.json         written last: its presence means the run is done
  .lock                held (flock) by the one process that runs in this workdir
  metrics.jsonl        learner metrics every `log_every` grad steps
  progress.json        live numbers for the study runner (spent, grad steps, success)
  run.log              the libraries' log lines (Beam, absl, Reverb, TF)
  tensorboard/         summaries
  episodes/            the envlogger RLDS log of every online episode
  checkpoints/learner  TF checkpoints (the commit point)
  checkpoints/state    ledger + replay checkpoint path per learner checkpoint
  checkpoints/replay   Reverb checkpoints

No TensorFlow at module level: the study runner reads these files too.
"""

import contextlib
import fcntl
import json
import os
import shutil
import time
from typing import Any, Iterator, Optional

CONFIG_FILE = 'config.json'
EVAL_FILE = 'eval.json'
SUMMARY_FILE = 'summary.json'
DATASET_FILE = 'dataset.json'  # The teacher dataset's manifest: what the run trained on.
METRICS_FILE = 'metrics.jsonl'
PROGRESS_FILE = 'progress.json'
RUN_LOG_FILE = 'run.log'
LEARNER_DIR = os.path.join('checkpoints', 'learner')
STATE_DIR = os.path.join('checkpoints', 'state')
REPLAY_DIR = os.path.join('checkpoints', 'replay')
EPISODE_LOG_DIR = 'episodes'
TENSORBOARD_DIR = 'tensorboard'
LOCK_FILE = '.lock'


def write_json_atomic(path: str, data: Any) -> None:
  """tmp file + fsync + rename: a kill leaves the old file or the new one, never half."""
  tmp = f'{path}.tmp.{os.getpid()}'
  with open(tmp, 'w') as f:
    json.dump(data, f, indent=1, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def read_json(path: str, default: Any = None) -> Any:
  if default is not None and not os.path.exists(path):
    return default
  with open(path) as f:
    return json.load(f)


def has_checkpoint_data(workdir: str) -> bool:
  # `learners.checkpointing.checkpoint_dir`, spelled out: importing it would
  # pull in TF, and the launcher checks the workdir before TF starts logging.
  directory = os.path.join(workdir, LEARNER_DIR)
  return os.path.isdir(directory) and bool(os.listdir(directory))


def state_path(workdir: str, step: int) -> str:
  return os.path.join(workdir, STATE_DIR, f'state-{step}.json')


def write_state(workdir: str, step: int, state: dict) -> None:
  os.makedirs(os.path.join(workdir, STATE_DIR), exist_ok=True)
  write_json_atomic(state_path(workdir, step), state)


def read_state(workdir: str, step: int) -> Optional[dict]:
  """The snapshot written with learner checkpoint `step`, or None if there is none."""
  path = state_path(workdir, step)
  return read_json(path) if os.path.exists(path) else None


def prune_replay_checkpoints(workdir: str, keep: Optional[str]) -> None:
  """Keeps only Reverb's checkpoint `keep` (Reverb restores the newest one it finds)."""
  directory = os.path.join(workdir, REPLAY_DIR)
  if not os.path.isdir(directory):
    return
  keep_name = os.path.basename(os.path.normpath(keep)) if keep else None
  for name in os.listdir(directory):
    path = os.path.join(directory, name)
    if os.path.isdir(path) and name != keep_name:
      shutil.rmtree(path)


@contextlib.contextmanager
def exclusive(workdir: str, timeout_s: float) -> Iterator[None]:
  """Holds the workdir's lock; waits up to `timeout_s` for another holder to finish.

  Two processes in one workdir would corrupt it: e.g. a cluster retries a run
  while the launcher of the lost attempt still writes its final checkpoint.
  The kernel drops an flock when its holder dies, kill -9 included.
  """
  path = os.path.join(workdir, LOCK_FILE)
  with open(path, 'a+') as f:
    deadline = time.monotonic() + timeout_s
    while True:
      try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
      except BlockingIOError:
        if time.monotonic() > deadline:
          f.seek(0)
          raise FileExistsError(f'Another process (pid {f.read().strip() or "?"}) runs in '
                                f'{workdir}' + (f'; waited {timeout_s:.0f} s for it to stop.'
                                                if timeout_s > 0 else '.')) from None
        time.sleep(0.5)
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)
