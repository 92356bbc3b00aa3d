"""Every use of envlogger in robot-time lives in this module.

envlogger's TFDS writer and its `rlds_utils` are deprecated upstream (deleted
from its main branch); the pinned 1.2 release works.  Keeping them behind this
one module means a switch to envlogger's Riegeli backend plus a Beam conversion
touches one file.

What it provides:
- `rlds_steps`: (timestep, action) pairs -> RLDS steps, with the exact
  alignment envlogger's writer uses (teacher datasets call it too, so teacher
  and student steps line up identically).
- `StudentEpisodeLog`: logs student episodes through `envlogger.EnvLogger` into
  RLDS with the shared feature spec and per-episode metadata.  Each process
  start writes a fresh *segment* directory (envlogger 1.2's writer overwrites
  shard 0 of an existing directory), each finished episode is flushed to disk
  at once, and a start first repairs what a killed predecessor left behind.
- `segment_dirs` / `recover_segments`: the loadable segments of a log root.
- `cut_off_episodes`: episodes a crash or stop cut off mid-way, from the
  in-flight marker each segment keeps beside it while an episode runs.
"""

import json
import os
import re
from typing import Any, Callable, Mapping, Optional, Sequence

from absl import logging
import dm_env
import envlogger
from envlogger import environment_wrapper
from envlogger import step_data
from envlogger.backends import rlds_utils
from envlogger.backends import tfds_backend_writer
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from envs import specs
from pipelines import rlds_spec

SEGMENT_PREFIX = 'segment-'
_SEGMENT_RE = re.compile(r'^segment-(\d{5})$')
# Beside its segment (TFDS owns the segment's folder): the seed of the episode
# being logged, present from its reset until it is on disk.
IN_FLIGHT_SUFFIX = '.in_flight.json'


def cast_timestep(timestep: dm_env.TimeStep,
                  obs_spec: Mapping[str, Any]) -> dm_env.TimeStep:
  """Casts a timestep to the spec dtypes (float32 reward/discount, obs dtypes).

  TFDS rejects a float64 where the spec says float32, and envs may return
  Python floats; one cast here keeps every producer on the same dtypes.
  """
  observation = {k: np.asarray(timestep.observation[k], obs_spec[k].dtype)
                 for k in obs_spec}
  reward = None if timestep.reward is None else np.float32(timestep.reward)
  discount = (None if timestep.discount is None
              else np.float32(timestep.discount))
  return timestep._replace(observation=observation, reward=reward,
                           discount=discount)


class _SpecCastingEnv(environment_wrapper.EnvironmentWrapper):
  """Hands envlogger timesteps already cast to the shared spec's dtypes."""

  def __init__(self, env: dm_env.Environment, obs_spec: Mapping[str, Any]):
    super().__init__(env)
    self._obs_spec = obs_spec

  def reset(self) -> dm_env.TimeStep:
    return cast_timestep(self._environment.reset(), self._obs_spec)

  def step(self, action) -> dm_env.TimeStep:
    return cast_timestep(self._environment.step(action), self._obs_spec)


def rlds_steps(timesteps: Sequence[dm_env.TimeStep],
               actions: Sequence[Any],
               obs_spec: Optional[Mapping[str, Any]] = None) -> list[dict]:
  """RLDS steps of one episode, aligned as envlogger aligns them.

  Step t holds observation t, the action taken there, and the reward/discount
  that action earned; the extra last step holds the final observation with
  zero action/reward/discount and `is_last=True`.

  Args:
    timesteps: the reset timestep followed by one timestep per action.
    actions: `len(timesteps) - 1` actions.
    obs_spec: observation spec whose dtypes to cast to (default: keep the
      observation dtypes, still casting reward/discount to float32).

  Returns:
    `len(timesteps)` RLDS step dicts, cast to the spec dtypes.
  """
  if len(actions) != len(timesteps) - 1:
    raise ValueError(f'Expected {len(timesteps) - 1} actions for '
                     f'{len(timesteps)} timesteps, got {len(actions)}.')
  obs_spec = obs_spec or {k: np.asarray(v) for k, v in
                          timesteps[0].observation.items()}
  timesteps = [cast_timestep(ts, obs_spec) for ts in timesteps]
  actions = [np.asarray(a, np.float32) for a in actions]
  data = [step_data.StepData(timesteps[0], None)]
  data += [step_data.StepData(ts, a) for ts, a in zip(timesteps[1:], actions)]
  steps = [rlds_utils.to_rlds_step(prev, cur)
           for prev, cur in zip(data[:-1], data[1:])]
  steps.append(rlds_utils.to_rlds_step(data[-1], None))
  return steps


