r"""Run a study: a grid of runs (methods x budgets x offline episodes x ...).

  python -m learners.study --spec studies/laptop.yaml --workdir runs/laptop \
      [--workers 2] [--dry_run] [--engine ray [--address HOST:PORT]] \
      [standard Beam options for the dataset build]

A spec (YAML) names a grid and optional sweeps; every grid cell is one run of
`python -m learners.training.launch`.  The runner

  1. expands the grid into run configs and rejects invalid entries up front,
     listing all of them (unknown method/triplet/teacher, a dataset for a
     replay-only method, an online budget for an offline-only method, a budget
     not larger than the dataset of a mixed method, unknown override keys);
  2. with --dry_run, lists the runs and estimates their cost and stops;
  3. builds every missing teacher dataset once per (triplet, teacher, obs,
     episode steps) with the Beam job, all sizes in one go (they are nested);
  4. evaluates the teachers on the students' evaluation seeds (if the spec asks);
  5. runs up to --workers launcher subprocesses at a time (`--engine ray`: one Ray
     task per run on a cluster, `learners.study.ray_engine`).  A run's workdir is
     named by a hash of its config: a run whose `summary.json` exists with a
     matching `config.json` is skipped, an unfinished one continues with the
     launcher's `--resume`.  So killing the runner and starting it again loses
     at most each run's episodes in flight (a resume ingests the logged ones).

SIGTERM or Ctrl-C is forwarded to every run in progress; each writes a final
checkpoint and stops, no new run starts, and the runner exits 143 / 130 once
they have all stopped.  The same command resumes the study.  One runner per
study workdir at a time (it holds `<workdir>/.lock`): a second is refused, exit 1.

Each run's output (and its error, if it fails) is in `<workdir>/runs/<name>/launch.log`;
failures do not stop the other runs and make the runner exit 1 at the end.
"""

import argparse
import concurrent.futures
import contextlib
import dataclasses
import os
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

import yaml
from tqdm import tqdm

from learners import methods as methods_lib
from learners.study import cost as cost_lib
from learners.study import progress_lines
from learners.study import results
from learners.study.grid import Run, dataset_groups, expand, run_state
from learners.study.spec import SpecError, StudySpec, load_spec
from learners.training import console
from learners.training import stopping
from learners.training import workdir as run_files

RUN_CONFIG = 'run.yaml'  # The launcher's config file inside each run folder.
LOG_FILE = 'launch.log'  # A run's console, inside its folder.
STUDY_LOG_FILE = 'study.log'  # The runner's own library log lines (dataset build).


def prepare_datasets(runs: Sequence[Run], data_dir: str, beam_args: Sequence[str],
                     workers: int, log=print) -> None:
  """Builds each missing nested dataset group once, all its sizes in one Beam job."""
  from pipelines import build_teacher_datasets  # pylint: disable=g-import-not-at-top
  from pipelines import teacher_config  # pylint: disable=g-import-not-at-top
  from pipelines import teacher_dataset  # pylint: disable=g-import-not-at-top
  for group, sizes in dataset_groups(runs).items():
    missing = []
    for size in sizes:
      name = teacher_config.config_name(group.triplet, group.teacher, group.obs, size,
                                        policy_mode=group.policy_mode,
                                        episode_steps=group.episode_steps,
                                        image_size=group.image_size)
      try:
        teacher_dataset.check_teacher_dataset(name, data_dir)
      except teacher_dataset.TeacherDatasetError:
        missing.append(size)
    where = f'{group.triplet}/{group.teacher}/{group.obs}/{group.policy_mode}'
    if not missing:
      log(f'datasets {where}: sizes {sizes} already built in {data_dir}')
      continue
    log(f'building datasets {where} sizes {sizes} (missing {missing}) '
        f'with Beam: {max(sizes)} teacher episodes of {group.episode_steps} steps')
    job = build_teacher_datasets.JobConfig(
        triplets=[group.triplet], teachers=[group.teacher], obs_modes=[group.obs], sizes=sizes,
        data_dir=data_dir, policy_mode=group.policy_mode, episode_steps=group.episode_steps,
        image_size=group.image_size, overwrite=True)
    build_teacher_datasets.run(job, build_teacher_datasets.local_beam_options(
        list(beam_args), workers))


