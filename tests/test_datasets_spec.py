"""The shared RLDS spec: names, metadata, and teacher/student step alignment."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

import envs
from envs import rollout as rollout_lib
from pipelines import build_teacher_datasets
from pipelines import episode_log
from pipelines import rlds_spec
from pipelines import teacher_config


def test_config_names_round_trip():
  for name in ['triplet1_generalization_state_5000',
               'triplet5_mastery_vision_1234_deterministic_steps20_img32']:
    cfg = teacher_config.TeacherConfig(name=name)
    assert teacher_config.make_config(
        cfg.triplet, cfg.teacher, cfg.obs_mode, cfg.size, cfg.policy_mode,
        cfg.episode_steps, cfg.image_size).name == name
  cfg = teacher_config.TeacherConfig(name='triplet1_mastery_state_8_steps20')
  assert (cfg.size, cfg.episode_steps, cfg.group) == (
      8, 20, 'triplet1_mastery_state_steps20')
  with pytest.raises(ValueError, match='e.g. triplet1_generalization'):
    teacher_config.TeacherConfig(name='triplet1_state_5000')


def test_standard_configs_cover_paper_sizes():
  names = {c.name for c in teacher_config.standard_configs()}
  for size in teacher_config.PAPER_SIZES:
    assert f'triplet3_generalization_state_{size}' in names
    assert f'triplet3_mastery_vision_{size}' in names


def test_shard_boundaries_include_every_size():
  cuts = build_teacher_datasets.shard_boundaries([1000, 1234, 5000], 500)
  ends = [end for _, end in cuts]
  assert {1000, 1234, 5000} <= set(ends)
  assert all(e - s <= 500 for s, e in cuts)
  assert cuts[0][0] == 0 and all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))


def test_metadata_defaults_and_validation():
  meta = rlds_spec.episode_metadata(
      triplet='triplet1', policy='mastery', teacher='mastery',
      policy_mode='stochastic', episode_seed=3, episode_index=0,
      success=True, episode_return=2.0)
  assert (meta['learner_step'], meta['method'], meta['run_id']) == (-1, '', '')
  with pytest.raises(ValueError, match='required'):
    rlds_spec.episode_metadata(triplet='triplet1')
  with pytest.raises(ValueError, match='Unknown'):
    rlds_spec.episode_metadata(bogus=1)


def test_vision_images_are_png_encoded():
  obs = rlds_spec.features('vision')['steps'].feature['observation']
  assert isinstance(obs['camera_left'], tfds.features.Image)
  assert obs['camera_left'].encoding_format == 'png'


def test_teacher_steps_align_with_envlogger_steps(tmp_path):
  """A teacher rollout converted by rlds_steps == the same episode via envlogger."""
  env = envs.make_env('triplet1', 'state', episode_steps=12)
  policy = envs.make_teacher('mastery', 'triplet1')
  seed = rollout_lib.episode_seed('triplet1', 'mastery', 0)
  traj = rollout_lib.rollout(env, policy, 'deterministic', seed)
  steps = episode_log.rlds_steps(traj.timesteps, traj.actions)

  with episode_log.StudentEpisodeLog(env, str(tmp_path), obs_mode='state',
                                     triplet='triplet1', method='bc',
                                     run_id='t') as log:
    ts = log.reset(episode_seed=seed, learner_step=0,
                   policy_mode='deterministic')
    rng = np.random.default_rng(0)
    while not ts.last():
      ts = log.step(envs.policy.action_of(policy.distribution(ts.observation),
                                          'deterministic', rng))
  builder = episode_log.student_builder(str(tmp_path))
  (episode,) = tfds.as_numpy(builder.as_dataset(split='train'))
  logged = list(episode['steps'])
  assert len(logged) == len(steps) == 13
  for mine, theirs in zip(steps, logged):
    for key in ('action', 'reward', 'discount', 'is_first', 'is_last',
                'is_terminal'):
      np.testing.assert_array_equal(np.asarray(mine[key]), theirs[key])
    for key, value in mine['observation'].items():
      np.testing.assert_array_equal(value, theirs['observation'][key])
  assert logged[-1]['is_last'] and not logged[-2]['is_last']
  assert bool(episode['success']) == traj.success
  np.testing.assert_allclose(episode['episode_return'], traj.episode_return)
