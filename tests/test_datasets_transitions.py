"""Property tests of the RLDS -> n-step transition converter (off-by-one traps)."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import relabel
from pipelines import transitions


def _episode(rng, num_steps, terminal, logged_terminal_discount=0.0):
  """Synthetic RLDS steps, aligned as envlogger writes them."""
  reward = rng.normal(size=num_steps).astype(np.float32)
  discount = rng.choice([1.0, 1.0, 0.5], size=num_steps).astype(np.float32)
  reward[-1], discount[-1] = 0.0, 0.0  # the final step's placeholders
  if terminal and num_steps > 1:
    discount[-2] = logged_terminal_discount
  is_terminal = np.zeros(num_steps, bool)
  is_terminal[-1] = terminal
  obs = np.arange(num_steps, dtype=np.float32)[:, None] * np.ones(3, np.float32)
  return dict(
      observation={'proprio': obs},
      action=rng.normal(size=(num_steps, 5)).astype(np.float32),
      reward=reward, discount=discount,
      is_first=np.arange(num_steps) == 0,
      is_last=np.arange(num_steps) == num_steps - 1,
      is_terminal=is_terminal)


def _reference(steps, n, gamma):
  """Textbook n-step returns, one transition at a time."""
  num = len(steps['reward']) - 1
  out = []
  for t in range(num):
    ret, coef, k = 0.0, 1.0, 0
    while k < n and t + k < num:
      ret += coef * steps['reward'][t + k]
      d = steps['discount'][t + k]
      if steps['is_terminal'][t + k + 1]:
        d = 0.0  # termination wins over whatever was logged
      coef *= gamma * d
      k += 1
    out.append((ret, coef, t + k))
  return out


@pytest.mark.parametrize('seed', range(30))
def test_matches_reference(seed):
  rng = np.random.default_rng(seed)
  num_steps = int(rng.integers(1, 9))
  n = int(rng.integers(1, 6))
  gamma = float(rng.choice([1.0, 0.9, 0.5]))
  terminal = bool(rng.integers(2))
  steps = _episode(rng, num_steps, terminal,
                   logged_terminal_discount=float(rng.choice([0.0, 1.0])))
  got = transitions.episode_transitions(
      tf.nest.map_structure(tf.constant, steps), n, gamma)
  want = _reference(steps, n, gamma)
  assert got['reward'].shape[0] == num_steps - 1
  for t, (ret, disc, nxt) in enumerate(want):
    np.testing.assert_allclose(got['reward'][t], ret, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got['discount'][t], disc, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got['next_observation']['proprio'][t],
                                  steps['observation']['proprio'][nxt])
    np.testing.assert_array_equal(got['observation']['proprio'][t],
                                  steps['observation']['proprio'][t])
    np.testing.assert_array_equal(got['action'][t], steps['action'][t])


def test_termination_wins_over_truncation():
  rng = np.random.default_rng(0)
  steps = _episode(rng, 4, terminal=True, logged_terminal_discount=1.0)
  got = transitions.episode_transitions(
      tf.nest.map_structure(tf.constant, steps), 1, 0.9)
  assert float(got['discount'][-1]) == 0.0
  assert float(got['discount'][0]) > 0.0


def test_truncated_episode_bootstraps_from_final_observation():
  rng = np.random.default_rng(1)
  steps = _episode(rng, 5, terminal=False)
  steps['discount'][:-1] = 1.0
  got = transitions.episode_transitions(
      tf.nest.map_structure(tf.constant, steps), 3, 0.5)
  # Last transition: one reward left, bootstrap gamma^1 from the final obs.
  np.testing.assert_allclose(got['discount'][-1], 0.5)
  np.testing.assert_array_equal(got['next_observation']['proprio'][-1],
                                steps['observation']['proprio'][-1])
  np.testing.assert_allclose(got['discount'][0], 0.125)


def test_dataset_of_episodes_keeps_order_and_count():
  rng = np.random.default_rng(2)
  lengths = [1, 2, 7, 3]
  episodes = []
  for i, length in enumerate(lengths):
    steps = _episode(rng, length, terminal=False)
    steps['observation']['proprio'] += 100 * i
    episodes.append(steps)
  def gen():
    for steps in episodes:
      yield steps
  signature = tf.nest.map_structure(
      lambda x: tf.TensorSpec((None,) + x.shape[1:], tf.as_dtype(x.dtype)),
      episodes[0])
  steps_ds = tf.data.Dataset.from_generator(gen, output_signature=signature)
  episodes_ds = steps_ds.map(
      lambda s: {'steps': tf.data.Dataset.from_tensor_slices(s)})
  out = list(transitions.transitions(episodes_ds, n_step=2, gamma=0.9))
  assert len(out) == sum(l - 1 for l in lengths)
  firsts = [float(x['observation']['proprio'][0]) for x in out]
  assert firsts == sorted(firsts)


def _stacking_episode():
  """Four logged observations of red (start z 0.05) lifted over blue, then stacked."""
  def obs(tcp, red, blue=(0.7, 0.0, 0.04)):
    poses = np.zeros(21, np.float32)
    poses[0:3], poses[14:17] = red, blue
    proprio = np.zeros(10, np.float32)
    proprio[0:3] = tcp
    return proprio, poses
  rows = [obs((0.6, 0.0, 0.25), (0.6, 0.0, 0.05)),   # start
          obs((0.6, 0.0, 0.05), (0.6, 0.0, 0.05)),   # at red, not lifted
          obs((0.6, 0.0, 0.14), (0.6, 0.0, 0.13)),   # red held 8 cm up, 1 cm below the gripper
          obs((0.7, 0.0, 0.14), (0.7, 0.0, 0.09))]   # stacked: the sparse reward says so
  return dict(observation={'proprio': np.stack([r[0] for r in rows]),
                           'object_poses': np.stack([r[1] for r in rows])},
              action=np.zeros((4, 5), np.float32),
              reward=np.array([0.0, 0.0, 1.0, 0.0], np.float32),
              discount=np.ones(4, np.float32),
              is_first=np.arange(4) == 0, is_last=np.arange(4) == 3,
              is_terminal=np.zeros(4, bool))


def test_shaped_critic_reward_known_answers():
  steps = tf.nest.map_structure(tf.constant, _stacking_episode())
  got = relabel.shaped_rewards(steps).numpy()
  # r_0 from observation 1: reach = 1 - tanh(0) = 1, nothing lifted.
  # r_1 from observation 2: reach 1 - tanh(0.1), lifted, lift min(1, 0.09 / 0.08),
  #   place 1 - tanh(10 * 0.1) over the 10 cm left to blue.
  want_1 = 0.2 * (1 - np.tanh(0.1)) + 0.2 + 0.2 + 0.3 * (1 - np.tanh(1.0))
  np.testing.assert_allclose(got, [0.2, want_1, 1.0, 0.0], rtol=1e-5)
  items = transitions.episode_transitions(steps, 2, 0.5, 'shaped')
  np.testing.assert_allclose(items['reward'], [0.2 + 0.5 * want_1, want_1 + 0.5, 1.0],
                             rtol=1e-5)
  sparse = transitions.episode_transitions(steps, 2, 0.5)
  np.testing.assert_allclose(sparse['reward'], [0.0, 0.5, 1.0])


def test_unknown_critic_reward_is_refused():
  steps = tf.nest.map_structure(tf.constant, _stacking_episode())
  with pytest.raises(ValueError, match="critic_reward 'dense'; valid: sparse, shaped"):
    transitions.episode_transitions(steps, 1, 0.99, 'dense')
