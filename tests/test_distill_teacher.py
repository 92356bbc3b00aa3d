"""Teacher distillation: deterministic tiny runs, train objects only, bad recipes refused."""

import json
import os

import numpy as np
import pytest

import envs
from envs import teachers
from envs import triplets as triplets_lib
from learners.training import distill_teacher
from learners.training import teacher_recipe


def _tiny(teacher='mastery', **overrides):
  return teacher_recipe.recipe(
      teacher, rounds=2, episodes_per_round=3, episode_steps=15, num_envs=2,
      grad_steps_per_round=30, batch_size=16, torso=(16,), validation_episodes=2, **overrides)


def test_same_seed_same_teacher_weights(tmp_path):
  first = distill_teacher.distill(_tiny(), str(tmp_path / 'a'))
  second = distill_teacher.distill(_tiny(), str(tmp_path / 'b'))
  other = distill_teacher.distill(_tiny(seed=1), str(tmp_path / 'c'))
  assert first['weights_sha256'] == second['weights_sha256'] != other['weights_sha256']
  assert [r['actor'] for r in first['rounds']] == ['oracle', 'network']
  assert first['rounds'][1]['states'] == 2 * 3 * 15  # Aggregated over both rounds.
  card = json.loads((tmp_path / 'a' / teachers.CARD_FILE).read_text())
  assert card['weights_sha256'] == first['weights_sha256']
  assert not os.path.exists(str(tmp_path / 'a') + '.partial')
  # The exported model is a teacher like any other, and it is the trained network.
  a, b = (envs.make_teacher(str(tmp_path / x)) for x in 'ab')
  obs = {'proprio': np.linspace(-1, 1, 10, dtype=np.float32),
         'object_poses': np.linspace(0, 1, 21, dtype=np.float32)}
  np.testing.assert_array_equal(a.distribution(obs).mean, b.distribution(obs).mean)
  np.testing.assert_allclose(a.distribution(obs).stddev, 0.15)


def test_generalization_trains_on_train_objects_only():
  test_objects = set()
  for name in triplets_lib.TRIPLET_NAMES:
    test_objects |= set(triplets_lib.get_triplet(name).ids)
  recipe = teacher_recipe.recipe('generalization')
  assert len(recipe.triplets) == teacher_recipe.GENERALIZATION_TRAIN_TRIPLETS
  for triplet in recipe.triplets:
    ids = set(triplets_lib.get_triplet(triplet).ids)
    assert len(ids) == 3 and not ids & test_objects, triplet
  assert teacher_recipe.recipe('generalization').triplets == recipe.triplets  # Seeded.
  assert teacher_recipe.recipe('mastery').triplets == triplets_lib.TRIPLET_NAMES
  with pytest.raises(ValueError, match='mastery, generalization'):
    teacher_recipe.recipe('oracle')


def test_bad_recipes_are_refused_before_any_work(tmp_path, capsys):
  for bad, message in ((dict(rounds=0), 'rounds must be >= 1'),
                       (dict(oracle_share=1.5), r'oracle_share must be in \[0, 1\]'),
                       (dict(torso=()), 'torso must be'),
                       (dict(learning_rate=0.0), 'learning_rate must be > 0')):
    with pytest.raises(ValueError, match=message):
      teacher_recipe.recipe('mastery', **bad)
  with pytest.raises(ValueError, match='num_train_triplets must be >= 1'):
    teacher_recipe.recipe('generalization', num_train_triplets=0)
  output = tmp_path / 'teacher'
  for argv, message in ((['--torso', '256,x'], '--torso takes comma-separated'),
                        (['--episodes_per_round', '0'], 'episodes_per_round must be >= 1'),
                        (['--eval_episodes', '-1'], '--eval_episodes must be >= 0')):
    with pytest.raises(SystemExit) as exit_info:
      distill_teacher.main(['--teacher', 'mastery', '--output', str(output)] + argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
  assert not output.exists()  # Nothing written.
