"""What a teacher is: a Markov policy that maps observations to a Gaussian.

No hidden episode state: the same observation always gives the same
distribution, so a teacher can relabel any stored step (DAgger, R-CRR, R-MPO
query it on batches of logged states).
"""

import dataclasses
from typing import Callable, Iterable, Mapping, Optional, Protocol

import numpy as np

@dataclasses.dataclass(frozen=True)
class GaussianAction:
  """A diagonal Gaussian over actions, batched or not (last axis = action)."""
  mean: np.ndarray
  stddev: np.ndarray

  def mode(self) -> np.ndarray:
    return np.clip(self.mean, -1.0, 1.0).astype(np.float32)

  def sample(self, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(self.mean.shape)
    return np.clip(self.mean + self.stddev * noise, -1.0, 1.0).astype(np.float32)

  def log_prob(self, action: np.ndarray) -> np.ndarray:
    z = (action - self.mean) / self.stddev
    return np.sum(-0.5 * z**2 - np.log(self.stddev) - 0.5 * np.log(2 * np.pi), axis=-1)

class Policy(Protocol):
  """A Markov policy: `observation` holds `specs.TEACHER_KEYS` (optionally batched)."""
  name: str

  def distribution(self, observation: Mapping[str, np.ndarray]) -> GaussianAction:
    ...


# How a policy acts: `stochastic` samples its action distribution (a teacher
# collecting data, a student exploring), `deterministic` takes its mode
# (evaluation).
POLICY_MODES = ('stochastic', 'deterministic')
# How teacher datasets are collected unless a run or a Beam job says otherwise.
DEFAULT_TEACHER_POLICY_MODE = 'stochastic'


def action_of(dist: GaussianAction, mode: str, rng: np.random.Generator) -> np.ndarray:
  """The action a policy executes: `deterministic` (mode) or `stochastic` (sample)."""
  if mode == 'deterministic':
    return dist.mode()
  if mode == 'stochastic':
    return dist.sample(rng)
  raise ValueError(f'Unknown policy mode {mode!r}; valid choices: deterministic, stochastic.')



def call_unbatched(distribution_fn: Callable[[Mapping[str, np.ndarray]], GaussianAction],
                   observation: Mapping[str, np.ndarray],
                   keys: Optional[Iterable[str]] = None) -> GaussianAction:
  """A batched `distribution_fn` on one observation: adds the batch axis, takes it off.

  `keys`: the observation entries to pass (default: all).
  """
  keys = observation.keys() if keys is None else keys
  dist = distribution_fn({k: np.asarray(observation[k])[None] for k in keys})
  return GaussianAction(np.asarray(dist.mean)[0], np.asarray(dist.stddev)[0])
