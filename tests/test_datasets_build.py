"""Teacher datasets built for real with Beam, both ways, and read back."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import envs
from pipelines import build_teacher_datasets
from pipelines import episode_log
from pipelines import rlds_spec
from pipelines import teacher_config
from pipelines import teacher_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDER_DIR = os.path.join(REPO, 'datasets', 'rgb_stacking_teacher')
SMALL, LARGE = ('triplet1_mastery_state_4_steps20',
                'triplet1_mastery_state_8_steps20')
BEAM_LOCAL = ('runner=FnApiRunner,direct_running_mode=multi_processing,'
              'direct_num_workers=2,pickle_library=cloudpickle')


def _run(cmd, **kwargs):
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                        cwd=REPO, **kwargs)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  """Sizes 4 and 8 in one Beam job, and size 4 again with the tfds CLI."""
  job_dir = str(tmp_path_factory.mktemp('job'))
  cli_dir = str(tmp_path_factory.mktemp('cli'))
  _run([sys.executable, '-m', 'pipelines.build_teacher_datasets',
        '--triplets', 'triplet1', '--teachers', 'mastery', '--obs', 'state',
        '--sizes', '4,8', '--episode_steps', '20', '--data_dir', job_dir,
        '--num_workers', '2'])
  tfds_cli = os.path.join(os.path.dirname(sys.executable), 'tfds')
  _run([tfds_cli, 'build', BUILDER_DIR, '--config', json.dumps({'name': SMALL}),
        '--data_dir', cli_dir, f'--beam_pipeline_options={BEAM_LOCAL}'])
  return job_dir, cli_dir


def _vdir(data_dir, name):
  return teacher_dataset.version_dir(
      data_dir, teacher_config.TeacherConfig(name=name))


def _shards(vdir):
  return [os.path.join(vdir, f) for f in teacher_dataset.shard_files(vdir)]


def _assert_same_episodes(a, b):
  a, b = list(tfds.as_numpy(a)), list(tfds.as_numpy(b))
  assert len(a) == len(b)
  for ea, eb in zip(a, b):
    sa, sb = list(ea.pop('steps')), list(eb.pop('steps'))
    assert ea == eb
    assert len(sa) == len(sb)
    for x, y in zip(sa, sb):
      tf.nest.map_structure(np.testing.assert_array_equal, x, y)


def test_nested_sizes_are_identical_prefixes(built):
  job_dir, cli_dir = built
  small = teacher_dataset.load_teacher_dataset(SMALL, job_dir)
  large_prefix = teacher_dataset.load_teacher_dataset(LARGE, job_dir,
                                                      split='train[:4]')
  _assert_same_episodes(small, large_prefix)
  indices = [int(e['episode_index']) for e in tfds.as_numpy(
      teacher_dataset.load_teacher_dataset(LARGE, job_dir))]
  assert indices == list(range(8))
  # Bit for bit: the small dataset's shard *is* the large one's first shard,
  # and the tfds CLI build of the same config wrote the same bytes.
  small_shard, = _shards(_vdir(job_dir, SMALL))
  first_large = _shards(_vdir(job_dir, LARGE))[0]
  assert os.stat(small_shard).st_ino == os.stat(first_large).st_ino
  cli_shard, = _shards(_vdir(cli_dir, SMALL))
  with open(small_shard, 'rb') as f1, open(cli_shard, 'rb') as f2:
    assert f1.read() == f2.read()


def test_storage_of_all_sizes_is_about_the_largest(built):
  """Shards are shared; each extra size costs only ~12 KB of metadata."""
  job_dir, _ = built
  seen, shard_bytes, meta_bytes = set(), 0, 0
  for root, _, files in os.walk(os.path.join(job_dir, rlds_spec.DATASET_NAME)):
    for name in files:
      st = os.stat(os.path.join(root, name))
      if st.st_ino in seen:
        continue
      seen.add(st.st_ino)
      if '.tfrecord-' in name:
        shard_bytes += st.st_size
      else:
        meta_bytes += st.st_size
  largest_shards = sum(os.path.getsize(p)
                       for p in _shards(_vdir(job_dir, LARGE)))
  assert shard_bytes == largest_shards
  assert meta_bytes < 2 * 16_000


def test_loads_by_name_after_importing_builder(built):
  job_dir, _ = built
  sys.path.insert(0, BUILDER_DIR)
  try:
    import rgb_stacking_teacher_dataset_builder as builder_module  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.remove(BUILDER_DIR)
  assert builder_module.Builder.name == rlds_spec.DATASET_NAME
  ds = tfds.load(f'{rlds_spec.DATASET_NAME}/{LARGE}', data_dir=job_dir,
                 split='train')
  assert len(list(ds)) == 8


def test_loads_from_directory_without_project_code(built):
  job_dir, _ = built
  script = ('import sys, tensorflow_datasets as tfds\n'
            f'b = tfds.builder_from_directory({_vdir(job_dir, LARGE)!r})\n'
            'n = sum(1 for _ in b.as_dataset(split="train"))\n'
            'assert not {"envs", "pipelines"} & set(sys.modules), "imported"\n'
            'print(n, b.info.version)\n')
  out = _run([sys.executable, '-c', script], env=dict(os.environ)).stdout
  assert out.split()[-2:] == ['8', rlds_spec.VERSION]


def test_data_card(built):
  job_dir, cli_dir = built
  for data_dir, name in [(job_dir, LARGE), (cli_dir, SMALL)]:
    builder = teacher_dataset.teacher_builder(name, data_dir)
    card = builder.info.metadata
    episodes = list(tfds.as_numpy(builder.as_dataset(split='train')))
    assert card['teacher'] == 'mastery' and card['triplet'] == 'triplet1'
    assert card['size'] == len(episodes)
    assert card['env_version']
    np.testing.assert_allclose(card['success_rate'],
                               np.mean([e['success'] for e in episodes]))
    np.testing.assert_allclose(card['mean_return'],
                               np.mean([e['episode_return'] for e in episodes]),
                               rtol=1e-5)
    for word in ('teacher: mastery', 'triplet: triplet1', 'success rate',
                 'mean return', 'env version', f'size: {len(episodes)}'):
      assert word in builder.info.description
    assert dict(builder.info.as_proto.release_notes) == rlds_spec.RELEASE_NOTES
  assert os.path.exists(os.path.join(BUILDER_DIR, 'README.md'))


def test_merged_read_with_logged_student_episodes(built, tmp_path):
  job_dir, _ = built
  env = envs.make_env('triplet1', 'state', episode_steps=20)
  rng = np.random.default_rng(0)
  with episode_log.StudentEpisodeLog(env, str(tmp_path), obs_mode='state',
                                     triplet='triplet1', method='dagger',
                                     run_id='m', teacher='mastery') as log:
    for e in range(2):
      ts = log.reset(episode_seed=e, learner_step=e, policy_mode='stochastic')
      while not ts.last():
        ts = log.step(rng.uniform(-1, 1, 5))
  teacher_vdir = _vdir(job_dir, LARGE)
  student_dirs = episode_log.recover_segments(str(tmp_path))
  teacher_info = tfds.builder_from_directory(teacher_vdir).info
  student_info = tfds.builder_from_directory(student_dirs[0]).info
  assert teacher_info.features.to_json() == student_info.features.to_json()
  merged = tfds.builder_from_directories([teacher_vdir] + student_dirs)
  episodes = list(tfds.as_numpy(merged.as_dataset(split='train')))
  assert len(episodes) == 10
  assert sorted(e['policy'] for e in episodes).count(b'student') == 2
  assert all(len(list(e['steps'])) == 21 for e in episodes)


def _copy_dataset(job_dir, tmp_path, name):
  data_dir = str(tmp_path)
  src, dst = _vdir(job_dir, name), _vdir(data_dir, name)
  shutil.copytree(src, dst)
  return data_dir, dst


def test_truncated_and_corrupted_shards_are_named(built, tmp_path):
  job_dir, _ = built
  data_dir, vdir = _copy_dataset(job_dir, tmp_path, LARGE)
  shard = _shards(vdir)[1]
  with open(shard, 'r+b') as f:
    data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    f.seek(0)
    f.write(data)
  teacher_dataset.check_teacher_dataset(LARGE, data_dir)  # same size: passes
  with pytest.raises(teacher_dataset.TeacherDatasetError) as err:
    teacher_dataset.load_teacher_dataset(LARGE, data_dir, verify='sha256')
  assert shard in str(err.value) and 'corrupted' in str(err.value)
  assert 'python -m pipelines.build_teacher_datasets' in str(err.value)
  with open(shard, 'r+b') as f:
    f.truncate(100)
  with pytest.raises(teacher_dataset.TeacherDatasetError,
                     match='truncated') as err:
    teacher_dataset.load_teacher_dataset(LARGE, data_dir)
  assert shard in str(err.value) and f'--data_dir {data_dir}' in str(err.value)


def test_missing_dataset_and_wrong_version(built, tmp_path):
  job_dir, _ = built
  with pytest.raises(teacher_dataset.TeacherDatasetError,
                     match='not built') as err:
    teacher_dataset.load_teacher_dataset('triplet2_mastery_state_8', job_dir)
  assert '--triplets triplet2 --teachers mastery' in str(err.value)
  with pytest.raises(teacher_dataset.TeacherDatasetError,
                     match='version 9.9.9 is needed'):
    teacher_dataset.load_teacher_dataset(LARGE, job_dir, version='9.9.9')
  # A dataset of the scripted teachers (1.x) is refused, with the rebuild command.
  old_dir = str(tmp_path / 'old')
  shutil.copytree(_vdir(job_dir, LARGE), _vdir(old_dir, LARGE).replace(
      rlds_spec.VERSION, '1.1.0'))
  with pytest.raises(teacher_dataset.TeacherDatasetError,
                     match=f'version\\(s\\) 1.1.0 .* version {rlds_spec.VERSION} is needed') as err:
    teacher_dataset.load_teacher_dataset(LARGE, old_dir)
  assert f'--teachers mastery --obs state --sizes 8 --episode_steps 20 --data_dir {old_dir}' in str(
      err.value)


def test_interrupted_build_leaves_nothing_loadable(tmp_path, monkeypatch):
  data_dir = str(tmp_path)
  job = build_teacher_datasets.JobConfig(
      triplets=['triplet2'], teachers=['generalization'], obs_modes=['state'],
      sizes=[2, 4], data_dir=data_dir, episode_steps=5)
  real = teacher_dataset.write_manifest

  def crash_on_size_4(directory, config, num_episodes):
    if config.size == 4:
      raise KeyboardInterrupt('killed while writing size 4')
    real(directory, config, num_episodes)

  monkeypatch.setattr(teacher_dataset, 'write_manifest', crash_on_size_4)
  options = build_teacher_datasets.local_beam_options(
      ['--direct_running_mode=in_memory'], num_workers=1)
  with pytest.raises(KeyboardInterrupt):
    build_teacher_datasets.run(job, options)
  done = 'triplet2_generalization_state_2_steps5'
  killed = 'triplet2_generalization_state_4_steps5'
  assert len(list(teacher_dataset.load_teacher_dataset(done, data_dir))) == 2
  with pytest.raises(teacher_dataset.TeacherDatasetError, match='not built'):
    teacher_dataset.load_teacher_dataset(killed, data_dir)
  with pytest.raises(Exception):
    tfds.builder_from_directory(_vdir(data_dir, killed))
  # Rerun over the remains: the same bytes as a build that was never interrupted.
  monkeypatch.setattr(teacher_dataset, 'write_manifest', real)
  build_teacher_datasets.run(dataclasses.replace(job, overwrite=True), options)
  clean_dir = str(tmp_path / 'clean')
  build_teacher_datasets.run(dataclasses.replace(job, data_dir=clean_dir), options)
  for name in (done, killed):
    rerun, clean = _shards(_vdir(data_dir, name)), _shards(_vdir(clean_dir, name))
    assert [os.path.basename(p) for p in rerun] == [os.path.basename(p) for p in clean]
    for a, b in zip(rerun, clean):
      with open(a, 'rb') as f1, open(b, 'rb') as f2:
        assert f1.read() == f2.read(), a


@pytest.mark.parametrize('mode', ['in_memory', 'multi_threading'])
def test_every_local_runner_mode_writes_the_same_bytes(built, tmp_path, mode):
  """docs/datasets.md's runner table: each mode that runs here, against the
  multi-processing build of the `built` fixture (the default)."""
  job_dir, _ = built
  data_dir = str(tmp_path)
  _run([sys.executable, '-m', 'pipelines.build_teacher_datasets',
        '--triplets', 'triplet1', '--teachers', 'mastery', '--obs', 'state',
        '--sizes', '4,8', '--episode_steps', '20', '--data_dir', data_dir,
        '--num_workers', '2', f'--direct_running_mode={mode}'])
  for name in (SMALL, LARGE):
    mine, default = _shards(_vdir(data_dir, name)), _shards(_vdir(job_dir, name))
    assert [os.path.basename(p) for p in mine] == [os.path.basename(p) for p in default]
    for a, b in zip(mine, default):
      with open(a, 'rb') as f1, open(b, 'rb') as f2:
        assert f1.read() == f2.read(), a
