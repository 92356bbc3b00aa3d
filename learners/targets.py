"""What the target networks say about one batch: pi_k's actions and Q_k's values.

Neither needs gradients, so the learner evaluates them outside its tape, and
each network sees the batch's states s and next states s' as one batch.
"""

from typing import Dict, Optional, Tuple

import tensorflow as tf

from learners import distributional
from learners import methods as methods_lib
from learners import networks
from learners import priors
from learners import types
from learners import weightings

Gaussian = priors.Gaussian


def concat_observations(obs_a, obs_b):
  """Two observation dicts as one batch (a's rows first)."""
  return tf.nest.map_structure(lambda a, b: tf.concat([a, b], axis=0), obs_a, obs_b)


def policy_dists(method: methods_lib.Method, target_policy: networks.GaussianPolicy,
                 batch: types.Batch) -> Tuple[Optional[Gaussian], Optional[Gaussian]]:
  """pi_k at s (a target-based prior, MPO's trust region) and at s' (the TD target)."""
  at_s = method.prior == 'target' or method.uses_duals
  at_next = method.uses_critic
  if at_s and at_next:
    mean, stddev = target_policy(concat_observations(batch.observation,
                                                     batch.next_observation))
    (mean_s, mean_next), (std_s, std_next) = tf.split(mean, 2), tf.split(stddev, 2)
    return (mean_s, std_s), (mean_next, std_next)
  if at_next:
    return None, target_policy(batch.next_observation)
  if at_s:
    return target_policy(batch.observation), None
  return None, None


def critic_values(method: methods_lib.Method, target_critic: networks.CategoricalCritic,
                  batch: types.Batch, actions: tf.Tensor, online: Gaussian, next_dist: Gaussian,
                  num_next: int, rng: tf.random.Generator,
                  metrics: Dict[str, tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """Q_k of the prior's [N, B] `actions` and of the [M, B] policy samples the
  weighting needs, and the next-state return distribution [B, atoms] averaged
  over `num_next` samples of pi_k (the TD target's).  One encoder call for s
  and s'; each state's embedding then scores all of its actions."""
  num_prior, num_policy = method.num_prior_samples, weightings.num_policy_samples(method)
  next_actions = priors.sample_gaussian(*next_dist, num_next, rng)
  scored = [actions]
  if num_policy:
    scored.append(priors.sample_gaussian(*online, num_policy, rng))
  scored = tf.concat(scored, axis=0)
  emb_s, emb_next = tf.split(
      target_critic.embed(concat_observations(batch.observation, batch.next_observation)), 2)
  q_all = distributional.mean_value(target_critic.logits_from_embedding(emb_s, scored),
                                    target_critic.support)
  q = q_all[:num_prior]
  metrics['q_prior_mean'] = tf.reduce_mean(q)
  metrics['q_prior_max'] = tf.reduce_max(q)
  metrics['q_prior_min'] = tf.reduce_min(q)
  # Projection is linear in the probabilities and every sample shares the
  # same atoms r + d z, so average the samples first and project once.
  next_logits = target_critic.logits_from_embedding(emb_next, next_actions)
  next_probs = tf.reduce_mean(tf.nn.softmax(next_logits), axis=0)
  return q, q_all[num_prior:], next_probs
