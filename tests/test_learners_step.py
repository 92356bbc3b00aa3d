"""Every method steps on state and vision batches; determinism; checkpoints; errors."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

import envs
from envs import specs
from learners import averaging
from learners import learner as learner_lib
from learners import methods
from learners import priors
from learners import types
import learner_fixtures as util

STATE = learner_lib.LearnerConfig(obs_mode='state', nets=util.SMALL_NETS)
VISION = learner_lib.LearnerConfig(obs_mode='vision', nets=util.SMALL_NETS, image_size=64)


@pytest.fixture(scope='module')
def teacher():
  return util.LinearTeacher.random()


@pytest.mark.parametrize('config', [STATE, VISION], ids=['state', 'vision'])
@pytest.mark.parametrize('method', list(methods.METHODS))
def test_every_method_steps(method, config, teacher):
  rng = np.random.default_rng(0)
  learner = learner_lib.Learner(method, config, teacher=teacher)
  for _ in range(2):
    metrics = learner.step(util.random_batch(rng, 4, config.obs_mode, config.image_size))
  assert learner.num_steps == 2
  assert all(np.isfinite(v) for v in metrics.values())
  assert 'policy_loss' in metrics and 'weight_mean' in metrics
  if methods.METHODS[method].uses_critic:
    assert 'critic_loss' in metrics and 'q_prior_mean' in metrics
  if methods.METHODS[method].weighting == 'mpo':
    assert {'eta', 'kl_nonparametric', 'kl_mean', 'kl_stddev', 'dual_loss'} <= set(metrics)


def test_vision_student_never_reads_object_poses(teacher):
  rng = np.random.default_rng(0)
  learner = learner_lib.Learner('CRR', VISION, teacher=teacher)
  batch = util.random_batch(rng, 4, 'vision')
  first = learner.distribution(batch.observation).mean
  poisoned = dict(batch.observation, object_poses=np.full_like(batch.observation['object_poses'],
                                                               np.nan))
  np.testing.assert_array_equal(learner.distribution(poisoned).mean, first)
  assert np.isfinite(learner.step(batch._replace(observation=poisoned))['policy_loss'])


def test_same_seed_same_batches_same_metrics(teacher):
  def run():
    rng = np.random.default_rng(1)
    learner = learner_lib.Learner('R-MPO', dataclasses.replace(STATE, seed=3), teacher=teacher)
    return [learner.step(util.random_batch(rng, 8)) for _ in range(3)]
  assert run() == run()


def test_teacher_labels_computed_ahead_give_the_same_step(teacher):
  """The input thread's labels (training's Prefetcher) change nothing."""
  def run(ahead, shift=0.0):
    rng = np.random.default_rng(1)
    learner = learner_lib.Learner('R-CRR', dataclasses.replace(STATE, seed=3), teacher=teacher)
    metrics = []
    for _ in range(3):
      batch = util.random_batch(rng, 8)
      labels = None
      if ahead:
        mean, stddev = learner.teacher_labels(batch)
        labels = (mean + shift, stddev)
      metrics.append(learner.step(batch, labels))
    return metrics
  assert run(ahead=True) == run(ahead=False)
  assert run(ahead=True, shift=0.5) != run(ahead=False)  # The given labels are used.
  mean, stddev = learner_lib.Learner('R-CRR', STATE, teacher=teacher).teacher_labels(
      util.random_batch(np.random.default_rng(2), 8))
  assert mean.shape == stddev.shape == (8, specs.ACTION_DIM) and mean.dtype == np.float32
  assert learner_lib.Learner('CRR', STATE).teacher_labels(util.random_batch(
      np.random.default_rng(2), 8)) is None


class _NumpyOnly:
  """The same teacher without its TF function: the learner labels in numpy."""

  def __init__(self, teacher):
    self.name, self.distribution = teacher.name, teacher.distribution


@pytest.mark.parametrize('obs_mode', ['state', 'vision'])
def test_network_teacher_labels_inside_the_compiled_step(obs_mode):
  network_teacher = envs.make_teacher('mastery')  # The shipped SavedModel.
  config = dataclasses.replace(STATE if obs_mode == 'state' else VISION, seed=3)
  batch = util.random_batch(np.random.default_rng(4), 8, obs_mode)
  learner = learner_lib.Learner('R-CRR', config, teacher=network_teacher)
  assert learner.teacher_labels(batch) is None  # Nothing left for the input thread.
  obs = {k: batch.observation[k] for k in specs.TEACHER_KEYS}
  mean, stddev = tf.function(learner.relabel)(obs)
  expected = network_teacher.distribution(obs)
  np.testing.assert_allclose(mean.numpy(), expected.mean, rtol=0, atol=1e-6)
  np.testing.assert_allclose(stddev.numpy(), expected.stddev, rtol=0, atol=1e-6)

  def run(teacher):
    rng = np.random.default_rng(1)
    learner = learner_lib.Learner('DAgger', config, teacher=teacher)
    metrics = [learner.step(util.random_batch(rng, 8, obs_mode)) for _ in range(2)]
    metrics.append(learner.steps(types.stack([util.random_batch(rng, 8, obs_mode)
                                              for _ in range(3)])))
    return metrics, [v.numpy() for v in learner.policy.trainable_variables]
  (in_graph, weights), (numpy_path, numpy_weights) = (run(network_teacher),
                                                      run(_NumpyOnly(network_teacher)))
  for a, b in zip(in_graph, numpy_path):
    for name in a:
      np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
  for a, b in zip(weights, numpy_weights):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_checkpoint_restores_everything_and_training_continues_identically(tmp_path, teacher):
  rng = np.random.default_rng(2)
  batches = [util.random_batch(rng, 8) for _ in range(6)]
  config = dataclasses.replace(STATE, seed=5)
  first = learner_lib.Learner('MPO', config, teacher=teacher, workdir=str(tmp_path))
  assert not first.restore()  # Nothing saved yet.
  for b in batches[:3]:
    first.step(b)
  path = first.save()
  assert path.startswith(os.path.join(str(tmp_path), 'checkpoints', 'learner'))
  continued = [first.step(b) for b in batches[3:]]

  # A fresh learner (different seed: everything must come from the checkpoint).
  resumed = learner_lib.Learner('MPO', dataclasses.replace(config, seed=99), teacher=teacher,
                                workdir=str(tmp_path))
  # The newest checkpoint is the one written above (max_to_keep, no later saves).
  assert resumed.restore()
  assert resumed.num_steps == 3
  assert resumed._duals.pre_softplus_temperature.numpy() != pytest.approx(  # pylint: disable=protected-access
      learner_lib.Learner('MPO', config, teacher=teacher)._duals.pre_softplus_temperature.numpy())  # pylint: disable=protected-access
  replayed = [resumed.step(b) for b in batches[3:]]
  assert replayed == continued


def test_restore_into_other_networks_or_method_fails_loudly(tmp_path, teacher):
  rng = np.random.default_rng(0)
  crr = learner_lib.Learner('CRR', STATE, workdir=str(tmp_path))
  crr.step(util.random_batch(rng, 4))
  crr.save()
  bigger = dataclasses.replace(STATE, nets=dataclasses.replace(util.SMALL_NETS, encoder_size=48))
  with pytest.raises(ValueError, match='incompatible'):
    learner_lib.Learner('CRR', bigger, workdir=str(tmp_path)).restore()
  with pytest.raises(ValueError, match="written by method 'CRR', not 'MPO'"):
    learner_lib.Learner('MPO', STATE, workdir=str(tmp_path)).restore()


def test_unparsable_checkpoint_state_refuses_to_restart(tmp_path):
  directory = os.path.join(str(tmp_path), 'checkpoints', 'learner')
  os.makedirs(directory)
  with open(os.path.join(directory, 'checkpoint'), 'w') as f:
    f.write('this is not a checkpoint state {')
  with pytest.raises(RuntimeError, match='refusing to restart'):
    learner_lib.Learner('BC', STATE, workdir=str(tmp_path)).restore()


def test_non_finite_loss_names_metric_and_step():
  rng = np.random.default_rng(0)
  learner = learner_lib.Learner('CRR', STATE)
  learner.step(util.random_batch(rng, 4))
  bad = util.random_batch(rng, 4)
  bad = bad._replace(reward=np.full(4, np.nan, np.float32))
  with pytest.raises(learner_lib.NonFiniteError, match=r'Non-finite critic_loss=nan at learner step 1'):
    learner.step(bad)


def test_teacher_methods_need_a_teacher():
  with pytest.raises(ValueError, match='teacher'):
    learner_lib.Learner('R-CRR', STATE)


def test_malformed_batch_is_rejected():
  rng = np.random.default_rng(0)
  batch = util.random_batch(rng, 4)
  bad = batch._replace(action=batch.action[:, :3])
  with pytest.raises(ValueError, match='batch.action'):
    learner_lib.Learner('BC', STATE).step(bad)


def test_a_new_method_is_a_new_row(teacher):
  row = dataclasses.replace(methods.get_method('R-CRR'), name='R-CRR-half', beta=
                            methods.schedules.Constant(0.5))
  learner = learner_lib.Learner(row, STATE, teacher=teacher)
  metrics = learner.step(util.random_batch(np.random.default_rng(0), 8))
  assert metrics['beta'] == 0.5


def test_r_crr_prior_draws_teacher_actions_with_frequency_beta(teacher):
  """Through the prior sampler the learner uses: binomial test with a 5-sigma band."""
  learner = learner_lib.Learner('R-CRR', STATE, teacher=teacher)
  size = 1000
  batch = types.Batch(
      observation=util.observations(np.random.default_rng(0), size), action=np.full(
          (size, specs.ACTION_DIM), 0.5, np.float32),
      reward=np.zeros(size, np.float32), discount=np.zeros(size, np.float32),
      next_observation=None, is_offline=np.ones(size, np.float32))
  # A teacher that always says -0.5 with tiny noise, so its draws are recognisable.
  teacher_dist = (tf.fill((size, specs.ACTION_DIM), -0.5), tf.fill((size, specs.ACTION_DIM), 1e-3))
  beta = 0.75
  actions, mask = priors.prior_actions(
      learner.method, tf.constant(batch.action), None, teacher_dist, tf.constant(beta),
      learner._rng)  # pylint: disable=protected-access
  actions = actions.numpy()
  n = actions.shape[0] * actions.shape[1]  # N samples x B states = 8000 draws.
  from_teacher = (actions[..., 0] < 0)
  np.testing.assert_array_equal(from_teacher, mask.numpy() > 0.5)
  # The other component is the batch action itself (pi_b's one sample).
  np.testing.assert_array_equal(actions[~from_teacher], 0.5)
  sigma = np.sqrt(beta * (1 - beta) / n)
  assert abs(from_teacher.mean() - beta) < 5 * sigma, (from_teacher.mean(), sigma)


def test_sample_gaussian_respects_action_bounds():
  rng = tf.random.Generator.from_seed(0)
  samples = priors.sample_gaussian(tf.fill((16, 5), 0.9), tf.fill((16, 5), 2.0), 10, rng)
  assert samples.shape == (10, 16, 5)
  assert np.abs(samples.numpy()).max() <= 1.0


def test_bc_first_loss_is_negative_mean_log_likelihood():
  rng = np.random.default_rng(0)
  learner = learner_lib.Learner('BC', STATE)
  batch = util.random_batch(rng, 16)
  batch.action[0] = 1.0  # A dataset action exactly at the bound.
  dist = learner.distribution(batch.observation)
  z = (batch.action - dist.mean) / dist.stddev
  log_lik = np.sum(-0.5 * z ** 2 - np.log(dist.stddev) - 0.5 * np.log(2 * np.pi), axis=-1)
  metrics = learner.step(batch)  # The loss is computed before the update.
  assert metrics['policy_loss'] == pytest.approx(-log_lik.mean(), rel=1e-5)
  assert metrics['weight_mean'] == 1.0


def test_concat_builds_a_mixed_batch():
  rng = np.random.default_rng(0)
  offline = util.random_batch(rng, 3, offline_fraction=1.0)
  online = util.random_batch(rng, 5, offline_fraction=0.0)
  mixed = types.concat(offline, online)
  types.validate(mixed, 'state')
  np.testing.assert_array_equal(mixed.is_offline, [1, 1, 1, 0, 0, 0, 0, 0])


@pytest.mark.parametrize('mode', ['polyak', 'periodic'])
def test_target_networks_follow_online_networks(mode):
  config = dataclasses.replace(STATE, target_update=mode, tau=0.1, target_update_period=2)
  learner = learner_lib.Learner('CRR', config)
  rng = np.random.default_rng(0)
  pairs = learner._target_pairs  # pylint: disable=protected-access
  before = [t.numpy() for t, _ in pairs]
  learner.step(util.random_batch(rng, 8))
  for (target, online), old in zip(pairs, before):
    if mode == 'polyak':  # target <- target + tau (online - target), after the update.
      np.testing.assert_allclose(target.numpy(), old + 0.1 * (online.numpy() - old),
                                 rtol=1e-5, atol=1e-7)
    else:  # Copied at step 0 (before the update), untouched until step 2.
      np.testing.assert_array_equal(target.numpy(), old)
  if mode == 'periodic':
    learner.step(util.random_batch(rng, 8))
    learner.step(util.random_batch(rng, 8))  # Step 2 copies, then updates online.
    moved = [not np.array_equal(t.numpy(), old) for (t, _), old in zip(pairs, before)]
    assert any(moved)


@pytest.mark.parametrize('method', ['CRR', 'R-CRR', 'MPO'])
def test_k_steps_in_one_call_equal_k_single_calls(teacher, method):
  """Acme's num_sgd_steps_per_step: same batches, same schedules, same weights."""
  rng = np.random.default_rng(3)
  batches = [util.random_batch(rng, 8) for _ in range(5)]
  config = learner_lib.LearnerConfig(nets=util.SMALL_NETS, seed=4)
  single = learner_lib.Learner(method, config, teacher=teacher)
  per_step = [single.step(b) for b in batches]
  multi = learner_lib.Learner(method, config, teacher=teacher)
  stacked = multi.steps(types.stack(batches[:3]))
  stacked_rest = multi.steps(types.stack(batches[3:]))
  assert multi.num_steps == single.num_steps == 5
  for name, values in stacked.items():
    got = np.concatenate([values, stacked_rest[name]])
    np.testing.assert_allclose(got, [m[name] for m in per_step], rtol=1e-5, atol=1e-6,
                               err_msg=name)
  for a, b in zip(single.policy.variables, multi.policy.variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
  if method == 'CRR':  # Offline runs do not depend on the call size at all.
    critic = lambda l: l._critic.variables  # pylint: disable=protected-access
    for a, b in zip(single.policy.variables + critic(single),
                    multi.policy.variables + critic(multi)):
      np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_policy_ema_decay_warms_up_then_holds():
  """min(decay, (1 + k) / (10 + k)): 0.1 at k=0, 0.5 at k=8, capped at the decay."""
  values = [float(averaging.ema_decay(0.99, k)) for k in (0, 8, 90, 10_000)]
  np.testing.assert_allclose(values, [0.1, 0.5, 0.91, 0.99], rtol=1e-6)


def test_policy_ema_is_the_polyak_average_of_the_trained_policy():
  """After step k: ema <- d_k ema + (1 - d_k) policy, from ema_0 = policy_0."""
  rng = np.random.default_rng(7)
  batches = [util.random_batch(rng, 8) for _ in range(4)]
  config = dataclasses.replace(STATE, policy_ema=0.5)
  learner = learner_lib.Learner('CRR', config)
  ema = lambda l: [v.numpy() for v in l._ema_policy.variables]  # pylint: disable=protected-access
  expected = [v.numpy() for v in learner.policy.variables]
  for k, batch in enumerate(batches):
    learner.step(batch)
    decay = min(0.5, (1 + k) / (10 + k))  # 0.1, 2/11, 3/12, 4/13
    expected = [decay * e + (1 - decay) * p.numpy()
                for e, p in zip(expected, learner.policy.variables)]
    for got, want in zip(ema(learner), expected):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  # K steps in one call: the same average (the decay schedule runs per step).
  stacked = learner_lib.Learner('CRR', config)
  stacked.steps(types.stack(batches))
  for got, want in zip(ema(stacked), ema(learner)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  # Evaluation acts with the average, collection with the trained policy.
  obs = util.observations(rng, 3)
  obs = {k: obs[k] for k in specs.STUDENT_KEYS['state']}
  assert learner.evaluates_average
  assert not np.allclose(learner.eval_distribution(obs).mean, learner.distribution(obs).mean)


def test_policy_ema_off_evaluates_the_trained_policy_and_is_checkpointed_when_on(tmp_path):
  rng = np.random.default_rng(1)
  obs = util.observations(rng, 3)
  obs = {k: obs[k] for k in specs.STUDENT_KEYS['state']}
  plain = learner_lib.Learner('BC', STATE)
  assert not plain.evaluates_average
  np.testing.assert_array_equal(plain.eval_distribution(obs).mean, plain.distribution(obs).mean)
  with pytest.raises(ValueError, match='policy_ema must be in'):
    learner_lib.Learner('BC', dataclasses.replace(STATE, policy_ema=1.0))

  config = dataclasses.replace(STATE, policy_ema=0.9)
  first = learner_lib.Learner('BC', config, workdir=str(tmp_path))
  for _ in range(3):
    first.step(util.random_batch(rng, 8))
  first.save()
  resumed = learner_lib.Learner('BC', dataclasses.replace(config, seed=9), workdir=str(tmp_path))
  resumed.restore()
  np.testing.assert_array_equal(resumed.eval_distribution(obs).mean,
                                first.eval_distribution(obs).mean)
