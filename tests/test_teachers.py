"""Teachers: Markov property, batching, success bands, SavedModel loading and errors, eval CLI."""

import json
import os

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


@pytest.mark.parametrize('name', ['generalization', 'scripted-generalization'])
def test_teacher_is_markov(logged_steps, name):
  teacher = envs.make_teacher(name, 'triplet1')
  # Query in reverse order, then forward: no hidden state may change the answer.
  backward = [teacher.distribution(o) for o in logged_steps[::-1]][::-1]
  forward = [teacher.distribution(o) for o in logged_steps]
  for a, b in zip(forward, backward):
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.stddev, b.stddev)
  # A fresh teacher object gives the same distribution too.
  again = envs.make_teacher(name, 'triplet1').distribution(logged_steps[30])
  np.testing.assert_array_equal(again.mean, forward[30].mean)


@pytest.mark.parametrize('name', ['mastery', 'scripted-mastery'])
def test_batched_relabel_equals_one_by_one(logged_steps, name):
  teacher = envs.make_teacher(name, 'triplet1')
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
  # Triplet 3 is where the generalization gap shows (docs/teachers.md: 68.0 %
  # vs 21.5 % over 200 episodes); 24 episodes each, wide bands (binomial sd ~10 %).
  mastery = _success('mastery', 'triplet3', 24)
  generalization = _success('generalization', 'triplet3', 24)
  assert 0.4 <= mastery <= 0.95, mastery
  assert 0.02 <= generalization <= 0.5, generalization
  assert mastery > generalization + 0.2


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason='issue 17: the shipped models miss the Table I regime in '
                   '5 of 10 cells (docs/teachers.md); passes once they are recalibrated')
def test_teacher_table_in_paper_regime():
  """The issue's bands: mastery 50-90 %, generalization 30-50 % (1-3) and 75-95 % (4-5)."""
  cells = {(c['teacher'], c['triplet']): c['success_rate']
           for c in evaluate.evaluate(['mastery', 'generalization'], list(envs.TRIPLET_NAMES),
                                      200, workers=2)}
  for t in envs.TRIPLET_NAMES:
    assert 0.5 <= cells[('mastery', t)] <= 0.9, (t, cells)
  for t in ('triplet1', 'triplet2', 'triplet3'):
    assert 0.3 <= cells[('generalization', t)] <= 0.5, (t, cells)
  for t in ('triplet4', 'triplet5'):
    assert 0.75 <= cells[('generalization', t)] <= 0.95, (t, cells)


def _save_policy(path, proprio_dim=10, mean_dim=5):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  class Policy(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None, proprio_dim], tf.float32),
                                  tf.TensorSpec([None, 21], tf.float32)])
    def distribution(self, proprio, object_poses):
      mean = tf.tanh(object_poses[:, :mean_dim] - proprio[:, :mean_dim])
      return mean, 0.1 * tf.ones_like(mean)

  tf.saved_model.save(Policy(), str(path))
  return str(path)


def test_savedmodel_signature_mismatch_names_the_input_or_output(tmp_path):
  with pytest.raises(ValueError, match=r'does not accept the inputs \(proprio: float32 '):
    envs.make_teacher(_save_policy(tmp_path / 'wide', proprio_dim=12))
  with pytest.raises(ValueError, match=r'output `mean` has shape \(2, 4\)'):
    envs.make_teacher(_save_policy(tmp_path / 'short', mean_dim=4))


def test_missing_shipped_teacher_names_path_and_rebuild_command(tmp_path, monkeypatch):
  from envs import teachers  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(teachers, '_MODELS_DIR', str(tmp_path))
  with pytest.raises(ValueError) as e:
    envs.make_teacher('generalization')
  assert str(tmp_path / 'generalization') in str(e.value)
  assert 'python -m learners.training.distill_teacher --teacher generalization' in str(e.value)
  (tmp_path / 'mastery').mkdir()  # A directory that is not a SavedModel.
  with pytest.raises(ValueError, match='Could not load .* Rebuild it with: python -m'):
    envs.make_teacher('mastery')


