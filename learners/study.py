r"""Run a study: a grid of runs (methods x budgets x offline episodes x ...).

  python -m learners.study --spec studies/laptop.yaml --workdir runs/laptop \
      [--workers 2] [--dry_run] [standard Beam options for the dataset build]

A spec (YAML) names a grid and optional sweeps; every grid cell is one run of
`python -m learners.launch`.  The runner

  1. expands the grid into run configs and rejects invalid entries up front,
     listing all of them (unknown method/triplet/teacher, a dataset for a
     replay-only method, an online budget for an offline-only method, a budget
     not larger than the dataset of a mixed method, unknown override keys);
  2. with --dry_run, lists the runs and estimates their cost and stops;
  3. builds every missing teacher dataset once per (triplet, teacher, obs,
     episode steps) with the Beam job, all sizes in one go (they are nested);
  4. evaluates the teachers on the students' evaluation seeds (if the spec asks);
  5. runs up to --workers launcher subprocesses at a time.  A run's workdir is
     named by a hash of its config: a run whose `summary.json` exists with a
     matching `config.json` is skipped, an unfinished one continues with the
     launcher's `--resume`.  So killing the runner and starting it again loses
     at most the work since each run's last checkpoint.

Each run's output (and its error, if it fails) is in `<workdir>/runs/<name>/launch.log`;
failures do not stop the other runs and make the runner exit 1 at the end.
"""

import argparse
import collections
import concurrent.futures
import dataclasses
import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from typing import Any, Iterable, Mapping, Optional, Sequence

import yaml
from tqdm import tqdm

from envs import specs as env_specs

STUDY_FILE = 'study.json'  # The expanded runs: what the report reads.
TEACHERS_FILE = 'teachers.json'  # Teacher evaluation on the eval seeds.
RUNS_DIR = 'runs'
RUN_CONFIG = 'run.yaml'
LOG_FILE = 'launch.log'

# RunConfig fields that do not change a run's result: left out of the hash, so
# moving the data or changing how often a run checkpoints does not rerun it.
_NOT_IDENTITY = frozenset({
    'workdir', 'data_dir', 'build_dataset', 'build_workers', 'resume', 'progress',
    'checkpoint_every_s', 'checkpoint_every_episodes', 'replay_timeout_ms',
    'log_every', 'fault_kill_after_episodes'})
# Fields the grid sets; `defaults` and `overrides` may not.
_GRID_FIELDS = ('method', 'budget', 'offline_episodes', 'triplet', 'teacher', 'seed', 'obs')

# Measured on this machine by `make demo` (2 CPU cores shared with other jobs,
# load average 6-7, state obs, 2 runs in parallel; docs/study.md): seconds per
# unit of work, per worker.  An idle machine is faster; vision is slower (the
# estimate scales it by _VISION_FACTOR and says so).
COST_S = {
    'actor_env_step': 4.0e-3,  # Student step: policy sample, envlogger, Reverb insert.
    'eval_env_step': 2.5e-3,  # Deterministic evaluation step.
    'teacher_env_step': 4.5e-3,  # Beam dataset build, per worker process.
    # Gradient step (batch 64, 256-unit nets) by weighting, data wait included.
    'grad_step': {'none': 12e-3, 'advantage': 16e-3, 'softmax': 21e-3, 'mpo': 24e-3},
    'run_overhead': 20.0,  # Process start, TF import, dataset open, Reverb.
}
_VISION_FACTOR = 10.0


class SpecError(ValueError):
  """A study spec is invalid; the message lists every bad entry."""


