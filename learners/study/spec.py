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
  grid: Grid
  sweeps: Sequence[Grid] = ()
  defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  teacher_eval_episodes: int = 0  # 0: the report uses the shipped teachers' cards.
  description: str = ''

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


