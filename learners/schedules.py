"""Schedules: small pure functions of the gradient step.

Used for the offline fraction, the temperature eta and the teacher weight beta.
They are frozen dataclasses (so a method row stays hashable, printable data)
whose `__call__(step)` is a pure function of the step, in plain Python: the
learner evaluates them outside its `tf.function` and feeds the value in as a
tensor, so a changing value never retraces the graph.
"""

import dataclasses
from typing import Sequence, Tuple


@dataclasses.dataclass(frozen=True)
class Constant:
  value: float

  def __call__(self, step: int) -> float:
    del step
    return float(self.value)


@dataclasses.dataclass(frozen=True)
class Linear:
  """`start` until `begin_step`, linear to `end` at `end_step`, `end` after."""
  start: float
  end: float
  begin_step: int
  end_step: int

  def __post_init__(self):
    if self.end_step <= self.begin_step:
      raise ValueError(f'Linear schedule needs end_step > begin_step, got '
                       f'{self.begin_step}..{self.end_step}.')

  def __call__(self, step: int) -> float:
    frac = (step - self.begin_step) / (self.end_step - self.begin_step)
    frac = min(max(frac, 0.0), 1.0)
    return float(self.start + frac * (self.end - self.start))


@dataclasses.dataclass(frozen=True)
class Piecewise:
  """Linear interpolation through (step, value) knots, constant outside them."""
  knots: Tuple[Tuple[int, float], ...]

  def __post_init__(self):
    steps = [s for s, _ in self.knots]
    if not steps or steps != sorted(steps):
      raise ValueError(f'Piecewise knots must be non-empty and sorted by step: {self.knots}.')

  def __call__(self, step: int) -> float:
    first_step, first_value = self.knots[0]
    if step <= first_step:
      return float(first_value)
    for (s0, v0), (s1, v1) in zip(self.knots[:-1], self.knots[1:]):
      if step <= s1:
        if s1 == s0:
          return float(v1)
        return float(v0 + (step - s0) / (s1 - s0) * (v1 - v0))
    return float(self.knots[-1][1])


def piecewise(*knots: Sequence[float]) -> Piecewise:
  return Piecewise(tuple((int(s), float(v)) for s, v in knots))
