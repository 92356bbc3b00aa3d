"""One learner for every method: Eq. (3) policy update + distributional critic.

`Learner.step(batch)` is one gradient step.  The whole update is the single
`tf.function` `_step` below, readable top to bottom: prior samples, critic TD,
weights, policy loss, (MPO) duals, gradients, target networks.  What differs
between methods is only data in the `Method` row (see methods.py).
"""

import dataclasses
from typing import Dict, Optional, Union

import numpy as np
import tensorflow as tf

from envs import policy as policy_lib
from envs import specs
from learners import checkpointing
from learners import distributional
from learners import losses
from learners import methods as methods_lib
from learners import networks
from learners import optimizers
from learners import priors
from learners import types
from learners import weightings


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
  obs_mode: str = 'state'
  image_size: int = specs.DEFAULT_IMAGE_SIZE
  nets: networks.NetworkConfig = networks.NetworkConfig()
  # d3rlpy's CRR defaults; 1e-4 (Acme's) fit the teacher data measurably worse
  # in the few thousand steps a laptop-sized study affords.
  policy_learning_rate: float = 3e-4
  critic_learning_rate: float = 3e-4
  dual_learning_rate: float = 1e-2
  max_gradient_norm: float = 40.0
  target_update: str = 'polyak'  # 'polyak' (every step, rate tau) or 'periodic'.
  tau: float = 0.005
  target_update_period: int = 100
  # Target-policy actions per next state for the TD target (distributions averaged).
  critic_target_samples: int = 1
  seed: int = 0
  # Also makes TF kernels deterministic (process-wide, cannot be undone).
  deterministic: bool = False
  use_tf_function: bool = True
  max_checkpoints_to_keep: int = 3


class NonFiniteError(FloatingPointError):
  """A loss or statistic became NaN/Inf; names the metric and the step."""


