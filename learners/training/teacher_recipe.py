"""A neural teacher's DAgger recipe: every knob, the shipped defaults, their checks.

`python -m learners.training.distill_teacher` runs a recipe (docs/teachers.md).
"""

import dataclasses
from typing import Sequence

import numpy as np

from envs import specs
from envs import teachers as teachers_lib
from envs import triplets as triplets_lib

# The recipe of each shipped teacher; documented knobs, no hand-made failures.
GENERALIZATION_TRAIN_TRIPLETS = 40


@dataclasses.dataclass(frozen=True)
class DistillConfig:
  """Every knob of a teacher's DAgger recipe."""
  teacher: str
  triplets: Sequence[str]
  # Round 0 = oracle roll-outs, then the network's.  Five: in 10-round runs the
  # validation success peaked by round 4 and fell after it, once roll-outs were
  # almost all the network's (docs/teachers.md).
  rounds: int = 5
  episodes_per_round: int = 80
  grad_steps_per_round: int = 4000
  batch_size: int = 256
  learning_rate: float = 3e-4
  torso: Sequence[int] = (256, 256)
  rollout_noise: float = 0.1        # exploration noise on the network's roll-outs
  # Round r >= 1 executes the oracle's action with probability oracle_share**r
  # per env step (DAgger's beta_i = p**i): roll-outs stay near useful states early.
  oracle_share: float = 0.5
  validation_episodes: int = 20     # deterministic episodes per round; the best round ships
                                    # (0: no validation, the last round ships)
  stddev: float = 0.15              # the teacher's own Gaussian (stochastic mode)
  episode_steps: int = specs.EPISODE_STEPS
  num_envs: int = 10                # envs stepped in lockstep, one batched network call
  seed: int = 0


def train_triplets(count: int, seed: int = 0) -> tuple[str, ...]:
  """`count` (red, green, blue) triplets of `RGB_OBJECTS_TRAIN_SET` objects, seeded."""
  from dm_robotics.manipulation.props.rgb_objects import rgb_object  # pylint: disable=g-import-not-at-top
  objects = sorted(rgb_object.RGB_OBJECTS_TRAIN_SET)
  rng = np.random.default_rng([seed, 17])
  return tuple(','.join(rng.choice(objects, 3, replace=False)) for _ in range(count))


def recipe(teacher: str, **overrides) -> DistillConfig:
  """The shipped recipe of `teacher`, with `overrides` (checked)."""
  num_train_triplets = overrides.pop('num_train_triplets', GENERALIZATION_TRAIN_TRIPLETS)
  if teacher == 'mastery':
    triplets = triplets_lib.TRIPLET_NAMES
  elif teacher == 'generalization':
    if num_train_triplets < 1:
      raise ValueError(f'num_train_triplets must be >= 1, got {num_train_triplets}.')
    triplets = train_triplets(num_train_triplets)
  else:
    raise ValueError(f'Unknown neural teacher {teacher!r}; valid choices: '
                     f'{", ".join(teachers_lib.NEURAL_TEACHERS)}.')
  return check(DistillConfig(teacher=teacher, triplets=tuple(triplets), **overrides))


def check(cfg: DistillConfig) -> DistillConfig:
  """Refuses a recipe that cannot train, before any episode runs."""
  for name in ('rounds', 'episodes_per_round', 'grad_steps_per_round', 'batch_size',
               'episode_steps', 'num_envs'):
    if getattr(cfg, name) < 1:
      raise ValueError(f'{name} must be >= 1, got {getattr(cfg, name)}.')
  if cfg.validation_episodes < 0:
    raise ValueError(f'validation_episodes must be >= 0, got {cfg.validation_episodes}.')
  if not cfg.torso or min(cfg.torso) < 1:
    raise ValueError(f'torso must be one or more positive layer sizes, got {cfg.torso}.')
  if not 0.0 <= cfg.oracle_share <= 1.0:
    raise ValueError(f'oracle_share must be in [0, 1], got {cfg.oracle_share}.')
  for name in ('learning_rate', 'stddev'):
    if not getattr(cfg, name) > 0:
      raise ValueError(f'{name} must be > 0, got {getattr(cfg, name)}.')
  if cfg.rollout_noise < 0:
    raise ValueError(f'rollout_noise must be >= 0, got {cfg.rollout_noise}.')
  return cfg
