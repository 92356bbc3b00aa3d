"""Shared fixtures for the learner tests: a linear teacher and synthetic batches."""

import dataclasses

import numpy as np

from envs import policy as policy_lib
from envs import specs
from learners import networks
from learners import types

SMALL_NETS = networks.NetworkConfig(encoder_size=32, policy_torso=(32,), critic_torso=(32,),
                                    conv_channels=(8, 8))


@dataclasses.dataclass
class LinearTeacher:
  """A Markov Gaussian teacher: mean = tanh(W [proprio, object_poses] + b)."""
  weights: np.ndarray
  bias: np.ndarray
  stddev: float = 0.1
  name: str = 'linear'

  @classmethod
  def random(cls, seed: int = 0, stddev: float = 0.1, scale: float = 0.3) -> 'LinearTeacher':
    rng = np.random.default_rng(seed)
    dim = specs.PROPRIO_DIM + specs.OBJECT_POSES_DIM
    return cls(rng.normal(0, scale, (dim, specs.ACTION_DIM)).astype(np.float32),
               rng.normal(0, 0.1, specs.ACTION_DIM).astype(np.float32), stddev)

  def distribution(self, observation) -> policy_lib.GaussianAction:
    x = np.concatenate([observation[k] for k in specs.TEACHER_KEYS], axis=-1)
    mean = np.tanh(x @ self.weights + self.bias).astype(np.float32)
    return policy_lib.GaussianAction(mean, np.full_like(mean, self.stddev))


def observations(rng, size, obs_mode='state', image_size=specs.DEFAULT_IMAGE_SIZE):
  obs = {k: rng.normal(0, 1, (size,) + s.shape).astype(np.float32)
         if s.dtype == np.float32 else
         rng.integers(0, 256, (size,) + s.shape).astype(np.uint8)
         for k, s in specs.observation_spec(obs_mode, image_size).items()}
  return obs


def random_batch(rng, size=8, obs_mode='state', image_size=specs.DEFAULT_IMAGE_SIZE,
                 offline_fraction=0.5) -> types.Batch:
  k = int(round(offline_fraction * size))
  return types.Batch(
      observation=observations(rng, size, obs_mode, image_size),
      action=rng.uniform(-1, 1, (size, specs.ACTION_DIM)).astype(np.float32),
      reward=rng.uniform(0, 1, size).astype(np.float32),
      discount=np.full(size, 0.99 ** 5, np.float32),
      next_observation=observations(rng, size, obs_mode, image_size),
      is_offline=np.array([1.0] * k + [0.0] * (size - k), np.float32))