@dataclasses.dataclass(frozen=True)
class Grid:
  """One cross product of runs.  Lists everywhere; see docs/study.md."""
  methods: Sequence[str]
  budgets: Sequence[int]
  # A list used for every budget, or {budget: [sizes]}.  Offline-only methods
  # ignore it (their dataset is the budget); replay-only methods use 0.
  offline_episodes: Any = ()
  triplets: Sequence[str] = ('triplet1',)
  teachers: Sequence[str] = ('generalization',)
  seeds: Sequence[int] = (0,)
  obs: Sequence[str] = ('state',)
  overrides: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
  name: str = 'grid'  # Sweeps are named; the report groups their runs by name.

  def sizes_for(self, budget: int) -> list[int]:
    if isinstance(self.offline_episodes, Mapping):
      return list(self.offline_episodes.get(budget, self.offline_episodes.get(str(budget), [])))
    return list(self.offline_episodes)


@dataclasses.dataclass(frozen=True)
class StudySpec:
  name: str
  grid: Grid
  sweeps: Sequence[Grid] = ()
  defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  teacher_eval_episodes: int = 0  # 0: the report uses docs/results/teacher_table.json.
  description: str = ''


@dataclasses.dataclass(frozen=True)
class Run:
  """One run: the settings the spec gives it, the grid/sweep it came from.

  Only the spec's settings name a run (its hash); the launcher's defaults fill
  in the rest.  So a new launcher setting (with a default) does not rename and
  rerun every finished run; to pin a launcher default, set it in the spec.
  """
  settings: Mapping[str, Any]  # Grid fields + spec defaults + overrides.
  sweep: str
  overrides: Mapping[str, Any]

  @property
  def config(self) -> dict:
    """Every RunConfig field (except workdir), resolved with today's defaults."""
    return dict(_run_config_fields(), **self.settings)

  @property
  def key(self) -> str:
    return config_hash(self.settings)

  @property
  def name(self) -> str:
    c = self.config
    return (f'{c["method"]}_{c["triplet"]}_{c["teacher"]}_{c["obs"]}_b{c["budget"]}'
            f'_o{c["offline_episodes"]}_s{c["seed"]}-{self.key}')


def config_hash(settings: Mapping[str, Any]) -> str:
  """Stable 10-hex-digit hash of the settings that change a run's result."""
  identity = {k: v for k, v in sorted(settings.items()) if k not in _NOT_IDENTITY}
  return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]


# --- spec --------------------------------------------------------------------


def _grid(data: Mapping[str, Any], where: str) -> Grid:
  known = {f.name for f in dataclasses.fields(Grid)}
  unknown = sorted(set(data) - known)
  if unknown:
    raise SpecError(f'{where}: unknown keys {unknown}; valid: {sorted(known)}.')
  for key in ('methods', 'budgets'):
    if key not in data:
      raise SpecError(f'{where}: `{key}` is required.')
  return Grid(**data)


def load_spec(path: str) -> StudySpec:
  with open(path) as f:
    data = yaml.safe_load(f) or {}
  known = {f.name for f in dataclasses.fields(StudySpec)}
  unknown = sorted(set(data) - known)
  if unknown:
    raise SpecError(f'{path}: unknown keys {unknown}; valid: {sorted(known)}.')
  if 'grid' not in data:
    raise SpecError(f'{path}: `grid` is required.')
  sweeps = [_grid(dict(s), f'{path}: sweeps[{i}]') for i, s in enumerate(data.get('sweeps') or [])]
  unnamed = [i for i, s in enumerate(sweeps) if s.name == 'grid']
  if unnamed:
    raise SpecError(f'{path}: sweeps {unnamed} need a `name` (other than "grid").')
  return StudySpec(name=data.get('name', os.path.splitext(os.path.basename(path))[0]),
                   grid=_grid(dict(data['grid']), f'{path}: grid'), sweeps=sweeps,
                   defaults=dict(data.get('defaults') or {}),
                   teacher_eval_episodes=int(data.get('teacher_eval_episodes', 0)),
                   description=data.get('description', ''))


# --- expansion and checks ----------------------------------------------------


