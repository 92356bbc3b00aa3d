"""Reverb replay, ledger and actor pieces on their own (real server, real envlogger)."""

import json
import os

import numpy as np
import pytest
import reverb
import tensorflow as tf

from envs import specs
from learners.training import actors as actors_lib
from learners.training import ledger as ledger_lib
from learners.training import replay
from pipelines import episode_log
from pipelines import transitions as transitions_lib


def _items(signature, n, seed=0):
  rng = np.random.default_rng(seed)
  return tf.nest.map_structure(
      lambda s: rng.random((n,) + tuple(s.shape)).astype(s.dtype.as_numpy_dtype), signature)


def test_insert_and_sample_round_trip_with_signature():
  server = replay.ReplayServer(replay.ReplayConfig(max_size=100, min_size=5, timeout_ms=5000),
                               'state', burst=20)
  try:
    writer = replay.TransitionWriter(server.address, 5000)
    items = _items(server.signature, 30)
    assert writer.insert(items) == 30
    assert server.size() == 30
    batch = next(replay.numpy_batches(server.address, 8, 5000))
    assert batch['action'].shape == (8, specs.ACTION_DIM)
    assert batch['observation']['proprio'].dtype == np.float32
    # Every sampled item is one of the inserted transitions, fields kept together.
    for action, reward in zip(batch['action'], batch['reward']):
      index = int(np.argmin(np.abs(items['action'] - action).sum(axis=1)))
      np.testing.assert_array_equal(items['action'][index], action)
      assert items['reward'][index] == reward
    # float64 breaks the one-dtype policy: the signature rejects it.
    bad = dict(items, reward=items['reward'].astype(np.float64))
    with pytest.raises((ValueError, RuntimeError, TypeError)):
      writer.insert(bad)
  finally:
    server.stop()


def test_starved_sampler_times_out_instead_of_hanging():
  server = replay.ReplayServer(replay.ReplayConfig(max_size=100, min_size=50, timeout_ms=500),
                               'state', burst=20)
  try:
    replay.TransitionWriter(server.address, 500).insert(_items(server.signature, 10))
    with pytest.raises(replay.ReplayError, match='No replay sample within 500 ms'):
      next(replay.numpy_batches(server.address, 4, 500))
  finally:
    server.stop()


def test_ratio_limiter_buffer_covers_an_episode_burst():
  limiter_cfg = replay.ReplayConfig(rate_limiter='ratio', samples_per_insert=6.4, min_size=100)
  limiter = replay.make_rate_limiter(limiter_cfg, burst=400)
  assert isinstance(limiter, reverb.rate_limiters.SampleToInsertRatio)
  # One 400-step episode inserted at once must stay inside the allowed drift,
  # or the actor's flush would block until it times out.
  drift = limiter._max_diff - limiter._min_diff  # pylint: disable=protected-access
  assert drift >= 2 * 400 * 6.4
  assert limiter._min_size_to_sample == 100  # pylint: disable=protected-access


def test_changed_table_config_refuses_the_old_checkpoint(tmp_path):
  directory = str(tmp_path / 'replay')
  server = replay.ReplayServer(replay.ReplayConfig(max_size=100, min_size=5), 'state',
                               burst=20, checkpoint_dir=directory)
  replay.TransitionWriter(server.address, 5000).insert(_items(server.signature, 12))
  server.checkpoint()
  server.stop()
  again = replay.ReplayServer(replay.ReplayConfig(max_size=100, min_size=5), 'state',
                              burst=20, checkpoint_dir=directory)
  assert again.size() == 12
  again.stop()
  with pytest.raises(replay.ReplayError, match='another table config'):
    replay.ReplayServer(replay.ReplayConfig(max_size=200, min_size=5), 'state', burst=20,
                        checkpoint_dir=directory)


