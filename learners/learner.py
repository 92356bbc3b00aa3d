"""One learner for every method: Eq. (3) policy update + distributional critic.

`Learner.step(batch)` is one gradient step.  The whole update is the single
`tf.function` `_step` below, readable top to bottom: prior samples, critic TD,
weights, policy loss, (MPO) duals, gradients, target networks.  What differs
between methods is only data in the `Method` row (see methods.py).
"""

from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from envs import policy as policy_lib
from envs import specs
from learners import averaging
from learners import checkpointing
from learners import distributional
from learners import learner_config
from learners import losses
from learners import methods as methods_lib
from learners import networks
from learners import optimizers
from learners import priors
from learners import targets
from learners import types
from learners import weightings


LearnerConfig = learner_config.LearnerConfig  # Where users have always imported it.


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
    if not 0.0 <= config.policy_ema < 1.0:
      raise ValueError(f'policy_ema must be in [0, 1) (0: evaluate the trained policy), '
                       f'got {config.policy_ema}.')
    if self.method.uses_teacher and teacher is None:
      raise ValueError(f'Method {self.method.name!r} relabels with the teacher; '
                       'pass teacher=...')
    self._teacher = teacher
    # A network teacher (SavedModel) exposes its TF function: its labels are
    # computed inside the compiled step; a scripted one labels in numpy.
    self._teacher_fn = (getattr(teacher, 'function', None) if self.method.uses_teacher
                        else None)
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
    self._target_pairs = averaging.pairs(
        self._target_policy.variables + self._target_critic.variables,
        self._policy.variables + self._critic.variables)
    self._ema_policy, self._ema_pairs = None, []
    if config.policy_ema:
      self._ema_policy = networks.GaussianPolicy(config.obs_mode, net_cfg, name='ema_policy')
      self._ema_policy(networks.dummy_observation(config.obs_mode, config.image_size))
      self._ema_pairs = averaging.pairs(self._ema_policy.variables, self._policy.variables)

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
               method_name=self._method_name,
               **({'ema_policy': self._ema_policy} if self._ema_policy else {})),
          checkpointing.checkpoint_dir(workdir), config.max_checkpoints_to_keep)

    self._metric_names = ()  # Set when `_step` is traced (or first run eagerly).
    self._step_fn = tf.function(self._one_step) if config.use_tf_function else self._one_step
    # Any K: one trace with an unknown leading axis, not one per chunk length.
    self._steps_fn = (tf.function(self._steps, reduce_retracing=True)
                      if config.use_tf_function else self._steps)
    self._distribution_fn = networks.numpy_distribution(self._policy, config.obs_mode,
                                                        config.image_size)
    self._eval_distribution_fn = self._distribution_fn
    self._q_values_fn = networks.numpy_q_values(self._critic, config.obs_mode, config.image_size)
    # The actor's one-observation calls (state): numpy on a copy of the weights,
    # copied again once the learner has stepped.  -1: copy at the first call.
    self._actor_policy = (networks.NumpyStatePolicy(self._policy)
                          if config.obs_mode == 'state' else None)
    self._actor_policy_step = -1
    if self._ema_policy is not None:
      self._eval_distribution_fn = networks.numpy_distribution(
          self._ema_policy, config.obs_mode, config.image_size)

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
    return self._distribution_fn(observation)

  def actor_distribution(self, observation) -> policy_lib.GaussianAction:
    """`distribution` for an actor's single-observation calls: the same outputs (state:
    in numpy, without TensorFlow's per-call dispatch)."""
    if self._actor_policy is None:
      return self._distribution_fn(observation)
    if self._actor_policy_step != self._py_steps:
      self._actor_policy_step = self._py_steps  # First: a step landing now copies again.
      self._actor_policy.sync()
    return self._actor_policy(observation)

  @property
  def evaluates_average(self) -> bool:
    """Evaluation uses the EMA copy of the policy (`policy_ema` > 0)."""
    return self._ema_policy is not None

  def eval_distribution(self, observation) -> policy_lib.GaussianAction:
    """The distribution evaluation acts with: the EMA copy if any, else `distribution`.

    Actors keep collecting with the trained policy itself (the average lags it).
    """
    return self._eval_distribution_fn(observation)

  def q_values(self, observation, action) -> np.ndarray:
    """The critic's mean return of (s, a), batched numpy: [B]."""
    return self._q_values_fn(observation, action)

  def teacher_labels(self, batch: types.Batch):
    """The teacher's (mean, stddev) on the batch states, or None if unused.

    Numpy and stateless, so it may run on an input thread ahead of `step`.
    Any leading axes (B, or K stacked batches of B) are kept.  None as well
    for a network teacher: the compiled step labels the batch itself.
    """
    if not self.method.uses_teacher or self._teacher_fn is not None:
      return None
    obs = {k: np.asarray(batch.observation[k]) for k in specs.TEACHER_KEYS}
    lead = obs[specs.TEACHER_KEYS[0]].shape[:-1]
    flat = {k: v.reshape((-1,) + v.shape[len(lead):]) for k, v in obs.items()}
    dist = self._teacher.distribution(flat)
    shape = lead + (specs.ACTION_DIM,)
    return (np.asarray(dist.mean, np.float32).reshape(shape),
            np.asarray(dist.stddev, np.float32).reshape(shape))

  def relabel(self, observation: Mapping[str, tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
    """The network teacher's (mean, stddev) on teacher-key observations, as TF ops."""
    return tuple(self._teacher_fn(*(tf.cast(observation[k], tf.float32)
                                    for k in specs.TEACHER_KEYS)))

  def step(self, batch: types.Batch, teacher_labels=None) -> Dict[str, float]:
    """One gradient step; returns metrics as Python floats.

    `teacher_labels`: `teacher_labels(batch)` computed beforehand; computed
    here when the method needs them and none are given.
    """
    values = self._run(batch, teacher_labels, k=1, stacked=False)
    return {name: float(v) for name, v in zip(self._metric_names, values[0])}

  def steps(self, batches: types.Batch, teacher_labels=None) -> Dict[str, np.ndarray]:
    """K gradient steps in one call on K stacked batches (leading axis K).

    As K calls of `step` on the same batches (Acme's `num_sgd_steps_per_step`):
    the schedules' eta and beta are evaluated per step, and the per-step
    metrics come back as [K] arrays; dispatch, conversion and the NaN check
    are paid once per call.
    """
    k = int(np.shape(batches.action)[0])
    if k == 1:  # The plain step's graph: no loop to enter.
      batches = tf.nest.map_structure(lambda x: x[0], batches)
      teacher_labels = None if teacher_labels is None else tuple(x[0] for x in teacher_labels)
    values = self._run(batches, teacher_labels, k, stacked=k > 1)
    return {name: values[:, i] for i, name in enumerate(self._metric_names)}

  def _run(self, batch, teacher_labels, k: int, stacked: bool) -> np.ndarray:
    """Runs steps [now, now + k) in one compiled call; returns [k, metrics] values."""
    if not self._validated:
      types.validate(tf.nest.map_structure(lambda x: x[0], batch) if stacked else batch,
                     self.config.obs_mode, self.config.image_size)
      self._validated = True
    start = self._py_steps
    eta, beta = (tf.constant([f(s) for s in range(start, start + k)] if stacked else f(start),
                             tf.float32) for f in (self.method.eta, self.method.beta))
    if self._teacher_fn is not None:  # The teacher's inputs; `_step` labels them.
      teacher = {k: batch.observation[k] for k in specs.TEACHER_KEYS}
    else:
      teacher = teacher_labels if teacher_labels is not None else self.teacher_labels(batch)
    student = lambda obs: {key: obs[key] for key in self._student_keys}
    batch = batch._replace(observation=student(batch.observation),
                           next_observation=student(batch.next_observation))
    fn = self._steps_fn if stacked else self._step_fn
    values = np.reshape(fn(batch, eta, beta, teacher).numpy(), (k, -1))
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
      i, j = bad[0]
      raise NonFiniteError(f'Non-finite {self._metric_names[j]}={values[i, j]} at learner '
                           f'step {start + i} (method {self.method.name}).')
    self._py_steps += k
    return values

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
    self._actor_policy_step = -1  # Restored weights: the actor's copy is stale.
    return restored

  # --- The update -------------------------------------------------------------

  def _critic_loss(self, batch, next_probs, metrics):
    """n-step categorical TD; the target bootstraps with pi_k's actions."""
    support = self._critic.support
    target = distributional.n_step_target(batch.reward, batch.discount, next_probs, support)
    logits = self._critic(batch.observation, batch.action)
    loss = distributional.cross_entropy(logits, target)
    metrics['critic_loss'] = loss
    metrics['q_batch_mean'] = tf.reduce_mean(distributional.mean_value(logits, support))
    metrics['q_target_mean'] = tf.reduce_mean(tf.reduce_sum(target * support, axis=-1))
    return loss

  def _weights(self, actions, q, q_policy, eta, metrics):
    """w(s, a) for the [N, B] prior samples: the row's function in `WEIGHTINGS`."""
    m = self.method
    if m.uses_duals:
      eta = self._duals.temperature
    weights, weight_metrics = weightings.WEIGHTINGS[m.weighting](
        weightings.WeightingInputs(m, actions, q, q_policy, eta))
    metrics.update(weight_metrics)
    return weights

  def _flat_metrics(self, metrics) -> tf.Tensor:
    """The step's metrics as one [num_metrics] vector: one host copy per call."""
    self._metric_names = tuple(sorted(metrics))  # The same for every trace of a method.
    return tf.stack([tf.cast(tf.reshape(metrics[name], []), tf.float32)
                     for name in self._metric_names])

  def _one_step(self, batch: types.Batch, eta, beta, teacher) -> tf.Tensor:
    return self._flat_metrics(self._step(batch, eta, beta, teacher))

  def _steps(self, batches: types.Batch, etas, betas, teachers) -> tf.Tensor:
    """`_step` on each of the K stacked batches, in order: [K, num_metrics]."""
    def step(i):
      pick = lambda x: x[i]
      teacher = None if teachers is None else tf.nest.map_structure(pick, teachers)
      return self._one_step(tf.nest.map_structure(pick, batches), etas[i], betas[i], teacher)
    first = step(0)
    values = tf.TensorArray(tf.float32, size=tf.shape(etas)[0], element_shape=first.shape)
    values = values.write(0, first)
    for i in tf.range(1, tf.shape(etas)[0]):
      values = values.write(i, step(i))
    return values.stack()

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
        averaging.copy(self._target_pairs)

    if self._teacher_fn is not None:
      teacher = self.relabel(teacher)

    metrics = {}
    # Target networks need no gradients: evaluated outside the tape.
    target_dist, next_dist = targets.policy_dists(m, self._target_policy, batch)
    actions, from_teacher = priors.prior_actions(m, batch.action, target_dist, teacher, beta,
                                                 self._rng)
    with tf.GradientTape() as tape:
      online_dist = self._policy(batch.observation)
      q = q_policy = None
      critic_loss = dual_loss = 0.0
      if m.uses_critic:
        with tape.stop_recording():
          q, q_policy, next_probs = targets.critic_values(
              m, self._target_critic, batch, actions, online_dist, next_dist,
              cfg.critic_target_samples, self._rng, metrics)
        critic_loss = self._critic_loss(batch, next_probs, metrics)
      weights = self._weights(actions, q, q_policy, eta, metrics)
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
      # The three losses share no trainable variables (weights and Q are held
      # fixed, the KL terms use fixed multipliers), so one backward pass over
      # their sum gives each its own gradients.
      total_loss = policy_loss + critic_loss + dual_loss

    groups = [(self._policy.trainable_variables, self._policy_optimizer, True)]
    if m.uses_critic:
      groups.append((self._critic.trainable_variables, self._critic_optimizer, True))
    if m.uses_duals:
      groups.append((self._duals.trainable_variables, self._dual_optimizer, False))
    all_grads = tape.gradient(total_loss, [v for group, _, _ in groups for v in group])
    for variables, optimizer, clip in groups:
      grads, all_grads = all_grads[:len(variables)], all_grads[len(variables):]
      if clip:
        grads, _ = tf.clip_by_global_norm(grads, cfg.max_gradient_norm)
      optimizer.apply(grads, variables)
    if m.uses_duals:
      self._duals.project()
      metrics['dual_loss'] = dual_loss
      metrics['alpha_mean'] = tf.reduce_mean(self._duals.alpha_mean)
      metrics['alpha_stddev'] = tf.reduce_mean(self._duals.alpha_stddev)
      eta = self._duals.temperature

    if cfg.target_update == 'polyak':
      averaging.polyak_update(self._target_pairs, cfg.tau)
    if self._ema_pairs:
      averaging.polyak_update(self._ema_pairs,
                              1.0 - averaging.ema_decay(cfg.policy_ema, self._num_steps))
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