def _method_kind(method_name: str) -> str:
  """'offline' (dataset only), 'online' (replay only) or 'mixed'."""
  from learners import methods as methods_lib  # pylint: disable=g-import-not-at-top
  from learners import training  # pylint: disable=g-import-not-at-top
  row = training.resolve_method(method_name)
  if not training.is_online(row):
    return 'offline'
  if row.offline_fraction == methods_lib.METHODS['MPO'].offline_fraction:
    return 'online'
  return 'mixed'


def _run_config_fields() -> dict:
  """RunConfig's fields and defaults, without `workdir` (the runner picks it)."""
  from learners import training  # pylint: disable=g-import-not-at-top
  return {f.name: f.default for f in dataclasses.fields(training.RunConfig)
          if f.name != 'workdir'}


def expand_grid(grid: Grid, defaults: Mapping[str, Any], errors: list) -> list[Run]:
  """All runs of one grid; bad entries are appended to `errors`, not raised."""
  from envs import teachers as teachers_lib  # pylint: disable=g-import-not-at-top
  from envs import triplets as triplets_lib  # pylint: disable=g-import-not-at-top
  where = f'{grid.name}:'
  fields = _run_config_fields()
  kinds = {}
  for method in grid.methods:
    try:
      kinds[method] = _method_kind(method)
    except ValueError as e:
      errors.append(f'{where} {e}')
  for triplet in grid.triplets:
    if triplet not in triplets_lib.TRIPLET_NAMES:
      errors.append(f'{where} unknown triplet {triplet!r}; valid: '
                    f'{", ".join(triplets_lib.TRIPLET_NAMES)}.')
  for teacher in grid.teachers:
    if teacher not in teachers_lib.TEACHER_NAMES and not os.path.isdir(str(teacher)):
      errors.append(f'{where} unknown teacher {teacher!r}; valid: '
                    f'{", ".join(teachers_lib.TEACHER_NAMES)} or a SavedModel directory.')
  for obs in grid.obs:
    if obs not in env_specs.OBS_MODES:
      errors.append(f'{where} unknown obs {obs!r}; valid: {", ".join(env_specs.OBS_MODES)}.')
  for key in grid.overrides:
    if key not in fields or key in _GRID_FIELDS:
      errors.append(f'{where} override {key!r} is not a launcher setting the grid may '
                    f'vary; valid: {sorted(set(fields) - set(_GRID_FIELDS))}.')
  if isinstance(grid.offline_episodes, Mapping):
    extra = sorted(set(int(b) for b in grid.offline_episodes) - set(grid.budgets))
    if extra:
      errors.append(f'{where} offline_episodes names budgets {extra} that are not in budgets.')
  override_items = [[(k, v) for v in vs] for k, vs in sorted(grid.overrides.items())]
  runs = []
  for method, budget in itertools.product(grid.methods, grid.budgets):
    kind = kinds.get(method)
    if kind is None:
      continue
    sizes = grid.sizes_for(budget)
    if kind == 'offline':
      # An offline-only method spends exactly its dataset: one run per budget.
      bad = [s for s in sizes if s != budget]
      if bad and all(kinds.get(m) == 'offline' for m in grid.methods):
        errors.append(f'{where} {method} is offline-only: offline_episodes {bad} != budget '
                      f'{budget} would be an online budget for it.')
      sizes = [budget]
    elif kind == 'online':
      sizes = [0]
    else:
      bad = [s for s in sizes if not 0 < s < budget]
      if bad:
        errors.append(f'{where} {method} at budget {budget}: offline_episodes {bad} must be '
                      f'> 0 and < the budget (the student needs online episodes).')
      sizes = [s for s in sizes if 0 < s < budget]
      if not sizes and not bad:
        errors.append(f'{where} {method} at budget {budget}: no offline_episodes given.')
    for size, triplet, teacher, seed, obs in itertools.product(
        sizes, grid.triplets, grid.teachers, grid.seeds, grid.obs):
      for combo in itertools.product(*override_items) if override_items else [()]:
        settings = dict(defaults)
        settings.update(method=method, budget=budget, offline_episodes=size,
                        triplet=triplet, teacher=teacher, seed=seed, obs=obs)
        settings.update(dict(combo))
        runs.append(Run(settings=settings, sweep=grid.name, overrides=dict(combo)))
  return runs


