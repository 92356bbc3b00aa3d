"""Parameter averages: the target networks and the evaluated policy's EMA.

Both are Polyak averages of the trained variables, `average <- average - rate *
(average - online)`, one fused kernel per variable; they differ in their rate
and in what reads them (targets: the TD target and the priors; the EMA copy:
evaluation only).
"""

from typing import Sequence

import tensorflow as tf


def pairs(averaged: Sequence[tf.Variable], online: Sequence[tf.Variable]) -> list:
  """(average, online) variable pairs, checked to match, the averages set to the online."""
  matched = list(zip(averaged, online))
  if len(averaged) != len(online) or any(a.shape != o.shape for a, o in matched):
    raise AssertionError('averaged/online variables do not match: '
                         f'{[a.name for a in averaged]} vs {[o.name for o in online]}')
  copy(matched)
  return matched


def copy(variable_pairs: Sequence[tuple]) -> None:
  for average, online in variable_pairs:
    average.assign(online)


def polyak_update(variable_pairs: Sequence[tuple], rate) -> None:
  """average <- average + rate * (online - average), for every pair."""
  for average, online in variable_pairs:
    tf.raw_ops.ResourceApplyGradientDescent(
        var=average.handle, alpha=tf.cast(rate, average.dtype), delta=average - online)


def ema_decay(decay: float, step):
  """The EMA's decay at update `step` (0-based): min(decay, (1 + k) / (10 + k)).

  tf.train.ExponentialMovingAverage's `num_updates` warm-up: early updates
  move the average fast, so the initial weights do not linger in it.
  """
  step = tf.cast(step, tf.float32)
  return tf.minimum(tf.constant(decay, tf.float32), (1.0 + step) / (10.0 + step))
