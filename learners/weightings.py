"""w(s, a) of Eq. (3): one short function per weighting, all of one signature.

As Acme's CRR takes its `policy_loss_coeff_fn`, the learner looks a method's
weighting up in `WEIGHTINGS` by the row's `weighting` and calls it on the
critic's view of the prior's samples.  How R-CRR differs from CRR is the two
rows in methods.py and `softmax` vs `advantage` here.

Shapes: N prior samples per state, M policy samples, B states.
"""

from typing import Callable, Dict, NamedTuple, Optional, Tuple

import tensorflow as tf

from learners import losses
from learners import methods as methods_lib

Metrics = Dict[str, tf.Tensor]


class WeightingInputs(NamedTuple):
  method: methods_lib.Method
  actions: tf.Tensor  # [N, B, A] the prior's samples.
  q: Optional[tf.Tensor]  # [N, B] target-critic Q of `actions` (None without a critic).
  q_policy: Optional[tf.Tensor]  # [M, B] Q of pi_theta's samples (advantage only).
  eta: tf.Tensor  # Temperature: the row's schedule at this step, or MPO's dual.


WeightingFn = Callable[[WeightingInputs], Tuple[tf.Tensor, Metrics]]


def uniform(x: WeightingInputs) -> Tuple[tf.Tensor, Metrics]:
  """w = 1: the likelihood of the prior's actions (BC, DAgger)."""
  return tf.ones(tf.shape(x.actions)[:2]), {}


def advantage(x: WeightingInputs) -> Tuple[tf.Tensor, Metrics]:
  """CRR's min(exp(A / eta), clip), A = Q(s, a) - mean_m Q(s, a'_m), a'_m ~ pi_theta."""
  value = tf.reduce_mean(x.q_policy, axis=0)
  weights, adv = losses.crr_weights(x.q, value[None], x.eta, x.method.weight_clip)
  return weights, {'advantage_mean': tf.reduce_mean(adv), 'advantage_max': tf.reduce_max(adv)}


def softmax(x: WeightingInputs) -> Tuple[tf.Tensor, Metrics]:
  """exp(Q/eta - Z) across the prior samples of each state, eta fixed (R-CRR)."""
  weights = losses.softmax_weights(x.q, tf.stop_gradient(x.eta))
  # The scale eta acts on: weights are near uniform unless eta is well below
  # the spread of Q across a state's prior samples.
  return weights, {'kl_nonparametric': losses.nonparametric_kl(weights),
                   'q_sample_std': tf.reduce_mean(tf.math.reduce_std(x.q, axis=0))}


def mpo(x: WeightingInputs) -> Tuple[tf.Tensor, Metrics]:
  """As `softmax`, with eta the dual that keeps KL(pi_imp || prior) <= epsilon."""
  weights, metrics = softmax(x)
  metrics['temperature_loss'] = losses.temperature_dual_loss(x.q, x.eta, x.method.epsilon)
  return weights, metrics


WEIGHTINGS: Dict[str, WeightingFn] = {
    'none': uniform,
    'advantage': advantage,
    'softmax': softmax,
    'mpo': mpo,
}


def num_policy_samples(method: methods_lib.Method) -> int:
  """a'_m ~ pi_theta the weighting needs scored next to the prior's actions."""
  return method.advantage_samples if method.weighting == 'advantage' else 0