def test_shipped_teachers_have_cards():
  from envs import teachers  # pylint: disable=g-import-not-at-top
  for name in teachers.NEURAL_TEACHERS:
    path = teachers.shipped_model_path(name)
    card = json.loads(open(os.path.join(path, teachers.CARD_FILE)).read())
    assert card['teacher'] == name and card['oracle'] == teachers.ORACLE
    assert card['command'].startswith(teachers.rebuild_command(name))
    assert len(card['weights_sha256']) == 64
    assert sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path)
               for f in fs) < 5e6  # A few MB at most.
    assert sorted(card['test_success']) == list(envs.TRIPLET_NAMES)
    assert {c['episodes'] for c in card['test_success'].values()} == {200}
  from learners.study import results  # pylint: disable=g-import-not-at-top
  cells = results.shipped_teacher_cells()  # What a study report shows as Table I.
  assert {(c['teacher'], c['triplet']) for c in cells} == {
      (t, s) for t in teachers.NEURAL_TEACHERS for s in envs.TRIPLET_NAMES}


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


def _benchmark(name):
  import importlib.util  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      'benchmarks', f'{name}.py')
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_action_noise_benchmark_pairs_noisy_teachers_with_the_evaluated_one(logged_steps):
  bench = _benchmark('action_noise')
  teacher = envs.make_teacher('scripted-generalization', 'triplet1')
  noisy = bench.FixedNoise(teacher, 0.05).distribution(logged_steps[3])
  np.testing.assert_array_equal(noisy.mean, teacher.distribution(logged_steps[3]).mean)
  np.testing.assert_array_equal(noisy.stddev, np.full_like(noisy.mean, 0.05))
  # Every stddev scales the episode's same standard-normal draws.
  draws = np.random.default_rng([7, 1]).standard_normal(noisy.mean.shape)
  np.testing.assert_allclose(action_of(noisy, 'stochastic', np.random.default_rng([7, 1])),
                             np.clip(noisy.mean + 0.05 * draws, -1, 1), rtol=1e-6)
  rows = bench.measure('scripted-generalization', 'triplet1', [0.5], episodes=3,
                       episode_steps=150, chunk=2)
  assert [r['stddev'] for r in rows] == [0.0, 0.5]  # 0 added: the pairing's reference.
  # Stddev 0 is exactly the evaluation every student is compared with.
  cell, = evaluate.evaluate(['scripted-generalization'], ['triplet1'], 3, episode_steps=150)
  assert (rows[0]['successes'], rows[0]['mean_return']) == (
      cell['successes'], round(cell['mean_return'], 3))
  # Per-start outcomes, in start order, for paired comparisons with students.
  assert len(cell['outcomes']) == 3 and cell['outcomes'].count('1') == cell['successes']
  assert rows[0]['paired_with_stddev_0']['noisy_only'] == 0
  assert rows[0]['paired_with_stddev_0']['noise_free_only'] == 0
  assert sum(rows[1]['paired_with_stddev_0'].values()) == 3
  assert rows[1]['mean_return'] != rows[0]['mean_return']  # The noise reached the env.
  with pytest.raises(ValueError, match='>= 0'):
    bench.measure('scripted-generalization', 'triplet1', [-0.1], episodes=1)


def test_branch_rollouts_replay_the_teachers_own_episode(capsys):
  bench = _benchmark('branch_rollouts')
  env = envs.make_env('triplet1', episode_steps=60)
  teacher = envs.make_teacher('scripted-generalization', 'triplet1')
  seed = rollout.episode_seed('triplet1', 'scripted-generalization', 0)
  original = rollout.rollout(env, teacher, 'stochastic', seed)
  final = original.timesteps[-1].observation['object_poses']
  # Its whole prefix replayed is the collected episode, to the last contact.
  assert bench.branch(env, teacher, seed, original.actions, k=0) == original.success
  np.testing.assert_array_equal(env._observation()['object_poses'], final)  # pylint: disable=protected-access
  # From step 30 on, fresh noise: the same first 30 steps, then another episode.
  bench.branch(env, teacher, seed, original.actions[:30], k=1)
  assert not np.array_equal(env._observation()['object_poses'], final)  # pylint: disable=protected-access
  assert bench.main(['--triplet', 'triplet1', '--teacher', 'scripted-generalization',
                     '--episodes', '1', '--branch_steps', '0', '--continuations', '1']) == 0
  row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert (row['branch_step'], row['originals'], row['continuations']) == (0, 1, 1)