class _EagerTFDSWriter(tfds_backend_writer.TFDSBackendWriter):
  """envlogger's TFDS writer, made crash-tolerant and quiet.

  Upstream keeps a finished episode in memory until the *next* reset; here it
  goes to disk (and is flushed) as soon as its final metadata arrives, so a
  killed process loses only the episode in flight.  Closing mid-episode drops
  the unfinished episode instead of writing it.
  """

  def __init__(self, *args, **kwargs):
    self._closed = False
    super().__init__(*args, **kwargs)

  def set_episode_metadata(self, data: Mapping[str, Any]) -> None:
    super().set_episode_metadata(dict(data))
    episode = self._current_episode
    if episode is not None and episode.prev_step.timestep.last():
      self._write_and_reset_episode()
      self._flush_open_shards()

  def _flush_open_shards(self) -> None:
    # SequentialWriter has no public flush; its open TFRecordWriters do.
    for split in self._sequential_writer._splits.values():  # pylint: disable=protected-access
      if split.current_shard is not None:
        split.current_shard.writer.flush()

  def close(self) -> None:
    if self._closed:
      return
    self._closed = True
    episode = self._current_episode
    if episode is not None and not episode.prev_step.timestep.last():
      # Upstream would write the half episode; a student must never train on a
      # cut-off trajectory.  Its in-flight marker counts it as cut off.
      self._current_episode = None
    super().close()

  def __del__(self):
    # Upstream's __del__ closes again and, late in teardown, prints a harmless
    # AttributeError traceback; an explicit close() already did the work.
    if getattr(self, '_closed', True):
      return
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except
      pass


def segment_dirs(root: str) -> list[str]:
  """Segment directories under a log root, in order (empty ones included)."""
  if not tf.io.gfile.isdir(root):
    return []
  names = sorted(n.rstrip('/') for n in tf.io.gfile.listdir(root))
  return [os.path.join(root, n) for n in names if _SEGMENT_RE.match(n)]


def _read_records(path: str) -> tuple[list[bytes], Optional[str]]:
  """All complete records of a TFRecord file, and the error that stopped us."""
  records = []
  try:
    for record in tf.data.TFRecordDataset(path):
      records.append(record.numpy())
  except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as e:
    return records, str(e).splitlines()[0]
  return records, None


def _repair_segment(segment: str) -> int:
  """Accounts for an unlisted last shard of a killed writer; returns #episodes.

  Shards are written one after the other and listed in `dataset_info.json`
  only once closed, so only the last shard can be unlisted.  Its complete
  episodes are kept (rlds_utils.maybe_recover_last_shard lists them); a
  truncated trailing record (the episode in flight) is dropped; an empty shard
  is removed.
  """
  builder = tfds.builder_from_directory(segment)
  split = builder.info.splits['train']
  extra = split.filename_template.sharded_filepath(
      shard_index=split.num_shards, num_shards=split.num_shards + 1)
  if not tf.io.gfile.exists(extra):
    return split.num_examples
  records, error = _read_records(os.fspath(extra))
  if not records:
    logging.warning('Removing empty partial shard %s left by a killed logger.',
                    extra)
    tf.io.gfile.remove(os.fspath(extra))
    return split.num_examples
  if error is not None:
    # Keep the complete prefix; the torn record is the episode in flight.
    broken = os.fspath(extra) + '.torn'
    tf.io.gfile.rename(os.fspath(extra), broken, overwrite=True)
    with tf.io.TFRecordWriter(os.fspath(extra)) as writer:
      for record in records:
        writer.write(record)
    logging.warning(
        'Partial shard %s ended in a torn record (%s): kept its %d complete '
        'episodes, moved the original to %s.', extra, error, len(records), broken)
  builder = rlds_utils.maybe_recover_last_shard(builder)
  recovered = builder.info.splits['train'].num_examples
  logging.warning('Recovered %d episodes of unlisted shard %s in %s (the '
                  'logging process was killed; only its episode in flight is '
                  'lost).', len(records), extra, segment)
  return recovered


