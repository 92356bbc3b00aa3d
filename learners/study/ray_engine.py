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
launcher gets SIGTERM when its parent dies (Linux `PR_SET_PDEATHSIG`) and
writes a final checkpoint, unless Ray kills it first (by default Ray kills a
dead worker's child processes); either way the retry waits for it on the
workdir's lock.  A stopped study cancels its tasks: each forwards SIGTERM to
its launcher and returns once the launcher has checkpointed and left.
"""

import ctypes
import os
import signal
import time
from typing import Callable, Optional, Sequence

from learners.study.grid import ATTEMPTS_FILE, Run
from learners.training import stopping

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
  """`preexec_fn` of a launcher: SIGTERM it (a graceful stop) when its parent dies."""
  ctypes.CDLL('libc.so.6', use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def attempts(run_dir: str) -> int:
  path = os.path.join(run_dir, ATTEMPTS_FILE)
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    return len(f.read().splitlines())


def resources(run: Run, gpus_per_run: float = 0.0) -> dict:
  """What a run's task asks of the cluster.

  With local actor processes (`actor_engine` processes) the launcher and its
  actors share the task's node: one CPU per actor.  With Ray actors each
  actor asks for its own CPU wherever it lands, so the task needs one.
  """
  config = run.config
  local_actors = config.get('actor_engine', 'processes') != 'ray'
  cpus = max(1, int(config.get('num_actors') or 1)) if local_actors else 1
  return dict(num_cpus=cpus, num_gpus=gpus_per_run)


def _attempt(run: Run, run_dir: str, data_dir: str):
  from learners.study import runner  # pylint: disable=g-import-not-at-top
  if run.config.get('actor_engine') == 'ray':
    import ray  # pylint: disable=g-import-not-at-top
    # The launcher (a subprocess) places its actors on this cluster, not a new one.
    os.environ['RAY_ADDRESS'] = ray.get_runtime_context().gcs_address
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, ATTEMPTS_FILE), 'a') as f:
    f.write(f'{os.uname().nodename} pid {os.getpid()}\n')
  launches = runner.Launches(preexec_fn=die_with_parent)
  start = time.time()
  try:
    return runner.execute(run, run_dir, data_dir, launches)
  except KeyboardInterrupt:  # `ray.cancel`: the study was stopped.
    launches.forward(signal.SIGTERM)
    rcs = launches.join()  # Each launcher writes its final checkpoint first.
    return (run, rcs[0] if rcs else 128 + signal.SIGTERM, time.time() - start,
            os.path.join(run_dir, runner.LOG_FILE))


def run_all(runs: Sequence[Run], run_dirs: Sequence[str], data_dir: str,
            address: Optional[str], max_retries: int,
            on_result: Callable[[tuple], None], gpus_per_run: float = 0.0,
            stopped: Callable[[], Optional[int]] = lambda: None,
            stopped_code: object = None) -> None:
  """Runs every run as a Ray task; `on_result((run, rc, seconds, log))` as each ends.

  `address` None starts a local Ray cluster (on this machine's cores).  Once
  `stopped()` names a signal, the tasks are cancelled: a running one forwards
  SIGTERM to its launcher and returns once that has written its final
  checkpoint; a run never started ends with `stopped_code`.
  """
  import ray  # pylint: disable=g-import-not-at-top
  started_here = not ray.is_initialized()
  if started_here:
    with stopping.handlers_kept():
      ray.init(address=address, include_dashboard=False, log_to_driver=False)
  try:
    refs = {}
    for run, run_dir in zip(runs, run_dirs):
      task = ray.remote(max_retries=max_retries, **resources(run, gpus_per_run))(_attempt)
      refs[task.remote(run, run_dir, data_dir)] = (run, run_dir)
    pending, cancelled = list(refs), False
    while pending:
      done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
      if stopped() is not None and not cancelled:
        cancelled = True
        for ref in pending:
          ray.cancel(ref)  # Not forced: the task stops its launcher and waits.
      for ref in done:
        run, run_dir = refs[ref]
        log_path = os.path.join(run_dir, 'launch.log')
        try:
          on_result(ray.get(ref))
        except ray.exceptions.TaskCancelledError:  # Cancelled before it started.
          on_result((run, stopped_code, 0.0, log_path))
        except ray.exceptions.RayError as e:  # Every retry lost too.
          on_result((run, f'lost on Ray after {max_retries} retries ({type(e).__name__})',
                     0.0, log_path))
  finally:
    if started_here:
      ray.shutdown()
