"""Running a policy for one episode: the loop shared by evaluation and data collection."""

import dataclasses
import hashlib

import numpy as np

from envs.policy import action_of


@dataclasses.dataclass
class Trajectory:
  timesteps: list        # dm_env.TimeStep, reset first, then one per action
  actions: list          # np.ndarray (5,), len(timesteps) - 1
  success: bool          # the success condition held at the final step
  episode_return: float


def episode_seed(triplet: str, teacher: str, index: int) -> int:
  """A stable per-episode seed: episode `index` is the same in every dataset size."""
  key = f'{triplet}|{teacher}|{int(index)}'.encode()
  return int.from_bytes(hashlib.sha256(key).digest()[:8], 'little') >> 1


def rollout(env, policy, policy_mode: str, seed: int, frames: list = None) -> Trajectory:
  """One full episode of `policy` in `env`, started from `seed`.

  Action noise is drawn from a generator seeded by `seed` too, so stochastic
  episodes are reproducible.  If `frames` is a list, camera frames are appended.
  """
  env.reseed(seed)
  rng = np.random.default_rng([seed, 1])
  timestep = env.reset()
  timesteps, actions = [timestep], []
  episode_return = 0.0
  while not timestep.last():
    action = action_of(policy.distribution(timestep.observation), policy_mode, rng)
    timestep = env.step(action)
    actions.append(action)
    timesteps.append(timestep)
    episode_return += float(timestep.reward)
    if frames is not None:
      frames.append(env.render_cameras(160))
  return Trajectory(timesteps, actions, bool(env.success), episode_return)


