"""Known-answer tests for the learner's math: each fails when a formula is wrong."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from learners import distributional
from learners import losses
from learners import methods
from learners import priors
from learners import schedules
from learners import weightings


# --- Categorical projection ---------------------------------------------------

def test_projection_matches_hand_computed_case():
  support = tf.constant([0.0, 1.0, 2.0])
  # r = 0.5, d = 1: atoms move to 0.5, 1.5, 2.5 (clipped to 2).
  out = distributional.n_step_target(tf.constant([0.5]), tf.constant([1.0]),
                                     tf.constant([[0.2, 0.3, 0.5]]), support)
  # 0.5 splits 0.2 half/half onto 0 and 1; 1.5 splits 0.3 onto 1 and 2; 2 keeps 0.5.
  np.testing.assert_allclose(out.numpy(), [[0.1, 0.25, 0.65]], atol=1e-6)


def test_projection_shrinks_towards_reward_when_discount_is_zero():
  support = tf.constant([-1.0, 0.0, 1.0, 2.0])
  out = distributional.n_step_target(tf.constant([0.25]), tf.constant([0.0]),
                                     tf.constant([[0.1, 0.2, 0.3, 0.4]]), support)
  np.testing.assert_allclose(out.numpy(), [[0.0, 0.75, 0.25, 0.0]], atol=1e-6)


def test_projection_preserves_mass():
  rng = np.random.default_rng(0)
  support = tf.constant(np.linspace(-10, 10, 51), tf.float32)
  probs = rng.dirichlet(np.ones(51), size=32).astype(np.float32)
  out = distributional.n_step_target(
      tf.constant(rng.normal(0, 8, 32), tf.float32),
      tf.constant(rng.uniform(0, 1.2, 32), tf.float32), tf.constant(probs), support)
  np.testing.assert_allclose(out.numpy().sum(-1), np.ones(32), atol=1e-5)
  assert (out.numpy() >= 0).all()


def test_mean_value_of_categorical():
  support = tf.constant([0.0, 10.0])
  logits = tf.math.log(tf.constant([[0.25, 0.75]]))
  np.testing.assert_allclose(distributional.mean_value(logits, support).numpy(), [7.5],
                             rtol=1e-6)


# --- Policy loss and weights -----------------------------------------------------

def test_gaussian_log_prob_matches_formula_and_is_finite_at_bounds():
  mean = np.array([[0.99, -0.2]], np.float32)
  stddev = np.array([[0.01, 0.5]], np.float32)
  action = np.array([[-1.0, 1.0]], np.float32)  # Dataset actions at the bounds.
  expected = np.sum(-0.5 * ((action - mean) / stddev) ** 2 - np.log(stddev)
                    - 0.5 * np.log(2 * np.pi))
  got = losses.gaussian_log_prob(mean, stddev, action).numpy()
  assert np.isfinite(got).all()
  np.testing.assert_allclose(got, [expected], rtol=1e-5)


def test_eq3_loss_with_unit_weights_is_negative_mean_log_likelihood():
  log_probs = tf.constant([[-1.0, -2.0, -4.0]])
  assert losses.eq3_policy_loss(log_probs, tf.ones_like(log_probs)).numpy() == pytest.approx(7 / 3)
  weights = tf.constant([[2.0, 0.0, 1.0]])  # (-2 - 0 - 4) / 3
  assert losses.eq3_policy_loss(log_probs, weights).numpy() == pytest.approx(2.0)


def test_crr_weights_are_clipped_exponential_advantages():
  q = tf.constant([[1.0, 3.0, -2.0]])
  value = tf.constant([[0.5, 0.0, 0.0]])
  weights, advantage = losses.crr_weights(q, value, eta=tf.constant(0.5), clip=20.0)
  np.testing.assert_allclose(advantage.numpy(), [[0.5, 3.0, -2.0]])
  # exp(0.5/0.5) = e; exp(3/0.5) = 403 -> clipped to 20; exp(-2/0.5) = e^-4.
  np.testing.assert_allclose(weights.numpy(), [[2.718282, 20.0, 0.0183156]], rtol=1e-5)


def test_softmax_weights_are_exp_q_over_eta_minus_z():
  q = tf.constant([[1.0], [2.0], [3.0]])  # N = 3 samples of one state.
  # exp(q/2) = 1.648721, 2.718282, 4.481689; mean 2.949564 = exp(Z).
  expected = np.array([[1.648721 / 2.949564], [2.718282 / 2.949564], [4.481689 / 2.949564]])
  got = losses.softmax_weights(q, tf.constant(2.0)).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  assert got.mean() == pytest.approx(1.0)


def test_mpo_temperature_dual_solves_the_kl_constraint():
  rng = np.random.default_rng(0)
  q = tf.constant(rng.normal(0, 3, (40, 16)), tf.float32)  # [N, B]
  epsilon = 0.1
  duals = losses.MPODuals(action_dim=1, init_temperature=5.0)

  @tf.function
  def descend():
    for _ in tf.range(3000):
      with tf.GradientTape() as tape:
        loss = losses.temperature_dual_loss(q, duals.temperature, epsilon)
      grad = tape.gradient(loss, duals.pre_softplus_temperature)
      duals.pre_softplus_temperature.assign_sub(0.05 * grad)  # Plain gradient descent.

  descend()
  weights = losses.softmax_weights(q, duals.temperature)
  # The dual's stationarity condition is E_s KL(pi_imp(.|s) || prior(.|s)) = epsilon.
  assert losses.nonparametric_kl(weights).numpy() == pytest.approx(epsilon, rel=0.03)


def test_mpo_trust_region_penalises_moving_away_from_target():
  mean = tf.zeros((4, 2))
  stddev = tf.ones((4, 2))
  actions = tf.zeros((3, 4, 2))
  weights = tf.ones((3, 4))
  alpha = tf.ones(2)
  same, _, stats = losses.mpo_trust_region_loss((mean, stddev), (mean, stddev), actions,
                                                weights, alpha, alpha, 1e-3, 1e-6)
  assert stats['kl_mean'].numpy() == pytest.approx(0.0)
  moved, dual, stats = losses.mpo_trust_region_loss((mean + 0.1, stddev), (mean, stddev),
                                                    actions, weights, alpha, alpha, 1e-3, 1e-6)
  # KL of a 0.1 mean shift at unit stddev is 0.1^2 / 2 per dimension.
  assert stats['kl_mean'].numpy() == pytest.approx(0.005, rel=1e-4)
  assert moved.numpy() > same.numpy()
  # The dual loss decreases alpha's objective when the KL exceeds its bound.
  assert dual.numpy() < 0


# --- Prior sampling ---------------------------------------------------------------

def test_mix_takes_teacher_where_uniform_below_beta():
  base = tf.zeros((2, 2, 1))
  teacher = tf.ones((2, 2, 1))
  actions, mask = priors.mix(base, teacher, tf.constant([[0.1, 0.8], [0.74, 0.76]]),
                             tf.constant(0.75))
  np.testing.assert_array_equal(mask.numpy(), [[1, 0], [1, 0]])
  np.testing.assert_array_equal(actions.numpy()[..., 0], [[1, 0], [1, 0]])


# --- Schedules and method table -----------------------------------------------------

def test_awac_schedules_at_paper_steps():
  awac = methods.get_method('AWAC')
  fractions = [awac.offline_fraction(s) for s in (0, 500_000, 800_000, 1_100_000, 2_000_000)]
  np.testing.assert_allclose(fractions, [1.0, 1.0, 0.6, 0.2, 0.2], atol=1e-9)
  etas = [awac.eta(s) for s in (0, 400_000, 450_000, 500_000, 800_000, 1_100_000)]
  np.testing.assert_allclose(etas, [1.0, 1.0, 0.55, 0.1, 0.1, 0.1], atol=1e-9)


def test_schedules():
  assert schedules.Constant(0.3)(10**6) == 0.3
  lin = schedules.Linear(2.0, 0.0, begin_step=10, end_step=20)
  assert [lin(s) for s in (0, 10, 15, 20, 99)] == [2.0, 2.0, 1.0, 0.0, 0.0]
  pw = schedules.piecewise((0, 0.0), (10, 1.0), (30, 0.0))
  assert [pw(s) for s in (-5, 5, 10, 20, 30, 40)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
  with pytest.raises(ValueError):
    schedules.Linear(0.0, 1.0, begin_step=5, end_step=5)
  with pytest.raises(ValueError):
    schedules.piecewise((10, 0.0), (0, 1.0))


def test_table_has_the_ten_methods_of_the_paper():
  assert list(methods.METHODS) == ['BC', 'CRR', 'CRR-mixed', 'AWAC', 'DAgger', 'DAgger-mixed',
                                   'MPO', 'R-MPO', 'R-CRR', 'R-CRR-target']
  rows = methods.METHODS
  assert rows['R-CRR'].beta(0) == 0.75 and rows['R-MPO'].beta(0) == 0.1
  assert rows['R-CRR'].prior == 'behavior' and rows['R-CRR-target'].prior == 'target'
  assert rows['MPO'].num_prior_samples == 20 and rows['MPO'].reward == 'shaped'
  for name in ('CRR-mixed', 'DAgger-mixed', 'R-MPO', 'R-CRR', 'R-CRR-target'):
    assert rows[name].offline_fraction(0) == 0.5
  assert rows['DAgger'].offline_fraction(0) == 0.0 and rows['CRR'].offline_fraction(0) == 1.0
  assert not rows['BC'].uses_teacher and rows['DAgger'].uses_teacher


def test_unknown_method_lists_known_ones():
  with pytest.raises(ValueError, match=r"Unknown method 'SAC'.*BC, CRR.*R-CRR-target"):
    methods.get_method('SAC')


def test_invalid_rows_are_rejected():
  base = methods.get_method('R-CRR')
  with pytest.raises(ValueError, match='prior'):
    dataclasses.replace(base, prior='student')
  with pytest.raises(ValueError, match='num_prior_samples'):
    dataclasses.replace(base, num_prior_samples=1)


def test_clip_constant_matches_log_clip():
  # crr_weights clips the exponent at log(clip); check the boundary exactly.
  w, _ = losses.crr_weights(tf.constant([[math.log(20.0)]]), tf.constant([[0.0]]),
                            tf.constant(1.0), 20.0)
  assert w.numpy()[0, 0] == pytest.approx(20.0)


def test_weightings_table_covers_every_row_and_gives_known_weights():
  assert set(weightings.WEIGHTINGS) == set(methods.WEIGHTINGS)
  q = tf.constant([[1.0, 0.0], [3.0, 0.0]])  # [N=2 prior samples, B=2 states]
  q_policy = tf.constant([[0.0, 0.0], [2.0, 0.0]])  # V = mean = [1, 0]
  eta = tf.constant(2.0)

  def weigh(name, row='CRR'):
    inputs = weightings.WeightingInputs(methods.METHODS[row], tf.zeros([2, 2, 5]), q,
                                        q_policy, eta)
    return weightings.WEIGHTINGS[name](inputs)

  ones, _ = weigh('none', 'BC')
  np.testing.assert_array_equal(ones.numpy(), np.ones((2, 2)))
  # CRR: exp(A / eta) with A = Q - V: [[0, 0], [2, 0]] / 2.
  crr, stats = weigh('advantage')
  np.testing.assert_allclose(crr.numpy(), np.exp([[0.0, 0.0], [1.0, 0.0]]), rtol=1e-6)
  assert float(stats['advantage_max']) == pytest.approx(2.0)
  # R-CRR: N * softmax_n(Q / eta) per state; state 0: exp([0.5, 1.5]) normalised.
  soft, soft_stats = weigh('softmax', 'R-CRR')
  # Std of Q across the prior samples, per state ([1, 3] -> 1, [0, 0] -> 0), averaged.
  assert float(soft_stats['q_sample_std']) == pytest.approx(0.5)
  expected0 = 2 * np.exp([0.5, 1.5]) / np.exp([0.5, 1.5]).sum()
  np.testing.assert_allclose(soft.numpy()[:, 0], expected0, rtol=1e-6)
  np.testing.assert_allclose(soft.numpy()[:, 1], [1.0, 1.0], rtol=1e-6)
  mpo, stats = weigh('mpo', 'MPO')
  np.testing.assert_allclose(mpo.numpy(), soft.numpy(), rtol=1e-6)
  assert 'temperature_loss' in stats
  assert weightings.num_policy_samples(methods.METHODS['CRR']) == 4
  assert weightings.num_policy_samples(methods.METHODS['R-CRR']) == 0


def test_discounted_return_to_go_known_answer():
  from learners.training import q_tracking  # pylint: disable=g-import-not-at-top
  # gamma 0.5, rewards [0, 0, 1, 1]: G3 = 1, G2 = 1.5, G1 = 0.75, G0 = 0.375.
  np.testing.assert_allclose(
      q_tracking.discounted_return_to_go(np.array([0.0, 0.0, 1.0, 1.0]), 0.5),
      [0.375, 0.75, 1.5, 1.0])
  stats = q_tracking.summarise([
      dict(q=np.array([2.0, 1.0]), g=np.array([1.0, 0.0]), success=True),
      dict(q=np.array([0.0, 0.0]), g=np.array([0.0, 0.0]), success=False)])
  assert stats['mean_bias'] == pytest.approx(0.5)  # (1 + 1 + 0 + 0) / 4
  assert (stats['q0_succeeded'], stats['q0_failed'], stats['succeeded']) == (2.0, 0.0, 1)


def test_eta_override_replaces_the_rows_temperature():
  from learners.training import config as config_lib  # pylint: disable=g-import-not-at-top
  crr = methods.get_method('CRR').with_overrides(eta=0.1)
  assert (crr.eta(0), crr.eta(10**6)) == (0.1, 0.1)
  awac = methods.get_method('AWAC').with_overrides(eta=0.2)  # Its schedule, replaced.
  assert (awac.eta(0), awac.eta(500_000)) == (0.2, 0.2)
  run = config_lib.RunConfig(method='R-CRR', budget=10, offline_episodes=5, eta=0.05)
  assert config_lib.resolve_method(run).eta(123) == 0.05
  assert config_lib.resolve_method(dataclasses.replace(run, eta=None)).eta(0) == 1.0
  for name in ('MPO', 'BC'):
    with pytest.raises(ValueError, match='no fixed temperature'):
      methods.get_method(name).with_overrides(eta=0.1)
  with pytest.raises(ValueError, match='eta must be > 0'):
    methods.get_method('CRR').with_overrides(eta=0.0)