def _restore_features(segment: str, segments: Sequence[str]) -> None:
  """A killed logger can leave its features.json empty (seen under load); every
  segment of a log holds the same features, so a readable sibling's is copied."""
  def readable(path):
    try:
      with tf.io.gfile.GFile(path) as f:
        return bool(json.loads(f.read()))
    except (tf.errors.NotFoundError, ValueError):
      return False
  path = os.path.join(segment, 'features.json')
  if readable(path):
    return
  sources = (os.path.join(o, 'features.json') for o in segments if o != segment)
  source = next((p for p in sources if readable(p)), None)
  if source is None:
    raise ValueError(f'{path} is empty or torn (its logger was killed while writing it) and '
                     'no other segment of this log has a readable one: copy one from a run '
                     'with the same obs mode, or move this segment away to drop its episodes.')
  tf.io.gfile.copy(source, path + '.tmp', overwrite=True)
  tf.io.gfile.rename(path + '.tmp', path, overwrite=True)
  logging.warning('%s was empty or torn (its logger was killed while writing it): '
                  'copied the same features from %s.', path, source)


def recover_segments(root: str) -> list[str]:
  """Repairs a log root after a crash; returns segments that hold episodes."""
  loadable = []
  segments = segment_dirs(root)
  for segment in segments:
    if not tf.io.gfile.exists(os.path.join(segment, 'dataset_info.json')):
      logging.warning('Skipping %s: no dataset_info.json (killed before its '
                      'first write).', segment)
      continue
    _restore_features(segment, segments)
    if _repair_segment(segment) > 0:
      loadable.append(segment)
  return loadable


def in_flight_path(segment: str) -> str:
  return os.path.normpath(segment) + IN_FLIGHT_SUFFIX


def _write_in_flight(segment: str, episode_seed: int) -> None:
  path = in_flight_path(segment)
  with tf.io.gfile.GFile(path + '.tmp', 'w') as f:
    f.write(json.dumps(dict(episode_seed=int(episode_seed))))
  tf.io.gfile.rename(path + '.tmp', path, overwrite=True)


def logged_seeds(segment: str) -> list[int]:
  """Episode seeds of a (repaired) segment's complete episodes, in log order."""
  builder = tfds.builder_from_directory(segment)
  if not builder.info.splits['train'].num_examples:
    return []  # Killed in its first episode: TFDS refuses to read an empty split.
  episodes = builder.as_dataset(split='train', shuffle_files=False)
  return [int(s) for s in
          episodes.map(lambda e: e['episode_seed']).as_numpy_iterator()]


def cut_off_episodes(root: str) -> list[tuple[str, int]]:
  """(segment, episode seed) of every episode a crash or stop cut off mid-way.

  A segment's writer is gone once a later process runs, so this is a pure
  function of what is on disk: call it after `recover_segments`.  A marker
  whose episode did reach the log (killed between the write and the marker's
  removal) is not a cut-off.
  """
  out = []
  for segment in segment_dirs(root):
    path = in_flight_path(segment)
    if not tf.io.gfile.exists(path):
      continue
    with tf.io.gfile.GFile(path) as f:
      seed = int(json.loads(f.read())['episode_seed'])
    logged = (tf.io.gfile.exists(os.path.join(segment, 'dataset_info.json'))
              and seed in logged_seeds(segment))
    if not logged:
      out.append((segment, seed))
  return out


