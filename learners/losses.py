"""Policy losses: the one Eq. (3) loss, the weightings, and MPO's duals.

Shapes: N prior samples per state, B states, A action dimensions.  Weights and
log-likelihoods are [N, B].  All functions are pure except `MPODuals`, a
Sonnet module so its variables checkpoint with the learner.
"""

import math
from typing import Dict, Tuple

import sonnet as snt
import tensorflow as tf

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_prob(mean: tf.Tensor, stddev: tf.Tensor, action: tf.Tensor) -> tf.Tensor:
  """log N(action; mean, diag(stddev^2)), summed over the last axis."""
  z = (action - mean) / stddev
  return tf.reduce_sum(-0.5 * tf.square(z) - tf.math.log(stddev) - 0.5 * _LOG_2PI, axis=-1)


def gaussian_kl(mean_p, stddev_p, mean_q, stddev_q) -> tf.Tensor:
  """Per-dimension KL(p || q) of diagonal Gaussians (no reduction)."""
  ratio = tf.square(stddev_p / stddev_q)
  return 0.5 * (ratio + tf.square((mean_q - mean_p) / stddev_q) - 1.0 - tf.math.log(ratio))


def eq3_policy_loss(log_probs: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
  """Eq. (3) as a loss: -E_{s, a ~ prior}[w(s, a) log pi(a|s)].

  Weights are held fixed (no gradient flows into the critic or duals).  The
  expectation is the mean over the N prior samples and the B states, so
  exp(Q/eta - Z) weights (which average to 1 per state) turn it into a
  softmax-weighted cross-entropy, and w = 1 with N = 1 is behavioural cloning.
  """
  return -tf.reduce_mean(tf.stop_gradient(weights) * log_probs)


def crr_weights(q: tf.Tensor, value: tf.Tensor, eta: tf.Tensor,
                clip: float) -> Tuple[tf.Tensor, tf.Tensor]:
  """CRR's min(exp(A / eta), clip) with A = Q(s, a) - V(s); returns (w, A)."""
  advantage = q - value
  # Clip the exponent first: exp of a large advantage would overflow to inf.
  exponent = tf.minimum(advantage / eta, math.log(clip))
  return tf.exp(exponent), advantage


def softmax_weights(q: tf.Tensor, eta: tf.Tensor) -> tf.Tensor:
  """exp(Q/eta - Z), Z = log mean_n exp(Q_n/eta), across the N samples of a state."""
  num_samples = tf.cast(tf.shape(q)[0], q.dtype)
  return num_samples * tf.nn.softmax(q / eta, axis=0)


def temperature_dual_loss(q: tf.Tensor, eta: tf.Tensor, epsilon: float) -> tf.Tensor:
  """MPO's dual g(eta) = eta * epsilon + eta * E_s log mean_n exp(Q_n / eta).

  Minimising it over eta (with q held fixed) makes KL(pi_imp || prior) = epsilon,
  where pi_imp puts softmax(Q / eta) weight on the prior's samples.
  """
  q = tf.stop_gradient(q)
  num_samples = tf.cast(tf.shape(q)[0], q.dtype)
  log_mean_exp = tf.reduce_logsumexp(q / eta, axis=0) - tf.math.log(num_samples)
  return eta * epsilon + eta * tf.reduce_mean(log_mean_exp)


def nonparametric_kl(weights: tf.Tensor) -> tf.Tensor:
  """KL(pi_imp || prior) on the samples, given exp(Q/eta - Z) weights [N, B]."""
  num_samples = tf.cast(tf.shape(weights)[0], weights.dtype)
  p = weights / num_samples
  return tf.reduce_mean(tf.reduce_sum(p * tf.math.log(weights + 1e-8), axis=0))


def mpo_trust_region_loss(
    online: Tuple[tf.Tensor, tf.Tensor], target: Tuple[tf.Tensor, tf.Tensor],
    actions: tf.Tensor, weights: tf.Tensor, alpha_mean: tf.Tensor,
    alpha_stddev: tf.Tensor, epsilon_mean: float,
    epsilon_stddev: float) -> Tuple[tf.Tensor, tf.Tensor, Dict[str, tf.Tensor]]:
  """MPO's decoupled M-step: Eq. (3) on two half-frozen Gaussians + KL constraints.

  The mean is fitted with the target stddev and the stddev with the target mean,
  each under its own per-dimension KL bound against pi_k (Abdolmaleki et al.,
  2018, as in Acme).  Returns (policy loss, dual loss, stats).
  """
  (online_mean, online_stddev), (target_mean, target_stddev) = online, target
  target_mean = tf.stop_gradient(target_mean)
  target_stddev = tf.stop_gradient(target_stddev)
  log_prob_mean = gaussian_log_prob(online_mean, target_stddev, actions)
  log_prob_stddev = gaussian_log_prob(target_mean, online_stddev, actions)
  loss_fit = eq3_policy_loss(log_prob_mean, weights) + eq3_policy_loss(log_prob_stddev, weights)

  kl_mean = tf.reduce_mean(  # [A]: mean over states, per dimension.
      gaussian_kl(target_mean, target_stddev, online_mean, target_stddev), axis=0)
  kl_stddev = tf.reduce_mean(
      gaussian_kl(target_mean, target_stddev, target_mean, online_stddev), axis=0)
  loss_kl = (tf.reduce_sum(tf.stop_gradient(alpha_mean) * kl_mean) +
             tf.reduce_sum(tf.stop_gradient(alpha_stddev) * kl_stddev))
  loss_alpha = (tf.reduce_sum(alpha_mean * (epsilon_mean - tf.stop_gradient(kl_mean))) +
                tf.reduce_sum(alpha_stddev * (epsilon_stddev - tf.stop_gradient(kl_stddev))))
  stats = {
      'kl_mean': tf.reduce_mean(kl_mean),
      'kl_stddev': tf.reduce_mean(kl_stddev),
      'kl_mean_max_rel': tf.reduce_max(kl_mean) / epsilon_mean,
      'kl_stddev_max_rel': tf.reduce_max(kl_stddev) / epsilon_stddev,
  }
  return loss_fit + loss_kl, loss_alpha, stats


class MPODuals(snt.Module):
  """The Lagrange multipliers of MPO: temperature eta, alpha_mean, alpha_stddev.

  Stored as pre-softplus parameters (softplus keeps them positive with sane
  gradients near zero) and created eagerly so a checkpoint always holds them.
  """

  def __init__(self, action_dim: int, init_temperature: float = 1.0,
               init_alpha_mean: float = 1.0, init_alpha_stddev: float = 10.0,
               name: str = 'mpo_duals'):
    super().__init__(name=name)
    inv = lambda x: math.log(math.expm1(x))  # Inverse softplus.
    self.pre_softplus_temperature = tf.Variable(
        inv(init_temperature), dtype=tf.float32, name='pre_softplus_temperature')
    self.pre_softplus_alpha_mean = tf.Variable(
        tf.fill([action_dim], inv(init_alpha_mean)), name='pre_softplus_alpha_mean')
    self.pre_softplus_alpha_stddev = tf.Variable(
        tf.fill([action_dim], inv(init_alpha_stddev)), name='pre_softplus_alpha_stddev')

  def project(self) -> None:
    """Keeps the parameters where softplus is not numerically zero."""
    for var in (self.pre_softplus_temperature, self.pre_softplus_alpha_mean,
                self.pre_softplus_alpha_stddev):
      var.assign(tf.maximum(var, -18.0))

  @property
  def temperature(self) -> tf.Tensor:
    return tf.nn.softplus(self.pre_softplus_temperature) + 1e-8

  @property
  def alpha_mean(self) -> tf.Tensor:
    return tf.nn.softplus(self.pre_softplus_alpha_mean) + 1e-8

  @property
  def alpha_stddev(self) -> tf.Tensor:
    return tf.nn.softplus(self.pre_softplus_alpha_stddev) + 1e-8
