"""The study's runs as Ray tasks: a grid past one machine (`--engine ray`).

Each run is one Ray task that does exactly what a worker of the local pool
does, `runner.execute`: a launcher subprocess on the run's folder, started
with `--resume` when the folder holds an unfinished run.  So what a run is
lives in one place, and both engines skip finished runs and resume the
others the same way.  Results land under `--workdir`, which every node must
see at the same path (a shared filesystem).

A Ray worker that dies mid-run (its node lost, the process killed) is retried
by Ray up to `max_retries` times; the retry's launcher resumes from the run's
last checkpoint and ingests the episodes it logged since.  The lost attempt's
launcher gets SIGTERM when its parent dies (Linux `PR_SET_PDEATHSIG`), writes
a final checkpoint and leaves; the retry waits for it on the workdir's lock.
"""

import ctypes
import os
import signal
from typing import Callable, Optional, Sequence

from learners.study.grid import Run

_PR_SET_PDEATHSIG = 1
ATTEMPTS_FILE = 'attempts.txt'  # One line per attempt of a run on Ray.


def die_with_parent() -> None:
  """`preexec_fn` of a launcher: SIGTERM it (a graceful stop) when its parent dies."""
  ctypes.CDLL('libc.so.6', use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def attempts(run_dir: str) -> int:
  path = os.path.join(run_dir, ATTEMPTS_FILE)
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    return len(f.read().splitlines())


def _attempt(run: Run, run_dir: str, data_dir: str):
  from learners.study import runner  # pylint: disable=g-import-not-at-top
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, ATTEMPTS_FILE), 'a') as f:
    f.write(f'{os.uname().nodename} pid {os.getpid()}\n')
  launches = runner.Launches(preexec_fn=die_with_parent)
  return runner.execute(run, run_dir, data_dir, launches)


def run_all(runs: Sequence[Run], run_dirs: Sequence[str], data_dir: str,
            address: Optional[str], max_retries: int,
            on_result: Callable[[tuple], None]) -> None:
  """Runs every run as a Ray task; `on_result((run, rc, seconds, log))` as each ends.

  `address` None starts a local Ray cluster (on this machine's cores).
  """
  import ray  # pylint: disable=g-import-not-at-top
  started_here = not ray.is_initialized()
  if started_here:
    ray.init(address=address, include_dashboard=False, log_to_driver=False)
  try:
    refs = {}
    for run, run_dir in zip(runs, run_dirs):
      # A run's actors are processes of its launcher: one CPU each.
      cpus = max(1, int(run.config.get('num_actors') or 1))
      task = ray.remote(num_cpus=cpus, max_retries=max_retries)(_attempt)
      refs[task.remote(run, run_dir, data_dir)] = (run, run_dir)
    pending = list(refs)
    while pending:
      [done], pending = ray.wait(pending, num_returns=1)
      try:
        on_result(ray.get(done))
      except ray.exceptions.RayError as e:  # Every retry lost too.
        run, run_dir = refs[done]
        on_result((run, f'lost on Ray after {max_retries} retries ({type(e).__name__})', 0.0,
                   os.path.join(run_dir, 'launch.log')))
  finally:
    if started_here:
      ray.shutdown()
