"""Sampling actions from a method's prior (1 - beta) * base + beta * pi_teacher."""

from typing import Optional, Tuple

import tensorflow as tf

from learners import methods as methods_lib

Gaussian = Tuple[tf.Tensor, tf.Tensor]  # (mean, stddev), each [B, A].


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


def prior_actions(method: methods_lib.Method, batch_action: tf.Tensor,
                  target: Optional[Gaussian], teacher: Optional[Gaussian], beta: tf.Tensor,
                  rng: tf.random.Generator) -> Tuple[tf.Tensor, tf.Tensor]:
  """[N, B, A] actions from the method's prior and the [N, B] teacher mask.

  The base is pi_b (the batch action, tiled) or pi_k (`target`); the teacher's
  share beta of the samples come from `teacher` (its samples or its mean, per
  the row's `teacher_action`).
  """
  n = method.num_prior_samples
  if method.uses_teacher:
    teacher_mean, teacher_stddev = teacher
    if method.teacher_action == 'mean':
      teacher_actions = tf.tile(tf.clip_by_value(teacher_mean, -1.0, 1.0)[None], [n, 1, 1])
    else:
      teacher_actions = sample_gaussian(teacher_mean, teacher_stddev, n, rng)
    if method.prior == 'teacher':
      return teacher_actions, tf.ones(tf.shape(teacher_actions)[:2])
  if method.prior == 'behavior':
    base = tf.tile(batch_action[None], [n, 1, 1])
  else:
    base = sample_gaussian(*target, n, rng)
  if not method.uses_teacher:
    return base, tf.zeros(tf.shape(base)[:2])
  uniform = rng.uniform(tf.shape(base)[:2])
  return mix(base, teacher_actions, uniform, beta)
