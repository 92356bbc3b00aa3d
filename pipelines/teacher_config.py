"""Names and configs of teacher datasets: one config per (triplet, teacher, obs, size).

A config name spells everything that changes the data, so two datasets with the
same name hold the same episodes:

  {triplet}_{teacher}_{obs_mode}_{size}[_{policy_mode}][_steps{N}][_img{S}]

The optional parts appear only when they differ from the defaults (stochastic
teacher, 400-step episodes, 64x64 images), e.g. `triplet1_generalization_state_5000`
or `triplet1_mastery_state_8_steps20` (a short-episode test dataset).  Any size
is valid; `STANDARD_SIZES` only decides which configs the builder lists.
"""

import dataclasses
import re
from typing import Iterable, Optional

import tensorflow_datasets as tfds

from envs import policy as policy_lib
from envs import specs
from envs import teachers
from envs import triplets
from pipelines import rlds_spec

PAPER_SIZES = (1000, 2500, 5000, 7500, 10000, 12500, 15000)
DEMO_SIZES = (4, 8, 50, 200)
STANDARD_SIZES = DEMO_SIZES + PAPER_SIZES
DEFAULT_POLICY_MODE = policy_lib.DEFAULT_TEACHER_POLICY_MODE

_NAME_RE = re.compile(
    r'^(?P<triplet>triplet\d+)_(?P<teacher>[a-z][a-z-]*)_(?P<obs_mode>[a-z]+)_'
    r'(?P<size>\d+)(?:_(?P<policy_mode>stochastic|deterministic))?'
    r'(?:_steps(?P<episode_steps>\d+))?(?:_img(?P<image_size>\d+))?$')


def config_name(triplet: str, teacher: str, obs_mode: str, size: int,
                policy_mode: str = DEFAULT_POLICY_MODE,
                episode_steps: int = specs.EPISODE_STEPS,
                image_size: int = specs.DEFAULT_IMAGE_SIZE) -> str:
  name = f'{triplet}_{teacher}_{obs_mode}_{int(size)}'
  if policy_mode != DEFAULT_POLICY_MODE:
    name += f'_{policy_mode}'
  if episode_steps != specs.EPISODE_STEPS:
    name += f'_steps{int(episode_steps)}'
  if obs_mode == 'vision' and image_size != specs.DEFAULT_IMAGE_SIZE:
    name += f'_img{int(image_size)}'
  return name


@dataclasses.dataclass(eq=False)
class TeacherConfig(tfds.core.BuilderConfig):
  """A teacher dataset config; every field can be parsed from `name` alone.

  So `tfds build ... --config '{"name": "triplet2_mastery_state_1234"}'`
  builds a size that is not in the standard list.
  """
  triplet: Optional[str] = None
  teacher: Optional[str] = None
  obs_mode: Optional[str] = None
  size: Optional[int] = None
  policy_mode: str = DEFAULT_POLICY_MODE
  episode_steps: int = specs.EPISODE_STEPS
  image_size: int = specs.DEFAULT_IMAGE_SIZE

  def __post_init__(self):
    match = _NAME_RE.match(self.name or '')
    if match is None:
      raise ValueError(
          f'Bad teacher dataset config name {self.name!r}; expected '
          '{triplet}_{teacher}_{obs}_{size}[_deterministic][_steps{N}]'
          '[_img{S}], e.g. triplet1_generalization_state_5000.')
    parsed = {k: v for k, v in match.groupdict().items() if v is not None}
    for key in ('size', 'episode_steps', 'image_size'):
      if key in parsed:
        parsed[key] = int(parsed[key])
    for key, value in parsed.items():
      setattr(self, key, value)
    specs.check_obs_mode(self.obs_mode)
    if self.policy_mode not in rlds_spec.POLICY_MODES:
      raise ValueError(f'Unknown policy mode {self.policy_mode!r}.')
    if self.size <= 0:
      raise ValueError(f'Dataset size must be positive, got {self.size}.')
    canonical = config_name(self.triplet, self.teacher, self.obs_mode,
                            self.size, self.policy_mode, self.episode_steps,
                            self.image_size)
    if canonical != self.name:
      raise ValueError(f'Non-canonical config name {self.name!r}; use '
                       f'{canonical!r}.')
    if not self.description:
      self.description = (
          f'{self.size} episodes of the {self.teacher} teacher on '
          f'{self.triplet}, {self.obs_mode} observations, {self.policy_mode} '
          f'actions, {self.episode_steps} steps per episode.')

  @property
  def group(self) -> str:
    """The config name without its size: datasets of one group are nested."""
    return config_name(self.triplet, self.teacher, self.obs_mode, 0,
                       self.policy_mode, self.episode_steps,
                       self.image_size).replace('_0', '', 1)

  def resized(self, size: int) -> 'TeacherConfig':
    return make_config(self.triplet, self.teacher, self.obs_mode, size,
                       self.policy_mode, self.episode_steps, self.image_size)


def make_config(triplet: str, teacher: str, obs_mode: str, size: int,
                policy_mode: str = DEFAULT_POLICY_MODE,
                episode_steps: int = specs.EPISODE_STEPS,
                image_size: int = specs.DEFAULT_IMAGE_SIZE) -> TeacherConfig:
  return TeacherConfig(name=config_name(triplet, teacher, obs_mode, size,
                                        policy_mode, episode_steps,
                                        image_size))


def standard_configs(sizes: Iterable[int] = STANDARD_SIZES
                     ) -> list[TeacherConfig]:
  return [make_config(t, teacher, obs, size)
          for t in triplets.TRIPLET_NAMES for teacher in teachers.NEURAL_TEACHERS
          for obs in specs.OBS_MODES for size in sizes]


def rebuild_command(config: TeacherConfig, data_dir: str) -> str:
  """The shell command that (re)builds `config` into `data_dir`."""
  extra = ''
  if config.policy_mode != DEFAULT_POLICY_MODE:
    extra += f' --policy_mode {config.policy_mode}'
  if config.episode_steps != specs.EPISODE_STEPS:
    extra += f' --episode_steps {config.episode_steps}'
  if config.image_size != specs.DEFAULT_IMAGE_SIZE:
    extra += f' --image_size {config.image_size}'
  return (f'python -m pipelines.build_teacher_datasets --triplets '
          f'{config.triplet} --teachers {config.teacher} --obs '
          f'{config.obs_mode} --sizes {config.size}{extra} --data_dir '
          f'{data_dir} --overwrite')
