"""Learning on tiny problems: BC clones, CRR filters bad actions, the critic fits a return."""

import dataclasses

import numpy as np
import pytest

from envs import specs
from learners import learner as learner_lib
from learners import methods
from learners import networks
from learners import schedules
from learners import types
import learner_fixtures as util

NETS = networks.NetworkConfig(encoder_size=64, policy_torso=(64,), critic_torso=(64,),
                              v_min=-4.0, v_max=6.0, num_atoms=51)
FAST = learner_lib.LearnerConfig(nets=NETS, policy_learning_rate=1e-3,
                                 critic_learning_rate=1e-3, tau=0.05)
BATCH = 64


def _bandit_batches(teacher, rng, num, with_bad_actions):
  """One-step episodes (discount 0), reward 1 - mean squared distance to the teacher's action.

  With `with_bad_actions`, half the actions are uniform noise (low reward).
  """
  for _ in range(num):
    obs = util.observations(rng, BATCH)
    good = teacher.distribution(obs).mean
    action = good.copy()
    bad = rng.random(BATCH) < 0.5 if with_bad_actions else np.zeros(BATCH, bool)
    action[bad] = rng.uniform(-1, 1, (bad.sum(), specs.ACTION_DIM))
    yield types.Batch(observation=obs, action=action.astype(np.float32),
                      reward=(1.0 - np.mean((action - good) ** 2, axis=-1)).astype(np.float32), discount=np.zeros(BATCH, np.float32),
                      next_observation=obs, is_offline=np.ones(BATCH, np.float32))


def _error(learner, teacher, seed=123):
  obs = util.observations(np.random.default_rng(seed), 512)
  return float(np.mean((learner.distribution(obs).mean - teacher.distribution(obs).mean) ** 2))


def test_bc_recovers_a_linear_teacher():
  teacher = util.LinearTeacher.random(seed=1, scale=0.15)
  learner = learner_lib.Learner('BC', FAST)
  start = _error(learner, teacher)
  for batch in _bandit_batches(teacher, np.random.default_rng(0), 1500, False):
    learner.step(batch)
  end = _error(learner, teacher)
  assert end < 0.01 and end < start / 20, (start, end)


def test_crr_beats_bc_when_half_the_actions_are_bad():
  teacher = util.LinearTeacher.random(seed=2, scale=0.15)
  crr_row = dataclasses.replace(methods.get_method('CRR'), eta=schedules.Constant(0.1))
  errors = {}
  for name, row in (('BC', 'BC'), ('CRR', crr_row)):
    learner = learner_lib.Learner(row, FAST)
    for batch in _bandit_batches(teacher, np.random.default_rng(0), 1500, True):
      learner.step(batch)
    errors[name] = _error(learner, teacher)
  # BC averages good and uniform actions; CRR's advantage weights keep the good ones.
  assert errors['CRR'] < 0.5 * errors['BC'], errors
  assert errors['CRR'] < 0.05, errors


def test_critic_fits_a_known_discounted_return():
  # An absorbing state with reward 1 and discount 0.8: Q = 1 / (1 - 0.8) = 5.
  rng = np.random.default_rng(0)
  learner = learner_lib.Learner('CRR', FAST)
  for _ in range(1500):
    obs = util.observations(rng, BATCH)
    metrics = learner.step(types.Batch(
        observation=obs, action=rng.uniform(-1, 1, (BATCH, specs.ACTION_DIM)).astype(np.float32),
        reward=np.ones(BATCH, np.float32), discount=np.full(BATCH, 0.8, np.float32),
        next_observation=obs, is_offline=np.ones(BATCH, np.float32)))
  assert metrics['q_batch_mean'] == pytest.approx(5.0, abs=0.25), metrics