def evaluate_teachers(spec: StudySpec, runs: Sequence[Run], workdir: str, workers: int,
                      log=print) -> None:
  """Teacher success on the eval seeds the students use (skipped if done)."""
  if not spec.teacher_eval_episodes:
    return
  path = os.path.join(workdir, results.TEACHERS_FILE)
  cells = run_files.read_json(path, {'cells': []})['cells']
  have = {(c['teacher'], c['triplet'], c['episode_steps']) for c in cells
          if c['episodes'] >= spec.teacher_eval_episodes}  # more: learners.study.more_starts
  from envs import evaluate as envs_evaluate  # pylint: disable=g-import-not-at-top
  pairs = sorted({(r.config['teacher'], r.config['triplet'], r.config['episode_steps'])
                  for r in runs} - have)
  for teacher, triplet, steps in pairs:
    log(f'evaluating teacher {teacher} on {triplet}: {spec.teacher_eval_episodes} episodes')
    for cell in envs_evaluate.evaluate([teacher], [triplet], spec.teacher_eval_episodes,
                                       workers=workers, episode_steps=steps):
      cells.append(dict(cell, episode_steps=steps))
  if pairs:
    run_files.write_json_atomic(path, {'cells': cells, 'source': 'envs.evaluate.evaluate, '
                                       'deterministic teacher on envs.evaluate.eval_seed'})


def launch_command(run: Run, run_dir: str, resume: bool) -> list[str]:
  cmd = [sys.executable, '-m', 'learners.training.launch', '--config',
         os.path.join(run_dir, RUN_CONFIG), '--workdir', run_dir]
  return cmd + (['--resume'] if resume else [])


def _launcher_config(run: Run, data_dir: str) -> dict:
  # Only the spec's settings: the launcher fills in its own defaults.
  config = dict(run.settings, data_dir=data_dir, build_dataset=False, progress=False)
  if methods_lib.get_method(config['method']).kind == 'offline':
    config['budget'] = None  # The launcher's spelling of "the dataset is the budget".
  return config


class Launches:
  """The launcher subprocesses in progress, so a stop reaches each of them once."""

  def __init__(self, preexec_fn=None):
    self._lock = threading.Lock()
    self._running = set()
    self._preexec_fn = preexec_fn
    self.stopped_by: Optional[int] = None

  def start(self, cmd: list, **kwargs) -> Optional[subprocess.Popen]:
    """Starts `cmd` (None once stopping); its own session, so a terminal's Ctrl-C
    reaches it only through `forward`, once."""
    with self._lock:
      if self.stopped_by is not None:
        return None
      process = subprocess.Popen(cmd, start_new_session=True, preexec_fn=self._preexec_fn,
                                 **kwargs)
      self._running.add(process)
      return process

  def wait(self, process: subprocess.Popen) -> int:
    # In short waits: a Ray task's cancellation arrives as a KeyboardInterrupt
    # between bytecodes, never inside one long waitpid.
    while True:
      try:
        rc = process.wait(timeout=0.5)
        break
      except subprocess.TimeoutExpired:
        pass
    with self._lock:
      self._running.discard(process)
    return rc

  def join(self) -> list:
    """Waits for every launcher still running (after `forward`); their exit codes."""
    with self._lock:
      running = list(self._running)
    return [self.wait(process) for process in running]

  def forward(self, signum: int) -> None:
    with self._lock:
      self.stopped_by = signum
      for process in self._running:
        process.send_signal(signum)


_STOPPED = 'stopped'  # execute()'s exit code for a run a stop kept from starting.


def execute(run: Run, run_dir: str, data_dir: str,
            launches: Optional[Launches] = None) -> tuple[Run, object, float, str]:
  """One launcher subprocess; returns (run, exit code, seconds, log path)."""
  launches = launches or Launches()
  if launches.stopped_by is not None:
    return run, _STOPPED, 0.0, ''
  state = run_state(run_dir, run.settings)
  if state == 'done':  # Finished since the runner listed it: by an earlier runner's orphan.
    return run, 0, 0.0, os.path.join(run_dir, LOG_FILE)
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, RUN_CONFIG), 'w') as f:
    yaml.safe_dump(_launcher_config(run, data_dir), f, sort_keys=True)
  log_path = os.path.join(run_dir, LOG_FILE)
  start = time.time()
  with open(log_path, 'a') as log:
    log.write(f'\n=== {time.strftime("%Y-%m-%d %H:%M:%S")} '
              f'{"resume" if state == "partial" else "start"} ===\n')
    log.flush()
    # A partial run resumes from its last checkpoint; `--resume` on a workdir
    # without checkpoints starts it afresh, ingesting the episodes it logged.
    process = launches.start(launch_command(run, run_dir, state == 'partial'),
                             stdout=log, stderr=subprocess.STDOUT,
                             env=dict(os.environ,
                                      MUJOCO_GL=os.environ.get('MUJOCO_GL', 'egl')))
    rc = _STOPPED if process is None else launches.wait(process)
  if rc not in (0, _STOPPED) and run_state(run_dir, run.settings) == 'done':
    rc = 0  # Killed after writing its summary (a stop during its teardown): done.
  return run, rc, time.time() - start, log_path


