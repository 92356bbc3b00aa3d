"""A study spec (YAML): one grid of runs and optional named sweeps; see docs/study.md."""

import dataclasses
import os
from typing import Any, Mapping, Sequence

import yaml


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
  # One grid, or several blocks whose runs together form the main grid (e.g. CRR
  # at every budget, mixed methods at the smallest only): a cross product cannot.
  grid: Sequence[Grid]
  sweeps: Sequence[Grid] = ()
  defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  teacher_eval_episodes: int = 0  # 0: the report uses the shipped teachers' cards.
  gpus_per_run: float = 0.0  # `--engine ray`: GPUs each run's task asks for (e.g. 0.5, 1).
  # The order the runner starts runs in.  'listed': the spec's order.  'seed_major':
  # every cell's first seed before any cell's second, so a study that spans
  # sessions reads each finding once before it repeats any.
  run_order: str = 'listed'
  description: str = ''


RUN_ORDERS = ('listed', 'seed_major')


# Grid fields that hold lists: a bare `methods: R-CRR` would iterate its letters.
_LIST_FIELDS = ('methods', 'budgets', 'triplets', 'teachers', 'seeds', 'obs')


def _mapping(data: Any, where: str) -> dict:
  if not isinstance(data, Mapping):
    raise SpecError(f'{where} must be a mapping of keys to values, got {data!r}.')
  return dict(data)


def _grid(data: Any, where: str) -> Grid:
  data = _mapping(data, where)
  known = {f.name for f in dataclasses.fields(Grid)}
  unknown = sorted(set(data) - known)
  if unknown:
    raise SpecError(f'{where}: unknown keys {unknown}; valid: {sorted(known)}.')
  for key in ('methods', 'budgets'):
    if key not in data:
      raise SpecError(f'{where}: `{key}` is required.')
  for key in _LIST_FIELDS:
    if key in data and not isinstance(data[key], list):
      raise SpecError(f'{where}: `{key}` must be a list, e.g. [{data[key]}]; got {data[key]!r}.')
  if not isinstance(data.get('offline_episodes', []), (list, Mapping)):
    raise SpecError(f'{where}: `offline_episodes` must be a list or {{budget: [sizes]}}.')
  if 'overrides' in data:
    overrides = _mapping(data['overrides'], f'{where}: overrides')
    bad = sorted(k for k, v in overrides.items() if not isinstance(v, list))
    if bad:
      raise SpecError(f'{where}: overrides {bad} must be lists of values.')
  return Grid(**data)


def load_spec(path: str) -> StudySpec:
  with open(path) as f:
    data = _mapping(yaml.safe_load(f) or {}, path)
  known = {f.name for f in dataclasses.fields(StudySpec)}
  unknown = sorted(set(data) - known)
  if unknown:
    raise SpecError(f'{path}: unknown keys {unknown}; valid: {sorted(known)}.')
  if 'grid' not in data:
    raise SpecError(f'{path}: `grid` is required.')
  if not isinstance(data.get('sweeps') or [], list):
    raise SpecError(f'{path}: `sweeps` must be a list of grids.')
  if not isinstance(data.get('teacher_eval_episodes', 0), int):
    raise SpecError(f'{path}: `teacher_eval_episodes` must be an integer.')
  gpus = data.get('gpus_per_run', 0.0)
  if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or gpus < 0:
    raise SpecError(f'{path}: `gpus_per_run` must be a number >= 0, got {gpus!r}.')
  run_order = data.get('run_order', 'listed')
  if run_order not in RUN_ORDERS:
    raise SpecError(f'{path}: `run_order` must be one of {list(RUN_ORDERS)}, got {run_order!r}.')
  blocks = data['grid'] if isinstance(data['grid'], list) else [data['grid']]
  if not blocks:
    raise SpecError(f'{path}: `grid` is an empty list; give at least one grid.')
  grid = tuple(_grid(b, f'{path}: grid' + (f'[{i}]' if len(blocks) > 1 else ''))
               for i, b in enumerate(blocks))
  if any(g.name != 'grid' for g in grid):
    raise SpecError(f'{path}: the main grid takes no `name` (only sweeps are named).')
  sweeps = [_grid(s, f'{path}: sweeps[{i}]') for i, s in enumerate(data.get('sweeps') or [])]
  unnamed = [i for i, s in enumerate(sweeps) if s.name == 'grid']
  if unnamed:
    raise SpecError(f'{path}: sweeps {unnamed} need a `name` (other than "grid").')
  return StudySpec(name=data.get('name', os.path.splitext(os.path.basename(path))[0]),
                   grid=grid, sweeps=sweeps,
                   defaults=_mapping(data.get('defaults') or {}, f'{path}: defaults'),
                   teacher_eval_episodes=int(data.get('teacher_eval_episodes', 0)),
                   gpus_per_run=float(gpus), run_order=run_order,
                   description=data.get('description', ''))