def _next_segment(root: str) -> str:
  existing = segment_dirs(root)
  index = 0
  if existing:
    index = int(_SEGMENT_RE.match(os.path.basename(existing[-1])).group(1)) + 1
  return os.path.join(root, f'{SEGMENT_PREFIX}{index:05d}')


class StudentEpisodeLog:
  """Logs student episodes of an env to RLDS, one fresh segment per process.

  Usage:
    with StudentEpisodeLog(env, root, obs_mode='state', triplet='triplet1',
                           method='r_crr', run_id='run0') as log:
      ts = log.reset(episode_seed=s, learner_step=k, policy_mode='stochastic')
      while not ts.last():
        ts = log.step(action)

  The env stays owned by the caller (closing the log does not close it).
  """

  def __init__(self, env: dm_env.Environment, root: str, *, obs_mode: str,
               triplet: str, method: str, run_id: str, teacher: str = '',
               image_size: int = specs.DEFAULT_IMAGE_SIZE,
               max_episodes_per_shard: int = 100,
               success_fn: Optional[Callable[[dm_env.Environment], bool]] = None,
               repair: bool = True):
    tf.io.gfile.makedirs(root)
    # An actor that joins a pool mid-run must not repair segments other actors
    # are writing: the pool's owner repairs the root once, before any starts.
    self._previous = recover_segments(root) if repair else []
    self.segment = _next_segment(root)
    tf.io.gfile.makedirs(self.segment)
    self._static = dict(triplet=triplet, method=method, run_id=run_id,
                        teacher=teacher, policy=rlds_spec.STUDENT_POLICY)
    self._success_fn = success_fn or (lambda e: bool(e.success))
    self._env = env
    self._episode: Optional[dict] = None
    self._episodes = 0
    self._writer = _EagerTFDSWriter(
        data_directory=self.segment,
        ds_config=rlds_spec.dataset_config(
            obs_mode, image_size, name=rlds_spec.STUDENT_LOG_NAME),
        max_episodes_per_file=max_episodes_per_shard,
        split_name='train',
        version=rlds_spec.VERSION)
    self._logger = envlogger.EnvLogger(
        _SpecCastingEnv(env, specs.observation_spec(obs_mode, image_size)),
        backend=self._writer,
                                       episode_fn=self._episode_fn)

  @property
  def previous_segments(self) -> list[str]:
    """Segments of earlier runs under the same root (repaired at start)."""
    return list(self._previous)

  def _episode_fn(self, timestep, action, env):
    del action
    info = self._episode
    if timestep.first():
      info['episode_return'] = 0.0
    else:
      info['episode_return'] += float(timestep.reward)
    info['success'] = self._success_fn(env)
    return rlds_spec.episode_metadata(**info)

  def reset(self, *, episode_seed: int, learner_step: int,
            policy_mode: str) -> dm_env.TimeStep:
    if hasattr(self._env, 'reseed'):
      self._env.reseed(episode_seed)
    self._episode = dict(self._static, episode_seed=episode_seed,
                         learner_step=learner_step, policy_mode=policy_mode,
                         episode_index=self._episodes, episode_return=0.0,
                         success=False)
    self._episodes += 1
    _write_in_flight(self.segment, episode_seed)
    return self._logger.reset()

  def step(self, action: np.ndarray) -> dm_env.TimeStep:
    timestep = self._logger.step(np.asarray(action, np.float32))
    if timestep.last():  # The writer has put the episode on disk.
      tf.io.gfile.remove(in_flight_path(self.segment))
    return timestep

  def close(self) -> None:
    # EnvLogger.close() would also close the caller's env.
    self._writer.close()

  def __enter__(self) -> 'StudentEpisodeLog':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def student_builder(root: str) -> tfds.core.DatasetBuilder:
  """All logged student episodes under `root` as one read-only builder."""
  segments = recover_segments(root)
  if not segments:
    raise FileNotFoundError(f'No logged student episodes under {root}.')
  return tfds.builder_from_directories(segments)