class Learner:
  """Trains a student policy (and critic) with one method of the study."""

  def __init__(self, method: Union[str, methods_lib.Method],
               config: LearnerConfig = LearnerConfig(),
               teacher: Optional[policy_lib.Policy] = None,
               workdir: Optional[str] = None):
    self.method = methods_lib.get_method(method)
    self.config = config
    specs.check_obs_mode(config.obs_mode)
    if config.target_update not in ('polyak', 'periodic'):
      raise ValueError(f'Unknown target_update {config.target_update!r}; '
                       'valid choices: polyak, periodic.')
    if self.method.uses_teacher and teacher is None:
      raise ValueError(f'Method {self.method.name!r} relabels with the teacher; '
                       'pass teacher=...')
    self._teacher = teacher
    self._student_keys = specs.STUDENT_KEYS[config.obs_mode]

    if config.deterministic:
      tf.config.experimental.enable_op_determinism()
    # Network initialisers draw from the global seed: same seed, same weights.
    tf.random.set_seed(config.seed)
    net_cfg = config.nets
    self._policy = networks.GaussianPolicy(config.obs_mode, net_cfg)
    self._critic = networks.CategoricalCritic(config.obs_mode, net_cfg)
    self._target_policy = networks.GaussianPolicy(config.obs_mode, net_cfg,
                                                  name='target_policy')
    self._target_critic = networks.CategoricalCritic(config.obs_mode, net_cfg,
                                                     name='target_critic')
    for pol, crit in ((self._policy, self._critic),
                      (self._target_policy, self._target_critic)):
      networks.build(pol, crit, config.obs_mode, config.image_size)
    self._target_pairs = list(zip(
        self._target_policy.variables + self._target_critic.variables,
        self._policy.variables + self._critic.variables))
    for target, online in self._target_pairs:
      if target.shape != online.shape:
        raise AssertionError(f'target/online mismatch: {target.name} vs {online.name}')
      target.assign(online)

    self._duals = losses.MPODuals(specs.ACTION_DIM,
                                  init_temperature=self.method.eta(0))
    self._policy_optimizer = optimizers.Adam(
        self._policy.trainable_variables, config.policy_learning_rate, name='policy_adam')
    self._critic_optimizer = optimizers.Adam(
        self._critic.trainable_variables, config.critic_learning_rate, name='critic_adam')
    self._dual_optimizer = optimizers.Adam(
        self._duals.trainable_variables, config.dual_learning_rate, name='dual_adam')

    self._rng = tf.random.Generator.from_seed(config.seed)
    self._num_steps = tf.Variable(0, dtype=tf.int64, name='num_steps')
    # Saved so that resuming a run with another method fails instead of mixing.
    self._method_name = tf.Variable(self.method.name, dtype=tf.string, trainable=False)
    self._py_steps = 0
    self._validated = False

    self.checkpointer = None
    if workdir is not None:
      self.checkpointer = checkpointing.Checkpointer(
          dict(policy=self._policy, critic=self._critic,
               target_policy=self._target_policy, target_critic=self._target_critic,
               policy_optimizer=self._policy_optimizer,
               critic_optimizer=self._critic_optimizer,
               dual_optimizer=self._dual_optimizer, duals=self._duals,
               num_steps=self._num_steps, rng=self._rng,
               method_name=self._method_name),
          checkpointing.checkpoint_dir(workdir), config.max_checkpoints_to_keep)

    self._step_fn = tf.function(self._step) if config.use_tf_function else self._step
    self._policy_fn = (tf.function(self._policy.__call__)
                       if config.use_tf_function else self._policy)

  # --- Public API -------------------------------------------------------------

  @property
  def num_steps(self) -> int:
    return self._py_steps

  @property
  def policy(self) -> networks.GaussianPolicy:
    return self._policy

  def offline_fraction(self) -> float:
    """Share of the next batch the mixer should draw from the teacher dataset."""
    return self.method.offline_fraction(self._py_steps)

  def distribution(self, observation) -> policy_lib.GaussianAction:
    """The student's action distribution (batched numpy), e.g. for actors/eval."""
    obs = {k: observation[k] for k in self._student_keys}
    mean, stddev = self._policy_fn(obs)
    return policy_lib.GaussianAction(mean.numpy(), stddev.numpy())

  def teacher_labels(self, batch: types.Batch):
    """The teacher's (mean, stddev) on the batch states, or None if unused.

    Numpy and stateless, so it may run on an input thread ahead of `step`.
    """
    if not self.method.uses_teacher:
      return None
    obs = {k: np.asarray(batch.observation[k]) for k in specs.TEACHER_KEYS}
    dist = self._teacher.distribution(obs)
    return (np.asarray(dist.mean, np.float32), np.asarray(dist.stddev, np.float32))

  def step(self, batch: types.Batch, teacher_labels=None) -> Dict[str, float]:
    """One gradient step; returns metrics as Python floats.

    `teacher_labels`: `teacher_labels(batch)` computed beforehand; computed
    here when the method needs them and none are given.
    """
    if not self._validated:
      types.validate(batch, self.config.obs_mode, self.config.image_size)
      self._validated = True
    step = self._py_steps
    eta = tf.constant(self.method.eta(step), tf.float32)
    beta = tf.constant(self.method.beta(step), tf.float32)
    teacher = teacher_labels
    if teacher is None:
      teacher = self.teacher_labels(batch)
    student = lambda obs: {k: obs[k] for k in self._student_keys}
    batch = batch._replace(observation=student(batch.observation),
                           next_observation=student(batch.next_observation))
    metrics = self._step_fn(batch, eta, beta, teacher)
    metrics = {k: float(v) for k, v in metrics.items()}
    for name, value in metrics.items():
      if not np.isfinite(value):
        raise NonFiniteError(f'Non-finite {name}={value} at learner step {step} '
                             f'(method {self.method.name}).')
    self._py_steps += 1
    return metrics

  def save(self) -> str:
    if self.checkpointer is None:
      raise ValueError('Learner has no workdir; pass workdir=... to checkpoint.')
    return self.checkpointer.save(self._py_steps)

  def restore(self) -> bool:
    """Resumes from the workdir's latest checkpoint; False if there is none."""
    if self.checkpointer is None:
      raise ValueError('Learner has no workdir; pass workdir=... to checkpoint.')
    restored = self.checkpointer.restore()
    saved_method = self._method_name.numpy().decode()
    if saved_method != self.method.name:
      raise ValueError(f'{self.checkpointer.latest} was written by method {saved_method!r}, '
                       f'not {self.method.name!r}.')
    self._py_steps = int(self._num_steps.numpy())
    return restored

  # --- The update -------------------------------------------------------------

  def _prior_actions(self, batch, target_dist, beta, teacher):
    """[N, B, A] actions from the method's prior and the [N, B] teacher mask."""
    m = self.method
    n = m.num_prior_samples
    if m.uses_teacher:
      teacher_mean, teacher_stddev = teacher
      if m.teacher_action == 'mean':
        teacher_actions = tf.tile(tf.clip_by_value(teacher_mean, -1.0, 1.0)[None], [n, 1, 1])
      else:
        teacher_actions = priors.sample_gaussian(teacher_mean, teacher_stddev, n, self._rng)
      if m.prior == 'teacher':
        return teacher_actions, tf.ones(tf.shape(teacher_actions)[:2])
    if m.prior == 'behavior':
      base = tf.tile(batch.action[None], [n, 1, 1])
    else:
      base = priors.sample_gaussian(*target_dist, n, self._rng)
    if not m.uses_teacher:
      return base, tf.zeros(tf.shape(base)[:2])
    uniform = self._rng.uniform(tf.shape(base)[:2])
    return priors.mix(base, teacher_actions, uniform, beta)

  def _critic_loss(self, batch, metrics):
    """n-step categorical TD; the target bootstraps with pi_k's actions."""
    support = self._critic.support
    next_mean, next_stddev = self._target_policy(batch.next_observation)
    next_actions = priors.sample_gaussian(next_mean, next_stddev,
                                          self.config.critic_target_samples, self._rng)
    next_logits = self._target_critic(batch.next_observation, next_actions)
    # Projection is linear in the probabilities and every sample shares the
    # same atoms r + d z, so average the samples first and project once.
    next_probs = tf.reduce_mean(tf.nn.softmax(next_logits), axis=0)
    target = distributional.n_step_target(batch.reward, batch.discount, next_probs, support)
    logits = self._critic(batch.observation, batch.action)
    loss = distributional.cross_entropy(logits, target)
    metrics['critic_loss'] = loss
    metrics['q_batch_mean'] = tf.reduce_mean(distributional.mean_value(logits, support))
    metrics['q_target_mean'] = tf.reduce_mean(tf.reduce_sum(target * support, axis=-1))
    return loss

  def _score(self, batch, actions, online_dist, metrics):
    """Target-critic Q of the prior's [N, B] actions and of the [M, B] policy samples.

    One critic call scores both: the state is embedded once.
    """
    m = self.method
    num_prior = m.num_prior_samples
    support = self._target_critic.support
    embedding = self._target_critic.embed(batch.observation)
    num_policy = weightings.num_policy_samples(m)
    if num_policy:
      policy_actions = priors.sample_gaussian(*online_dist, num_policy, self._rng)
      actions = tf.concat([actions, policy_actions], axis=0)
    q_all = distributional.mean_value(
        self._target_critic.logits_from_embedding(embedding, actions), support)
    q = q_all[:num_prior]
    metrics['q_prior_mean'] = tf.reduce_mean(q)
    metrics['q_prior_max'] = tf.reduce_max(q)
    metrics['q_prior_min'] = tf.reduce_min(q)
    return q, q_all[num_prior:]

  def _weights(self, batch, actions, online_dist, eta, metrics):
    """w(s, a) for the [N, B] prior samples: the row's function in `WEIGHTINGS`."""
    m = self.method
    q = q_policy = None
    if m.uses_critic:
      q, q_policy = self._score(batch, actions, online_dist, metrics)
    if m.uses_duals:
      eta = self._duals.temperature
    weights, weight_metrics = weightings.WEIGHTINGS[m.weighting](
        weightings.WeightingInputs(m, actions, q, q_policy, eta))
    metrics.update(weight_metrics)
    return weights

  def _step(self, batch: types.Batch, eta, beta, teacher):
    m = self.method
    cfg = self.config
    batch = batch._replace(
        action=tf.cast(batch.action, tf.float32),
        reward=tf.cast(batch.reward, tf.float32),
        discount=tf.cast(batch.discount, tf.float32),
        is_offline=tf.cast(batch.is_offline, tf.float32))
    if cfg.target_update == 'periodic':
      if self._num_steps % cfg.target_update_period == 0:
        for target, online in self._target_pairs:
          target.assign(online)

    metrics = {}
    with tf.GradientTape(persistent=True) as tape:
      online_dist = self._policy(batch.observation)
      # pi_k at s: only for a target-based prior or MPO's trust region.
      needs_target = m.prior == 'target' or m.uses_duals
      target_dist = self._target_policy(batch.observation) if needs_target else None
      actions, from_teacher = self._prior_actions(batch, target_dist, beta, teacher)
      critic_loss = self._critic_loss(batch, metrics) if m.uses_critic else 0.0
      weights = self._weights(batch, actions, online_dist, eta, metrics)
      log_probs = losses.gaussian_log_prob(online_dist[0][None], online_dist[1][None],
                                           actions)
      if m.uses_duals:
        policy_loss, alpha_loss, kl_stats = losses.mpo_trust_region_loss(
            online_dist, target_dist, actions, weights, self._duals.alpha_mean,
            self._duals.alpha_stddev, m.epsilon_mean, m.epsilon_stddev)
        dual_loss = metrics['temperature_loss'] + alpha_loss
        metrics.update(kl_stats)
      else:
        policy_loss = losses.eq3_policy_loss(log_probs, weights)

    policy_vars = self._policy.trainable_variables
    grads = tape.gradient(policy_loss, policy_vars)
    grads, _ = tf.clip_by_global_norm(grads, cfg.max_gradient_norm)
    self._policy_optimizer.apply(grads, policy_vars)
    if m.uses_critic:
      critic_vars = self._critic.trainable_variables
      grads = tape.gradient(critic_loss, critic_vars)
      grads, _ = tf.clip_by_global_norm(grads, cfg.max_gradient_norm)
      self._critic_optimizer.apply(grads, critic_vars)
    if m.uses_duals:
      dual_vars = self._duals.trainable_variables
      self._dual_optimizer.apply(tape.gradient(dual_loss, dual_vars), dual_vars)
      self._duals.project()
      metrics['dual_loss'] = dual_loss
      metrics['alpha_mean'] = tf.reduce_mean(self._duals.alpha_mean)
      metrics['alpha_stddev'] = tf.reduce_mean(self._duals.alpha_stddev)
      eta = self._duals.temperature
    del tape

    if cfg.target_update == 'polyak':
      for target, online in self._target_pairs:
        # target -= tau * (target - online), one kernel per variable.
        tf.raw_ops.ResourceApplyGradientDescent(
            var=target.handle, alpha=tf.constant(cfg.tau, target.dtype),
            delta=target - online)
    self._num_steps.assign_add(1)

    metrics.update({
        'policy_loss': policy_loss,
        'log_prob_mean': tf.reduce_mean(log_probs),
        'eta': tf.reshape(eta, []),
        'beta': beta,
        'weight_mean': tf.reduce_mean(weights),
        'weight_max': tf.reduce_max(weights),
        'weight_min': tf.reduce_min(weights),
        'teacher_fraction': tf.reduce_mean(from_teacher),
        'offline_fraction': tf.reduce_mean(batch.is_offline),
        'policy_stddev': tf.reduce_mean(online_dist[1]),
    })
    if target_dist is not None:
      metrics['kl_target_online'] = tf.reduce_mean(tf.reduce_sum(losses.gaussian_kl(
          target_dist[0], target_dist[1], online_dist[0], online_dist[1]), axis=-1))
    return metrics
