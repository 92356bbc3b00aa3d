"""A spec's grid expanded into runs, each checked up front and named by a hash.

Only a run's identity settings (`learners.training.config.IDENTITY_FIELDS`)
enter its hash, so moving the data or changing how often a run checkpoints
does not rename (and rerun) it.
"""

import collections
import dataclasses
import hashlib
import itertools
import json
import os
from typing import Any, Iterable, Mapping, NamedTuple

from envs import specs as env_specs
from envs import teachers as teachers_lib
from envs import triplets as triplets_lib
from learners import methods as methods_lib
from learners.study.spec import Grid, SpecError, StudySpec
from learners.training import config as config_lib
from learners.training import workdir as run_files

ATTEMPTS_FILE = 'attempts.txt'  # `--engine ray`: one line per attempt of a run.
# Fields the grid sets; `defaults` and `overrides` may not.
_GRID_FIELDS = ('method', 'budget', 'offline_episodes', 'triplet', 'teacher', 'seed', 'obs')


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
  identity = {k: v for k, v in sorted(settings.items())
              if k not in config_lib.OPERATIONAL_FIELDS}
  return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]


def _method_kind(method_name: str) -> str:
  return methods_lib.get_method(method_name).kind


def _run_config_fields() -> dict:
  """RunConfig's fields and defaults, without `workdir` (the runner picks it)."""
  return {f.name: f.default for f in dataclasses.fields(config_lib.RunConfig)
          if f.name != 'workdir'}


def expand_grid(grid: Grid, defaults: Mapping[str, Any], errors: list) -> list[Run]:
  """All runs of one grid; bad entries are appended to `errors`, not raised."""
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
  for grid in [*spec.grid, *spec.sweeps]:
    runs += expand_grid(grid, spec.defaults, errors)
  if not errors:
    errors += _launcher_checks(runs)
  if errors:
    raise SpecError(f'{len(errors)} invalid entr{"y" if len(errors) == 1 else "ies"} in '
                    f'study {spec.name!r}:\n  ' + '\n  '.join(errors))
  unique = {}
  for run in runs:  # A sweep may repeat a grid run (e.g. a default value): run it once.
    unique.setdefault(json.dumps(run.config, sort_keys=True), run)
  runs = list(unique.values())
  if spec.run_order == 'seed_major':
    runs = _seed_major(runs)
  return runs


def _seed_major(runs: list[Run]) -> list[Run]:
  """Each cell's k-th seed after every cell's (k-1)-th; listed order otherwise.

  Ranks by the seed's position within its cell, not by its value, so a cell
  seeded [3, 4] runs its 3 alongside other cells' 0.
  """
  seen = collections.Counter()
  rank = []
  for run in runs:
    cell = json.dumps({k: v for k, v in run.config.items() if k != 'seed'}, sort_keys=True)
    rank.append(seen[cell])
    seen[cell] += 1
  return [run for _, _, run in sorted(zip(rank, range(len(runs)), runs))]


def _launcher_checks(runs: Iterable[Run]) -> list[str]:
  """The launcher's own pre-flight checks, so nothing fails after hours of work."""
  errors = []
  for run in runs:
    config = dict(run.config)
    if _method_kind(config['method']) == 'offline':
      config['budget'] = None if config['budget'] == config['offline_episodes'] else config['budget']
    try:
      config_lib.check_config(config_lib.RunConfig(workdir='unused', **config))
    except (ValueError, NotImplementedError, TypeError) as e:
      errors.append(f'{run.sweep}: {run.name}: {e}')
  return errors


class DatasetGroup(NamedTuple):
  """Nested teacher datasets that one Beam job builds, all sizes in one pass."""
  triplet: str
  teacher: str
  obs: str
  episode_steps: int
  image_size: int
  policy_mode: str


def dataset_groups(runs: Iterable[Run]) -> dict:
  """DatasetGroup -> sorted sizes needed."""
  groups = collections.defaultdict(set)
  for run in runs:
    c = run.config
    if c['offline_episodes']:
      groups[DatasetGroup(c['triplet'], c['teacher'], c['obs'], c['episode_steps'],
                          c['image_size'], c['teacher_policy_mode'])].add(c['offline_episodes'])
  return {k: sorted(v) for k, v in sorted(groups.items())}


def run_state(run_dir: str, settings: Mapping[str, Any]) -> str:
  """'done', 'partial' (resume it), 'new', or 'conflict' (another config there)."""
  if not os.path.isdir(run_dir):
    return 'new'
  saved_path = os.path.join(run_dir, run_files.CONFIG_FILE)
  if os.path.exists(saved_path):
    saved = run_files.read_json(saved_path)
    if saved.get('budget') is None:  # The launcher's spelling for offline-only runs.
      saved['budget'] = saved.get('offline_episodes')
    if config_hash({k: saved.get(k) for k in settings}) != config_hash(settings):
      return 'conflict'
  if os.path.exists(os.path.join(run_dir, run_files.SUMMARY_FILE)):
    return 'done' if os.path.exists(saved_path) else 'conflict'
  # The Ray engine notes an attempt before the launcher starts: not yet a run's output.
  return 'partial' if set(os.listdir(run_dir)) - {ATTEMPTS_FILE} else 'new'
