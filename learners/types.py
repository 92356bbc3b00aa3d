"""The batch a learner consumes: n-step transitions from the dataset and/or replay.

One batch format for every method, so the data stream (RLDS dataset, Reverb
replay, or a mixer of both) is the only thing that knows where items came from.
Every field has a leading batch axis B; items are independent, so a mixer builds
a batch with `offline_fraction` f by concatenating k = round(f * B) offline items
and B - k online items (`concat`).

Fields
  observation       dict: every key of `envs.specs.observation_spec(obs_mode)`
                    (`proprio` (B, 10) float32, `object_poses` (B, 21) float32,
                    plus `camera_left`/`camera_right` (B, H, W, 3) uint8 in vision
                    mode).  The student encoder reads `specs.STUDENT_KEYS[obs_mode]`,
                    a teacher reads `specs.TEACHER_KEYS`, so `object_poses` must be
                    present in both modes.
  action            (B, 5) float32 in [-1, 1]: the action taken at `observation`
                    (the sample of pi_b: the teacher for dataset items, the student
                    at collection time for replay items).
  reward            (B,) float32: n-step discounted return
                    r_t + g r_{t+1} + ... + g^{n-1} r_{t+n-1} (truncated at episode end).
  discount          (B,) float32: bootstrap factor for `next_observation`,
                    g^n times the product of the environment discounts (0 after a
                    terminal step).
  next_observation  dict, same keys/shapes as `observation`: the state n steps later.
  is_offline        (B,) float32, 1.0 for teacher-dataset items (pi_b = teacher),
                    0.0 for replay items (pi_b = student at collection time).
"""

from typing import Mapping, NamedTuple, Optional, Union

import numpy as np
import tensorflow as tf

from envs import specs

ArrayLike = Union[np.ndarray, tf.Tensor]

BATCH_FIELDS = ('observation', 'action', 'reward', 'discount',
                'next_observation', 'is_offline')


class Batch(NamedTuple):
  """n-step transitions; see the module docstring for shapes and meaning."""
  observation: Mapping[str, ArrayLike]
  action: ArrayLike
  reward: ArrayLike
  discount: ArrayLike
  next_observation: Mapping[str, ArrayLike]
  is_offline: ArrayLike


def batch_size(batch: Batch) -> int:
  return int(batch.action.shape[0])


def concat(offline: Batch, online: Batch) -> Batch:
  """Stacks k offline and B-k online items into one batch (the mixer's job)."""
  def cat(a, b):
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
      return np.concatenate([a, b], axis=0)
    return tf.concat([a, b], axis=0)
  return tf.nest.map_structure(cat, offline, online)


def stack(batches) -> Batch:
  """K batches -> one with a leading axis K (what `Learner.steps` takes)."""
  return tf.nest.map_structure(lambda *xs: np.stack(xs), *batches)


def validate(batch: Batch, obs_mode: str, image_size: Optional[int] = None) -> None:
  """Raises ValueError if `batch` does not match the format above.

  Cheap (shapes only); the learner calls it on the first batch so a malformed
  stream fails with a readable message instead of a shape error deep in a graph.
  """
  obs_spec = specs.observation_spec(obs_mode)
  size = batch_size(batch)
  for field in ('observation', 'next_observation'):
    obs = getattr(batch, field)
    missing = sorted(set(obs_spec) - set(obs))
    if missing:
      raise ValueError(f'batch.{field} lacks keys {missing}; obs_mode={obs_mode!r} '
                       f'needs {sorted(obs_spec)}.')
    for key, spec in obs_spec.items():
      shape = tuple(obs[key].shape)
      expected = (size,) + tuple(spec.shape)
      if key in specs.CAMERA_NAMES and image_size is None:
        ok = len(shape) == 4 and shape[0] == size and shape[-1] == 3
      else:
        if key in specs.CAMERA_NAMES:
          expected = (size, image_size, image_size, 3)
        ok = shape == expected
      if not ok:
        raise ValueError(f'batch.{field}[{key!r}] has shape {shape}, expected {expected}.')
  checks = {'action': (size, specs.ACTION_DIM), 'reward': (size,),
            'discount': (size,), 'is_offline': (size,)}
  for field, expected in checks.items():
    shape = tuple(getattr(batch, field).shape)
    if shape != expected:
      raise ValueError(f'batch.{field} has shape {shape}, expected {expected}.')
