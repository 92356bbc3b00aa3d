"""Sampling actions from a method's prior (1 - beta) * base + beta * pi_teacher."""

from typing import Tuple

import tensorflow as tf


def sample_gaussian(mean: tf.Tensor, stddev: tf.Tensor, num_samples: int,
                    rng: tf.random.Generator) -> tf.Tensor:
  """[N, B, A] samples, clipped to the action bounds like every executed action."""
  shape = tf.concat([[num_samples], tf.shape(mean)], axis=0)
  noise = rng.normal(shape, dtype=mean.dtype)
  return tf.clip_by_value(mean[None] + stddev[None] * noise, -1.0, 1.0)


def mix(base: tf.Tensor, teacher: tf.Tensor, uniform: tf.Tensor,
        beta: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """Per (sample, state), takes the teacher's action with probability beta.

  Args:
    base: [N, B, A] actions from pi_b (the batch action, tiled) or pi_k.
    teacher: [N, B, A] actions from pi_teacher.
    uniform: [N, B] U(0, 1) draws (an argument, so tests can pin them).
    beta: scalar teacher weight.

  Returns:
    ([N, B, A] actions, [N, B] float mask: 1 where the teacher was picked).
  """
  from_teacher = uniform < beta
  actions = tf.where(from_teacher[..., None], teacher, base)
  return actions, tf.cast(from_teacher, base.dtype)