def test_ledger_counts_out_of_order_episodes_and_lists_the_rest():
  """Several actors finish out of order; the ledger keeps which indices are counted."""
  ledger = ledger_lib.Ledger(budget=7, offline_episodes=1)  # Online indices 0..5.
  for index in (0, 2, 3):
    ledger.add_online_episode(index)
  assert ledger.online_episodes == 3 and ledger.counted_ahead == [2, 3]
  assert ledger.first_uncounted == 1 and ledger.uncounted() == [1, 4, 5]
  assert ledger.is_counted(2) and not ledger.is_counted(1)
  ledger.add_online_episode(1)  # Fills the gap: 0..3 are now a prefix.
  assert ledger.counted_ahead == [] and ledger.first_uncounted == 4
  assert ledger.uncounted() == [4, 5]
  with pytest.raises(ledger_lib.BudgetError, match='outside the online budget'):
    ledger.add_online_episode(6)
  # The list survives the ledger's JSON round trip (resume reads it from the snapshot).
  ledger.add_online_episode(5)
  again = ledger_lib.Ledger(**{k: v for k, v in ledger.as_dict().items() if k != 'spent'})
  assert again == ledger and again.uncounted() == [4]


def test_ledger_budget_rules_and_atomic_json(tmp_path):
  assert ledger_lib.check_budget(10_000, 5_000, online=True) == 5_000
  assert ledger_lib.check_budget(None, 5_000, online=False) == 0
  with pytest.raises(ledger_lib.BudgetError, match='smaller than the teacher dataset'):
    ledger_lib.check_budget(1_000, 5_000, online=True)
  ledger = ledger_lib.Ledger(budget=3, offline_episodes=1)
  ledger.add_online_episode(0)
  with pytest.raises(ledger_lib.BudgetError, match='counted already'):
    ledger.add_online_episode(0)  # A resume must never count an episode twice.
  ledger.add_online_episode(1)
  assert ledger.budget_spent
  with pytest.raises(ledger_lib.BudgetError, match='beyond the budget'):
    ledger.add_online_episode(2)
  ledger.eval_episodes = 7
  path = ledger.write(str(tmp_path))
  assert json.load(open(path))['spent'] == 3
  assert ledger_lib.Ledger.read(str(tmp_path)) == ledger
  assert os.listdir(tmp_path) == [ledger_lib.LEDGER_FILE]  # no tmp file left


class _FixedPolicy:
  name = 'fixed'

  def distribution(self, observation):
    from envs import policy  # pylint: disable=g-import-not-at-top
    return policy.GaussianAction(np.zeros(5, np.float32), np.full(5, 0.3, np.float32))


@pytest.mark.parametrize('critic_reward', ['sparse', 'shaped'])
def test_actor_logs_episodes_and_inserts_converter_transitions(tmp_path, critic_reward):
  server = replay.ReplayServer(replay.ReplayConfig(max_size=1000, min_size=1), 'state',
                               burst=10)
  try:
    config = actors_lib.ActorConfig(episode_steps=10, n_step=3, seed=7, method='test',
                                    run_id='r', critic_reward=critic_reward)
    actor = actors_lib.Actor(config, _FixedPolicy(), str(tmp_path / 'log'),
                             replay.TransitionWriter(server.address, 5000))
    results = [actor.run_episode(0) for _ in range(2)]
    actor.close()
    assert [r.steps for r in results] == [10, 10] and [r.items for r in results] == [10, 10]
    assert results[0].seed == actors_lib.student_episode_seed('triplet1', 7, 0)
    assert server.size() == 20
    # The logged RLDS episodes give, through the shared converter, the same
    # transitions the actor inserted (compared as sets of actions + rewards).
    builder = episode_log.student_builder(str(tmp_path / 'log'))
    episodes = builder.as_dataset(split='train')
    logged = list(transitions_lib.transitions(episodes, n_step=3, critic_reward=critic_reward)
                  .as_numpy_iterator())
    assert len(logged) == 20
    sampled = next(replay.numpy_batches(server.address, 64, 5000))
    logged_keys = {(tuple(np.round(t['action'], 6)), round(float(t['reward']), 6),
                    round(float(t['discount']), 6)) for t in logged}
    for a, r, d in zip(sampled['action'], sampled['reward'], sampled['discount']):
      assert (tuple(np.round(a, 6)), round(float(r), 6), round(float(d), 6)) in logged_keys
    # Ten steps never stack: only the shaped reward's reach term is above 0.
    assert (min(sampled['reward']) > 0) == (critic_reward == 'shaped')
  finally:
    server.stop()