def expand(spec: StudySpec) -> list[Run]:
  """Every run of the study, each once; raises SpecError listing all bad entries."""
  errors = []
  fields = _run_config_fields()
  bad_defaults = sorted(k for k in spec.defaults if k not in fields or k in _GRID_FIELDS)
  if bad_defaults:
    errors.append(f'defaults: {bad_defaults} cannot be set there (unknown, or set by the '
                  'grid, or the workdir the runner chooses).')
  runs = []
  for grid in [spec.grid, *spec.sweeps]:
    runs += expand_grid(grid, spec.defaults, errors)
  if not errors:
    errors += _launcher_checks(runs)
  if errors:
    raise SpecError(f'{len(errors)} invalid entr{"y" if len(errors) == 1 else "ies"} in '
                    f'study {spec.name!r}:\n  ' + '\n  '.join(errors))
  unique = {}
  for run in runs:  # A sweep may repeat a grid run (e.g. a default value): run it once.
    unique.setdefault(json.dumps(run.config, sort_keys=True), run)
  return list(unique.values())


def _launcher_checks(runs: Iterable[Run]) -> list[str]:
  """The launcher's own pre-flight checks, so nothing fails after hours of work."""
  from learners import training  # pylint: disable=g-import-not-at-top
  errors = []
  for run in runs:
    config = dict(run.config)
    if _method_kind(config['method']) == 'offline':
      config['budget'] = None if config['budget'] == config['offline_episodes'] else config['budget']
    try:
      training.check_config(training.RunConfig(workdir='unused', **config))
    except (ValueError, NotImplementedError, TypeError) as e:
      errors.append(f'{run.sweep}: {run.name}: {e}')
  return errors


# --- cost --------------------------------------------------------------------


@dataclasses.dataclass
class Cost:
  runs: int = 0
  episodes: int = 0  # Budget episodes (robot time), datasets counted once per group.
  online_episodes: int = 0
  eval_episodes: int = 0
  env_steps: int = 0  # Student + evaluation + teacher dataset steps.
  grad_steps: int = 0
  seconds: float = 0.0

  def hours(self, workers: int) -> float:
    return self.seconds / 3600 / max(1, workers)


def _grad_steps(config: Mapping[str, Any], kind: str) -> int:
  if kind == 'offline':
    return int(config['grad_steps'])
  from learners import training  # pylint: disable=g-import-not-at-top
  row = training.resolve_method(config['method'])
  pretrain = (config['offline_pretrain_steps'] if config['offline_pretrain_steps'] is not None
              else training.default_pretrain_steps(row))
  online_steps = (config['budget'] - config['offline_episodes']) * config['episode_steps']
  return pretrain + online_steps // config['env_steps_per_grad_step']


