"""Online student logging: crash recovery, spec equality with teacher datasets."""

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow_datasets as tfds

import envs
from pipelines import episode_log
from pipelines import rlds_spec

_KILLED_LOGGER = textwrap.dedent('''
    import os, sys
    import numpy as np
    import envs
    from pipelines import episode_log
    env = envs.make_env('triplet1', 'state', episode_steps=10)
    log = episode_log.StudentEpisodeLog(
        env, sys.argv[1], obs_mode='state', triplet='triplet1', method='bc',
        run_id='crash', max_episodes_per_shard=100)
    rng = np.random.default_rng(0)
    for e in range(4):
      ts = log.reset(episode_seed=e, learner_step=e, policy_mode='stochastic')
      for _ in range(5 if e == 3 else 100):  # episode 3 is in flight
        if ts.last():
          break
        ts = log.step(rng.uniform(-1, 1, 5))
    os._exit(9)  # killed: no close(), no flush of the episode in flight
''')


def _count(builder):
  return builder.info.splits['train'].num_examples


def _log_episodes(root, num, run_id='r0', **kwargs):
  env = envs.make_env('triplet1', 'state', episode_steps=10)
  rng = np.random.default_rng(1)
  with episode_log.StudentEpisodeLog(env, root, obs_mode='state',
                                     triplet='triplet1', method='r_crr',
                                     run_id=run_id, **kwargs) as log:
    for e in range(num):
      ts = log.reset(episode_seed=100 + e, learner_step=7 * e,
                     policy_mode='stochastic')
      while not ts.last():
        ts = log.step(rng.uniform(-1, 1, 5))
  return log


def test_killed_logger_loses_only_the_episode_in_flight(tmp_path):
  root = str(tmp_path / 'log')
  proc = subprocess.run([sys.executable, '-c', _KILLED_LOGGER, root],
                        capture_output=True, text=True, timeout=240)
  assert proc.returncode == 9, proc.stderr[-2000:]
  torn_root = str(tmp_path / 'torn')
  shutil.copytree(root, torn_root)
  blank_root = str(tmp_path / 'blank')
  shutil.copytree(root, blank_root)

  # A restart repairs the killed segment and opens a fresh one beside it.
  log = _log_episodes(root, 2, run_id='restart')
  assert [os.path.basename(s) for s in log.previous_segments] == [
      'segment-00000']
  assert os.path.basename(log.segment) == 'segment-00001'
  builder = episode_log.student_builder(root)
  assert _count(builder) == 3 + 2
  episodes = list(tfds.as_numpy(builder.as_dataset(split='train')))
  assert [e['run_id'] for e in episodes].count(b'crash') == 3
  assert all(len(e['steps']) == 11 for e in episodes)

  # A record torn mid-write (the episode in flight) is dropped, the rest kept.
  segment = os.path.join(torn_root, 'segment-00000')
  (shard,) = [f for f in os.listdir(segment) if 'tfrecord' in f]
  path = os.path.join(segment, shard)
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) - 10)
  assert episode_log.recover_segments(torn_root) == [segment]
  assert _count(tfds.builder_from_directory(segment)) == 2
  assert os.path.exists(path + '.torn')

  # A killed logger's features.json left empty (seen in a loaded CI run): restored
  # from a sibling segment of the same log, and its 3 complete episodes are kept.
  blank = os.path.join(blank_root, 'segment-00000')
  open(os.path.join(blank, 'features.json'), 'w').close()
  with pytest.raises(ValueError, match='no other segment of this log has a readable'):
    episode_log.recover_segments(blank_root)
  shutil.copytree(os.path.join(root, 'segment-00001'),
                  os.path.join(blank_root, 'segment-00001'))
  assert episode_log.recover_segments(blank_root) == [
      blank, os.path.join(blank_root, 'segment-00001')]
  assert _count(tfds.builder_from_directory(blank)) == 3


def test_logged_episodes_carry_student_metadata(tmp_path):
  root = str(tmp_path)
  _log_episodes(root, 3, max_episodes_per_shard=2)
  builder = episode_log.student_builder(root)
  episodes = list(tfds.as_numpy(builder.as_dataset(split='train')))
  assert [e['learner_step'] for e in episodes] == [0, 7, 14]
  assert {e['policy'] for e in episodes} == {rlds_spec.STUDENT_POLICY.encode()}
  assert {e['method'] for e in episodes} == {b'r_crr'}
  assert [e['episode_seed'] for e in episodes] == [100, 101, 102]
  for e in episodes:
    rewards = [s['reward'] for s in e['steps']]
    np.testing.assert_allclose(e['episode_return'], sum(rewards), rtol=1e-6)


def test_close_is_quiet(tmp_path, capfd):
  log = _log_episodes(str(tmp_path), 1)
  del log
  import gc  # pylint: disable=g-import-not-at-top
  gc.collect()
  assert 'AttributeError' not in capfd.readouterr().err


def test_spec_is_the_shared_one(tmp_path):
  _log_episodes(str(tmp_path), 1)
  (segment,) = episode_log.segment_dirs(str(tmp_path))
  logged = tfds.builder_from_directory(segment).info.features
  assert logged.to_json() == rlds_spec.features('state').to_json()
