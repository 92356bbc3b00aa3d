"""Simulating teacher episodes as RLDS examples, as Beam transforms.

Both ways of building a teacher dataset (the `tfds build` CLI through the TFDS
builder, and `pipelines.build_teacher_datasets` for several nested sizes in one
job) simulate episodes with the transforms here, so episode i has the same
bytes whichever way it was built.  Everything Beam pickles lives in this
importable module (never in `__main__` or in the builder file, which workers
cannot import).
"""

import dataclasses
import json
from typing import Any, Iterable, Iterator

import apache_beam as beam
import tensorflow as tf

import envs
from envs import rollout as rollout_lib
from envs import specs
from pipelines import episode_log
from pipelines import rlds_spec
from pipelines import teacher_config


@dataclasses.dataclass(frozen=True)
class EpisodeStats:
  """Per-dataset summary for the data card; sums so prefixes add up."""
  episodes: int = 0
  successes: int = 0
  return_sum: float = 0.0

  def __add__(self, other: 'EpisodeStats') -> 'EpisodeStats':
    return EpisodeStats(self.episodes + other.episodes,
                        self.successes + other.successes,
                        self.return_sum + other.return_sum)

  @property
  def success_rate(self) -> float:
    return self.successes / max(self.episodes, 1)

  @property
  def mean_return(self) -> float:
    return self.return_sum / max(self.episodes, 1)

  def as_dict(self) -> dict:
    return dict(episodes=self.episodes, success_rate=self.success_rate,
                mean_return=self.mean_return)


def episode_example(config: teacher_config.TeacherConfig, index: int,
                    trajectory: rollout_lib.Trajectory, seed: int) -> dict:
  """One teacher episode as an RLDS example of the shared feature spec."""
  obs_spec = specs.observation_spec(config.obs_mode, config.image_size)
  steps = episode_log.rlds_steps(trajectory.timesteps, trajectory.actions,
                                 obs_spec)
  metadata = rlds_spec.episode_metadata(
      triplet=config.triplet, policy=config.teacher, teacher=config.teacher,
      policy_mode=config.policy_mode, episode_seed=seed, episode_index=index,
      success=trajectory.success, episode_return=trajectory.episode_return)
  return {'steps': steps, **metadata}


class SimulateEpisodes(beam.DoFn):
  """index -> (index, RLDS example, EpisodeStats); one env per worker."""

  def __init__(self, config: teacher_config.TeacherConfig):
    # Only plain fields travel to workers; the env is built in setup().
    self._fields = dict(triplet=config.triplet, teacher=config.teacher,
                        obs_mode=config.obs_mode, size=config.size,
                        policy_mode=config.policy_mode,
                        episode_steps=config.episode_steps,
                        image_size=config.image_size)

  def setup(self):
    self._config = teacher_config.make_config(**self._fields)
    cfg = self._config
    # Building an env costs about a second: once per worker, reseeded per
    # episode by rollout().
    self._env = envs.make_env(cfg.triplet, obs_mode=cfg.obs_mode, seed=0,
                              episode_steps=cfg.episode_steps,
                              image_size=cfg.image_size)
    self._policy = envs.make_teacher(cfg.teacher, cfg.triplet)
    self._episodes = beam.metrics.Metrics.counter('teacher', 'episodes')

  def process(self, index: int) -> Iterator[tuple[int, dict, EpisodeStats]]:
    cfg = self._config
    seed = rollout_lib.episode_seed(cfg.triplet, cfg.teacher, index)
    trajectory = rollout_lib.rollout(self._env, self._policy, cfg.policy_mode,
                                     seed)
    self._episodes.inc()
    stats = EpisodeStats(1, int(trajectory.success),
                         float(trajectory.episode_return))
    yield index, episode_example(cfg, index, trajectory, seed), stats

  def teardown(self):
    env = getattr(self, '_env', None)
    if env is not None:
      env.close()


class SumStats(beam.CombineFn):
  """Combines EpisodeStats (associative, so workers combine partial sums)."""

  def create_accumulator(self) -> EpisodeStats:
    return EpisodeStats()

  def add_input(self, acc: EpisodeStats, stats: EpisodeStats) -> EpisodeStats:
    return acc + stats

  def merge_accumulators(self, accs: Iterable[EpisodeStats]) -> EpisodeStats:
    total = EpisodeStats()
    for acc in accs:
      total = total + acc
    return total

  def extract_output(self, acc: EpisodeStats) -> EpisodeStats:
    return acc


@beam.ptransform_fn
def SimulateTeacherEpisodes(pipeline: Any,  # pylint: disable=invalid-name
                            config: teacher_config.TeacherConfig,
                            num_episodes: int):
  """Episodes 0..num_episodes-1 of `config`'s teacher, spread over workers."""
  return (pipeline
          | 'Indices' >> beam.Create(list(range(num_episodes)))
          # Create() is one bundle; reshuffling lets every worker simulate.
          | 'Spread' >> beam.Reshuffle()
          | 'Simulate' >> beam.ParDo(SimulateEpisodes(config)))


def stats_of(item: tuple[int, dict, EpisodeStats]) -> EpisodeStats:
  return item[2]


def keyed_example(item: tuple[int, dict, EpisodeStats]) -> tuple[int, dict]:
  return item[0], item[1]


def write_stats_json(stats: EpisodeStats, path: str) -> None:
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(dataclasses.asdict(stats), f)


def read_stats_json(path: str) -> EpisodeStats:
  with tf.io.gfile.GFile(path) as f:
    return EpisodeStats(**json.load(f))


def card_metadata(config: teacher_config.TeacherConfig,
                  stats: EpisodeStats) -> dict:
  """Data card numbers stored in DatasetInfo metadata (metadata.json)."""
  return dict(teacher=config.teacher, triplet=config.triplet,
              obs_mode=config.obs_mode, policy_mode=config.policy_mode,
              episode_steps=config.episode_steps, size=stats.episodes,
              env_version=env_version(), success_rate=stats.success_rate,
              mean_return=stats.mean_return)


def card_text(config: teacher_config.TeacherConfig, stats: EpisodeStats,
              env_version: str) -> str:
  """The DatasetInfo description: what is in the data, and how good it is."""
  return (
      f'Teacher episodes for the lite RGB-stacking task (robot-time).\n'
      f'teacher: {config.teacher}\ntriplet: {config.triplet}\n'
      f'observation mode: {config.obs_mode}\npolicy mode: {config.policy_mode}'
      f'\nepisode steps: {config.episode_steps}\nsize: {stats.episodes} '
      f'episodes\nenv version: {env_version}\nsuccess rate: '
      f'{stats.success_rate:.4f}\nmean return: {stats.mean_return:.4f}\n'
      f'Episode i is seeded from (triplet, teacher, i) and stored in order '
      f'(key = i), so the first k episodes equal the size-k dataset.')


def env_version() -> str:
  """Version of the task implementation recorded on every data card."""
  version = getattr(envs, '__version__', None) or getattr(
      envs, 'ENV_VERSION', None)
  if version:
    return str(version)
  try:
    from importlib import metadata  # pylint: disable=g-import-not-at-top
    return 'robot-time ' + metadata.version('robot-time')
  except Exception:  # pylint: disable=broad-except
    return 'unknown'

