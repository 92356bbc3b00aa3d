"""Teachers: Markov property, batching, success bands, SavedModel loading, evaluation CLI."""

import json

import numpy as np
import pytest

import envs
from envs import evaluate
from envs import rollout
from envs.policy import GaussianAction, action_of


@pytest.fixture(scope='module')
def logged_steps():
  """Observations from a real teacher episode, as a dataset would store them."""
  env = envs.make_env('triplet1', episode_steps=120)
  teacher = envs.make_teacher('mastery', 'triplet1')
  traj = rollout.rollout(env, teacher, 'stochastic', seed=7)
  env.close()
  return [t.observation for t in traj.timesteps]


def test_teacher_is_markov(logged_steps):
  teacher = envs.make_teacher('generalization', 'triplet1')
  # Query in reverse order, then forward: no hidden state may change the answer.
  backward = [teacher.distribution(o) for o in logged_steps[::-1]][::-1]
  forward = [teacher.distribution(o) for o in logged_steps]
  for a, b in zip(forward, backward):
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.stddev, b.stddev)
  # A fresh teacher object gives the same distribution too.
  again = envs.make_teacher('generalization', 'triplet1').distribution(logged_steps[30])
  np.testing.assert_array_equal(again.mean, forward[30].mean)


def test_batched_relabel_equals_one_by_one(logged_steps):
  teacher = envs.make_teacher('mastery', 'triplet1')
  batch = {k: np.stack([o[k] for o in logged_steps]) for k in ('proprio', 'object_poses')}
  dist = teacher.distribution(batch)
  assert dist.mean.shape == (len(logged_steps), 5) and dist.mean.dtype == np.float32
  for i in (0, 17, 60, len(logged_steps) - 1):
    np.testing.assert_allclose(dist.mean[i], teacher.distribution(logged_steps[i]).mean,
                               rtol=0, atol=1e-6)
  assert np.all(np.abs(dist.mean) <= 1.0) and np.all(dist.stddev > 0)


def test_gaussian_action_modes():
  dist = GaussianAction(np.array([0.5, 2.0, -3.0, 0, 0], np.float32),
                        np.full(5, 0.1, np.float32))
  np.testing.assert_array_equal(action_of(dist, 'deterministic', None), [0.5, 1, -1, 0, 0])
  rng = np.random.default_rng(0)
  samples = np.stack([action_of(dist, 'stochastic', rng) for _ in range(2000)])
  assert abs(samples[:, 0].mean() - 0.5) < 0.01 and abs(samples[:, 0].std() - 0.1) < 0.01
  with pytest.raises(ValueError, match='deterministic, stochastic'):
    action_of(dist, 'greedy', rng)


def test_stochastic_rollouts_are_reproducible():
  env = envs.make_env('triplet5', episode_steps=30)
  teacher = envs.make_teacher('generalization', 'triplet5')
  a = rollout.rollout(env, teacher, 'stochastic', seed=3)
  b = rollout.rollout(env, teacher, 'stochastic', seed=3)
  np.testing.assert_array_equal(np.stack(a.actions), np.stack(b.actions))
  assert rollout.episode_seed('triplet1', 'mastery', 5) == rollout.episode_seed(
      'triplet1', 'mastery', 5) != rollout.episode_seed('triplet1', 'mastery', 6)


def _success(teacher_name, triplet, n):
  cells = evaluate.evaluate([teacher_name], [triplet], n)
  return cells[0]['success_rate']


def test_teachers_are_good_but_not_perfect():
  # 24 episodes each: wide bands around the Table I regime (binomial sd ~10%).
  mastery = _success('mastery', 'triplet1', 24)
  generalization = _success('generalization', 'triplet1', 24)
  assert 0.45 <= mastery <= 0.97, mastery
  assert 0.10 <= generalization <= 0.65, generalization
  assert mastery > generalization


@pytest.mark.slow
def test_teacher_table_in_paper_regime():
  cells = {(c['teacher'], c['triplet']): c['success_rate']
           for c in evaluate.evaluate(['mastery', 'generalization'], list(envs.TRIPLET_NAMES),
                                      100, workers=2)}
  for t in envs.TRIPLET_NAMES:
    assert 0.4 <= cells[('mastery', t)] <= 0.95, (t, cells)
  for t in ('triplet1', 'triplet2', 'triplet3'):
    assert 0.2 <= cells[('generalization', t)] <= 0.6, (t, cells)
    assert cells[('generalization', t)] < cells[('mastery', t)] + 0.05
  for t in ('triplet4', 'triplet5'):
    assert 0.65 <= cells[('generalization', t)] <= 0.98, (t, cells)


def test_savedmodel_teacher(tmp_path, logged_steps):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  class Linear(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None, 10], tf.float32),
                                  tf.TensorSpec([None, 21], tf.float32)])
    def distribution(self, proprio, object_poses):
      mean = tf.tanh(object_poses[:, :5] - proprio[:, :5])
      return mean, 0.1 * tf.ones_like(mean)

  tf.saved_model.save(Linear(), str(tmp_path / 'teacher'))
  teacher = envs.make_teacher(str(tmp_path / 'teacher'))
  obs = logged_steps[5]
  dist = teacher.distribution(obs)
  expected = np.tanh(obs['object_poses'][:5] - obs['proprio'][:5])
  np.testing.assert_allclose(dist.mean, expected, atol=1e-6)
  with pytest.raises(ValueError, match='mastery, generalization'):
    envs.make_teacher(str(tmp_path / 'missing'))
  with pytest.raises(ValueError, match='mastery, generalization'):
    envs.make_teacher('expert')


def test_wilson_interval_known_values():
  lo, hi = evaluate.wilson_interval(50, 100)
  assert abs(lo - 0.4038) < 1e-3 and abs(hi - 0.5962) < 1e-3
  assert evaluate.wilson_interval(0, 10)[0] == 0.0


def test_evaluate_cli_writes_json(tmp_path, capsys):
  out = tmp_path / 'eval.json'
  rc = evaluate.main(['--teacher', 'mastery', '--triplet', 'triplet4', '--episodes', '2',
                      '--episode_steps', '20', '--output', str(out),
                      '--video', str(tmp_path / 'v.gif'), '--video_episodes', '1'])
  assert rc == 0
  result = json.loads(out.read_text())
  cell = result['cells'][0]
  assert cell['episodes'] == 2 and 0 <= cell['success_rate'] <= 1 and len(cell['ci95']) == 2
  assert (tmp_path / 'v.gif').stat().st_size > 1000
  assert evaluate.main(['--teacher', 'nobody', '--episodes', '1']) == 2
  assert 'valid choices' in capsys.readouterr().err