def _log_tail(path: str, lines: int = 15) -> str:
  if not os.path.exists(path):
    return '    (no log)'
  with open(path, errors='replace') as f:
    tail = [l for l in f.read().splitlines() if 'trajectory_writer.cc' not in l]
  return '\n'.join('    ' + l for l in tail[-lines:])


def write_index(spec: StudySpec, runs: Sequence[Run], workdir: str, spec_path: str) -> str:
  path = os.path.join(workdir, results.STUDY_FILE)
  run_files.write_json_atomic(path, dict(
      name=spec.name, spec=os.path.abspath(spec_path), description=spec.description,
      teacher_eval_episodes=spec.teacher_eval_episodes,
      runs=[dict(name=r.name, key=r.key, sweep=r.sweep, overrides=dict(r.overrides),
                 settings=dict(r.settings), config=r.config) for r in runs]))
  return path


@dataclasses.dataclass(frozen=True)
class Engine:
  """Where the runs execute: the local pool of `workers`, or Ray (`address`: a running
  cluster, None: a local one); a run lost with its Ray worker is retried `max_retries` times."""
  name: str = 'local'
  address: Optional[str] = None
  max_retries: int = 3


def run_study(spec: StudySpec, runs: Sequence[Run], workdir: str, workers: int,
              data_dir: str, beam_args: Sequence[str] = (), log=print,
              launches: Optional[Launches] = None, engine: Engine = Engine(),
              progress_every_s: float = 0.0) -> int:
  """Runs everything not yet done; returns the number of failed runs."""
  launches = launches or Launches()
  prepare_datasets(runs, data_dir, beam_args, workers, log)
  evaluate_teachers(spec, runs, workdir, workers, log)
  states = {r.key: run_state(os.path.join(workdir, results.RUNS_DIR, r.name), r.settings)
            for r in runs}
  conflicts = [r.name for r in runs if states[r.key] == 'conflict']
  if conflicts:
    raise SpecError('run folders hold another config (edited by hand?); move them away: '
                    + ', '.join(conflicts))
  todo = [r for r in runs if states[r.key] != 'done']
  log(f'{len(runs) - len(todo)} of {len(runs)} runs already done; '
      f'{sum(states[r.key] == "partial" for r in todo)} to resume, '
      f'{sum(states[r.key] == "new" for r in todo)} to start; {workers} workers')
  failed = []
  run_dirs = [os.path.join(workdir, results.RUNS_DIR, r.name) for r in todo]
  with tqdm(total=len(todo), desc='runs', unit='run', disable=None) as bar, \
       progress_lines.ProgressLines(run_dirs, progress_every_s):

    def on_result(result):
      run, rc, seconds, log_path = result
      bar.update(1)
      if rc == 0:
        tqdm.write(f'done   {run.name} ({seconds / 60:.1f} min)')
      elif rc == _STOPPED:
        pass
      elif launches.stopped_by is not None and rc == 128 + launches.stopped_by:
        tqdm.write(f'stopped {run.name} with a final checkpoint ({seconds / 60:.1f} min)')
      else:
        failed.append(run.name)
        tqdm.write(f'FAILED {run.name} (exit {rc}); log {log_path}:\n{_log_tail(log_path)}')

    if engine.name == 'ray':
      from learners.study import ray_engine  # pylint: disable=g-import-not-at-top
      with stopping.StopRequest(on_signal=launches.forward):
        ray_engine.run_all(todo, run_dirs, data_dir, engine.address, engine.max_retries,
                           on_result, gpus_per_run=spec.gpus_per_run,
                           stopped=lambda: launches.stopped_by, stopped_code=_STOPPED)
    else:
      with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
           stopping.StopRequest(on_signal=launches.forward):
        futures = [pool.submit(execute, r, d, data_dir, launches)
                   for r, d in zip(todo, run_dirs)]
        for future in concurrent.futures.as_completed(futures):
          on_result(future.result())
  if failed:
    log(f'{len(failed)} runs failed: {", ".join(failed)}. Rerun the same command to retry '
        'them (finished runs are skipped).')
  return len(failed)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n\n')[0], epilog=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--spec', required=True, help='study YAML, e.g. studies/laptop.yaml')
  parser.add_argument('--workdir', default=None, help='default: runs/<study name>')
  parser.add_argument('--workers', type=int, default=2, help='runs in parallel (and Beam '
                      'workers for the dataset build)')
  parser.add_argument('--data_dir', default=None,
                      help='teacher datasets (default: the spec\'s defaults.data_dir, '
                           'else <workdir>/data)')
  parser.add_argument('--dry_run', action='store_true', help='list runs and cost, run nothing')
  parser.add_argument('--engine', choices=('local', 'ray'), default='local',
                      help='local: a pool of --workers launcher processes on this machine; '
                           'ray: one Ray task per run (--workdir on a shared filesystem)')
  parser.add_argument('--address', default=None,
                      help='--engine ray: a running cluster (HOST:PORT or "auto"); default: '
                           'start a local one')
  parser.add_argument('--progress_every', type=float, default=60.0,
                      help='seconds between the lines of runs in progress (episodes spent, '
                           'grad steps, success so far); 0: none')
  parser.add_argument('--max_retries', type=int, default=3,
                      help='--engine ray: retries of a run whose Ray worker died (each '
                           'resumes from the run\'s last checkpoint)')
  parser.add_argument('--verbosity', type=int, default=0,
                      help=f'0: libraries\' log lines (Beam, absl, TF) go to '
                           f'<workdir>/{STUDY_LOG_FILE}; 1: to the console too')
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = build_parser()
  args, beam_args = parser.parse_known_args(argv)
  for flag in ('max_retries', 'progress_every'):
    if getattr(args, flag) < 0:
      parser.error(f'--{flag} must be >= 0, got {getattr(args, flag)}')
  if beam_args:  # Beam only when asked for: a dry run stays free of TF and Beam.
    from pipelines import build_teacher_datasets  # pylint: disable=g-import-not-at-top
    unknown = build_teacher_datasets.unknown_beam_flags(beam_args)
    if unknown:  # A typo (`--dryrun`) would otherwise start the whole study.
      parser.error('unrecognized arguments (neither the runner\'s nor Apache Beam\'s): '
                   + ', '.join(unknown))
  try:
    spec = load_spec(args.spec)
    runs = expand(spec)
  except (SpecError, OSError, yaml.YAMLError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  # Absolute: Ray workers (other machines, other working directories) read it too.
  workdir = os.path.abspath(args.workdir or os.path.join('runs', spec.name))
  data_dir = args.data_dir or spec.defaults.get('data_dir') or os.path.join(workdir, 'data')
  if '://' not in data_dir:  # Keep gs://... (a cluster Beam runner's bucket) as is.
    data_dir = os.path.abspath(os.path.expanduser(data_dir))
  if args.dry_run:
    print(cost_lib.format_dry_run(spec, runs, args.workers, workdir))
    return 0
  os.makedirs(workdir, exist_ok=True)
  start = time.time()
  launches = Launches()
  with contextlib.ExitStack() as held:
    try:
      # A second runner in the same study would launch the runs the first has in
      # progress again: their own locks keep the run folders whole, but it would
      # rewrite study.json under the first and report those runs as failed.
      held.enter_context(run_files.exclusive(workdir, 0.0))
    except FileExistsError as e:
      print(f'error: {e} One study runner at a time: wait for it to finish, or stop it '
            '(SIGTERM: each run in progress writes a final checkpoint), then rerun this '
            'command.', file=sys.stderr)
      return 1
    os.makedirs(os.path.join(workdir, results.RUNS_DIR), exist_ok=True)
    write_index(spec, runs, workdir, args.spec)
    try:
      with console.libraries_log(os.path.join(workdir, STUDY_LOG_FILE), args.verbosity):
        failed = run_study(spec, runs, workdir, args.workers, data_dir, beam_args,
                           launches=launches,
                           engine=Engine(args.engine, args.address, args.max_retries),
                           progress_every_s=args.progress_every)
    except SpecError as e:
      print(f'error: {e}', file=sys.stderr)
      return 2
  if launches.stopped_by is not None:
    print(f'study {spec.name} stopped by {stopping.signal_name(launches.stopped_by)}: every '
          'run in progress wrote a final checkpoint; rerun the same command to resume.',
          file=sys.stderr)
    return 128 + launches.stopped_by
  print(f'study {spec.name}: {len(runs) - failed}/{len(runs)} runs done in '
        f'{(time.time() - start) / 60:.1f} min; results in {os.path.abspath(workdir)}; '
        f'report: python -m learners.study.report {workdir}')
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())

