"""Categorical (C51) distributional TD: projection and loss, as pure functions."""

import tensorflow as tf


def project(values: tf.Tensor, probs: tf.Tensor, support: tf.Tensor) -> tf.Tensor:
  """L2-projects a distribution on atoms `values` onto the fixed `support`.

  Args:
    values: [B, K] atom locations (e.g. r + d * z), any order.
    probs: [B, K] their probabilities.
    support: [A] evenly spaced, increasing atoms.

  Returns:
    [B, A] probabilities on `support`.  Values outside the support are clipped
    to its ends first, so mass is preserved exactly.
  """
  v_min, v_max = support[0], support[-1]
  delta = support[1] - support[0]
  values = tf.clip_by_value(values, v_min, v_max)
  # Each source atom splits its mass between its two neighbouring support
  # atoms in proportion to closeness: the hat function max(0, 1 - |x - z| / dz).
  distance = tf.abs(values[:, :, None] - support[None, None, :])  # [B, K, A]
  share = tf.clip_by_value(1.0 - distance / delta, 0.0, 1.0)
  return tf.reduce_sum(probs[:, :, None] * share, axis=1)


def n_step_target(reward: tf.Tensor, discount: tf.Tensor, next_probs: tf.Tensor,
                  support: tf.Tensor) -> tf.Tensor:
  """Projected distribution of reward + discount * Z(next_s, next_a); [B, A]."""
  values = reward[:, None] + discount[:, None] * support[None, :]
  return project(values, next_probs, support)


def cross_entropy(logits: tf.Tensor, target_probs: tf.Tensor) -> tf.Tensor:
  """Mean over the batch of -sum_i target_i log softmax(logits)_i."""
  target_probs = tf.stop_gradient(target_probs)
  return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(
      labels=target_probs, logits=logits))


def mean_value(logits: tf.Tensor, support: tf.Tensor) -> tf.Tensor:
  """Expected return under the categorical distribution, over the last axis."""
  return tf.reduce_sum(tf.nn.softmax(logits) * support, axis=-1)