def run_cost(run: Run) -> Cost:
  """Estimated work of one run (ignores the min replay size warm-up)."""
  from learners import training  # pylint: disable=g-import-not-at-top
  c = run.config
  kind = _method_kind(c['method'])
  weighting = training.resolve_method(c['method']).weighting
  factor = _VISION_FACTOR if c['obs'] == 'vision' else 1.0
  grads = _grad_steps(c, kind)
  online = 0 if kind == 'offline' else c['budget'] - c['offline_episodes']
  evals = (grads // c['eval_every'] * c['eval_episodes'] if c['eval_every'] else 0)
  evals += c['final_eval_episodes']
  seconds = (COST_S['run_overhead'] + factor * (
      online * c['episode_steps'] * COST_S['actor_env_step']
      + evals * c['episode_steps'] * COST_S['eval_env_step']
      + grads * COST_S['grad_step'][weighting]))
  return Cost(runs=1, episodes=c['budget'], online_episodes=online, eval_episodes=evals,
              env_steps=(online + evals) * c['episode_steps'], grad_steps=grads,
              seconds=seconds)


def dataset_groups(runs: Iterable[Run]) -> dict:
  """(triplet, teacher, obs, episode_steps, image_size) -> sorted sizes needed."""
  groups = collections.defaultdict(set)
  for run in runs:
    c = run.config
    if c['offline_episodes']:
      groups[(c['triplet'], c['teacher'], c['obs'], c['episode_steps'],
              c['image_size'])].add(c['offline_episodes'])
  return {k: sorted(v) for k, v in sorted(groups.items())}


def study_cost(spec: StudySpec, runs: Sequence[Run]) -> tuple[Cost, Cost]:
  """(runs' cost, teacher datasets' + teacher evaluation cost)."""
  total = Cost()
  for run in runs:
    for field in dataclasses.fields(Cost):
      setattr(total, field.name, getattr(total, field.name) + getattr(run_cost(run), field.name))
  data = Cost()
  for (_, _, obs, steps, _), sizes in dataset_groups(runs).items():
    factor = _VISION_FACTOR if obs == 'vision' else 1.0
    data.episodes += max(sizes)
    data.env_steps += max(sizes) * steps
    data.seconds += factor * max(sizes) * steps * COST_S['teacher_env_step'] + 30
  pairs = {(r.config['triplet'], r.config['teacher'], r.config['episode_steps']) for r in runs}
  for _, _, steps in pairs:
    data.eval_episodes += spec.teacher_eval_episodes
    data.env_steps += spec.teacher_eval_episodes * steps
    data.seconds += spec.teacher_eval_episodes * steps * COST_S['eval_env_step']
  return total, data


def format_dry_run(spec: StudySpec, runs: Sequence[Run], workers: int, workdir: str) -> str:
  lines = [f'study {spec.name}: {len(runs)} runs in {workdir}']
  for run in runs:
    cost = run_cost(run)
    state = run_state(os.path.join(workdir, RUNS_DIR, run.name), run.settings)
    extra = ' '.join(f'{k}={v}' for k, v in run.overrides.items())
    lines.append(f'  [{state:8}] {run.name}  {cost.grad_steps} grad steps, '
                 f'{cost.online_episodes} online eps, ~{cost.seconds / 60:.1f} min'
                 + (f'  ({run.sweep}: {extra})' if run.sweep != 'grid' else ''))
  for (triplet, teacher, obs, steps, image), sizes in dataset_groups(runs).items():
    lines.append(f'  dataset {triplet}/{teacher}/{obs} steps={steps}: sizes {sizes} '
                 f'(one Beam job simulates {max(sizes)} episodes)')
  total, data = study_cost(spec, runs)
  vision = any(r.config['obs'] == 'vision' for r in runs)
  lines.append(
      f'cost: {total.runs} runs, {total.online_episodes:,} online + {data.episodes:,} teacher '
      f'dataset episodes simulated, {total.eval_episodes + data.eval_episodes:,} evaluation '
      f'episodes, {total.env_steps + data.env_steps:,} env steps, {total.grad_steps:,} '
      f'grad steps')
  lines.append(
      f'estimated time: {total.seconds / 3600 + data.seconds / 3600:.2f} h of one core-worker'
      f' -> ~{total.hours(workers) + data.seconds / 3600 / max(1, workers):.2f} h with '
      f'--workers {workers} (per-step costs measured on 2 shared cores, state obs'
      + (f'; vision estimated as {_VISION_FACTOR:g}x state' if vision else '') + ')')
  return '\n'.join(lines)


# --- state of a run on disk ---------------------------------------------------


def run_state(run_dir: str, settings: Mapping[str, Any]) -> str:
  """'done', 'partial' (resume it), 'new', or 'conflict' (another config there)."""
  if not os.path.isdir(run_dir):
    return 'new'
  saved_path = os.path.join(run_dir, 'config.json')
  if os.path.exists(saved_path):
    with open(saved_path) as f:
      saved = json.load(f)
    if saved.get('budget') is None:  # The launcher's spelling for offline-only runs.
      saved['budget'] = saved.get('offline_episodes')
    if config_hash({k: saved.get(k) for k in settings}) != config_hash(settings):
      return 'conflict'
  if os.path.exists(os.path.join(run_dir, 'summary.json')):
    return 'done' if os.path.exists(saved_path) else 'conflict'
  return 'partial' if os.listdir(run_dir) else 'new'


# --- work ---------------------------------------------------------------------


def prepare_datasets(runs: Sequence[Run], data_dir: str, beam_args: Sequence[str],
                     workers: int, log=print) -> None:
  """Builds each missing nested dataset group once, all its sizes in one Beam job."""
  from pipelines import build_teacher_datasets  # pylint: disable=g-import-not-at-top
  from pipelines import teacher_config  # pylint: disable=g-import-not-at-top
  from pipelines import teacher_dataset  # pylint: disable=g-import-not-at-top
  for (triplet, teacher, obs, steps, image), sizes in dataset_groups(runs).items():
    missing = []
    for size in sizes:
      name = teacher_config.config_name(triplet, teacher, obs, size, episode_steps=steps,
                                        image_size=image)
      try:
        teacher_dataset.check_teacher_dataset(name, data_dir)
      except teacher_dataset.TeacherDatasetError:
        missing.append(size)
    if not missing:
      log(f'datasets {triplet}/{teacher}/{obs}: sizes {sizes} already built in {data_dir}')
      continue
    log(f'building datasets {triplet}/{teacher}/{obs} sizes {sizes} (missing {missing}) '
        f'with Beam: {max(sizes)} teacher episodes of {steps} steps')
    job = build_teacher_datasets.JobConfig(
        triplets=[triplet], teachers=[teacher], obs_modes=[obs], sizes=sizes,
        data_dir=data_dir, episode_steps=steps, image_size=image, overwrite=True)
    build_teacher_datasets.run(job, build_teacher_datasets.local_beam_options(
        list(beam_args), workers))


def evaluate_teachers(spec: StudySpec, runs: Sequence[Run], workdir: str, workers: int,
                      log=print) -> None:
  """Teacher success on the eval seeds the students use (skipped if done)."""
  if not spec.teacher_eval_episodes:
    return
  path = os.path.join(workdir, TEACHERS_FILE)
  cells = []
  if os.path.exists(path):
    with open(path) as f:
      cells = json.load(f)['cells']
  have = {(c['teacher'], c['triplet'], c['episode_steps']) for c in cells
          if c['episodes'] == spec.teacher_eval_episodes}
  from envs import evaluate as envs_evaluate  # pylint: disable=g-import-not-at-top
  pairs = sorted({(r.config['teacher'], r.config['triplet'], r.config['episode_steps'])
                  for r in runs} - have)
  for teacher, triplet, steps in pairs:
    log(f'evaluating teacher {teacher} on {triplet}: {spec.teacher_eval_episodes} episodes')
    for cell in envs_evaluate.evaluate([teacher], [triplet], spec.teacher_eval_episodes,
                                       workers=workers, episode_steps=steps):
      cells.append(dict(cell, episode_steps=steps))
  if pairs:
    _write_json(path, {'cells': cells, 'source': 'envs.evaluate.evaluate, deterministic '
                                                 'teacher on envs.evaluate.eval_seed'})


def _write_json(path: str, data) -> None:
  tmp = f'{path}.tmp.{os.getpid()}'
  with open(tmp, 'w') as f:
    json.dump(data, f, indent=1, sort_keys=True)
  os.replace(tmp, path)


def launch_command(run: Run, run_dir: str, resume: bool) -> list[str]:
  cmd = [sys.executable, '-m', 'learners.launch', '--config',
         os.path.join(run_dir, RUN_CONFIG), '--workdir', run_dir]
  return cmd + (['--resume'] if resume else [])


def _launcher_config(run: Run, data_dir: str) -> dict:
  # Only the spec's settings: the launcher fills in its own defaults.
  config = dict(run.settings, data_dir=data_dir, build_dataset=False, progress=False)
  if _method_kind(config['method']) == 'offline':
    config['budget'] = None  # The launcher's spelling of "the dataset is the budget".
  return config


def execute(run: Run, run_dir: str, data_dir: str) -> tuple[Run, int, float, str]:
  """One launcher subprocess; returns (run, exit code, seconds, log path)."""
  state = run_state(run_dir, run.settings)
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
    # without checkpoints starts it afresh (episodes logged before are discarded).
    rc = subprocess.call(launch_command(run, run_dir, state == 'partial'),
                         stdout=log, stderr=subprocess.STDOUT,
                         env=dict(os.environ, MUJOCO_GL=os.environ.get('MUJOCO_GL', 'egl')))
  return run, rc, time.time() - start, log_path


def _log_tail(path: str, lines: int = 15) -> str:
  with open(path, errors='replace') as f:
    tail = [l for l in f.read().splitlines() if 'trajectory_writer.cc' not in l]
  return '\n'.join('    ' + l for l in tail[-lines:])


def write_index(spec: StudySpec, runs: Sequence[Run], workdir: str, spec_path: str) -> str:
  path = os.path.join(workdir, STUDY_FILE)
  _write_json(path, dict(
      name=spec.name, spec=os.path.abspath(spec_path), description=spec.description,
      teacher_eval_episodes=spec.teacher_eval_episodes,
      runs=[dict(name=r.name, key=r.key, sweep=r.sweep, overrides=dict(r.overrides),
                 settings=dict(r.settings), config=r.config) for r in runs]))
  return path


def run_study(spec: StudySpec, runs: Sequence[Run], workdir: str, workers: int,
              data_dir: str, beam_args: Sequence[str] = (), log=print) -> int:
  """Runs everything not yet done; returns the number of failed runs."""
  prepare_datasets(runs, data_dir, beam_args, workers, log)
  evaluate_teachers(spec, runs, workdir, workers, log)
  states = {r.key: run_state(os.path.join(workdir, RUNS_DIR, r.name), r.settings)
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
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
       tqdm(total=len(todo), desc='runs', unit='run', disable=None) as bar:
    futures = [pool.submit(execute, r, os.path.join(workdir, RUNS_DIR, r.name), data_dir)
               for r in todo]
    for future in concurrent.futures.as_completed(futures):
      run, rc, seconds, log_path = future.result()
      bar.update(1)
      if rc == 0:
        tqdm.write(f'done   {run.name} ({seconds / 60:.1f} min)')
      else:
        failed.append(run.name)
        tqdm.write(f'FAILED {run.name} (exit {rc}); log {log_path}:\n{_log_tail(log_path)}')
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
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  args, beam_args = build_parser().parse_known_args(argv)
  try:
    spec = load_spec(args.spec)
    runs = expand(spec)
  except (SpecError, OSError, yaml.YAMLError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  workdir = args.workdir or os.path.join('runs', spec.name)
  data_dir = args.data_dir or spec.defaults.get('data_dir') or os.path.join(workdir, 'data')
  if '://' not in data_dir:  # Keep gs://... (a cluster Beam runner's bucket) as is.
    data_dir = os.path.abspath(os.path.expanduser(data_dir))
  if args.dry_run:
    print(format_dry_run(spec, runs, args.workers, workdir))
    return 0
  os.makedirs(os.path.join(workdir, RUNS_DIR), exist_ok=True)
  write_index(spec, runs, workdir, args.spec)
  start = time.time()
  try:
    failed = run_study(spec, runs, workdir, args.workers, data_dir, beam_args)
  except SpecError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'study {spec.name}: {len(runs) - failed}/{len(runs)} runs done in '
        f'{(time.time() - start) / 60:.1f} min; results in {os.path.abspath(workdir)}; '
        f'report: python -m learners.report {workdir}')
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
