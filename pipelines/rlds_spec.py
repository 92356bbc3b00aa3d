"""The one RLDS feature spec shared by teacher datasets and online student logs.

Teacher datasets (built with Beam) and student episodes (logged with envlogger)
must merge into one stream, so both take their features from `dataset_config`
below, which derives every shape and dtype from `envs.specs`.  The episode
metadata is a single schema: fields that only make sense for one producer carry
a documented default in the other (a teacher episode has `learner_step=-1`,
`method=''`, `run_id=''`).
"""

import dataclasses
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from envs import policy as policy_lib
from envs import specs

DATASET_NAME = 'rgb_stacking_teacher'
STUDENT_LOG_NAME = 'rgb_stacking_student'

# Semantic version of the episode format *and* of what produced the episodes.
# Bump MAJOR for a feature-spec change or a new kind of teacher, MINOR for a
# changed env or teacher (same spec, different data), PATCH for
# metadata/card-only changes.
VERSION = '2.0.0'
RELEASE_NOTES = {
    '2.0.0': ('Env 2.0.0: the teachers `mastery` and `generalization` are '
              'networks distilled by DAgger from the scripted oracle (shipped '
              'SavedModels, envs/teacher_models/); the scripted teachers of '
              '1.x are `scripted-mastery` and `scripted-generalization`. Same '
              'features, different episodes.'),
    '1.1.0': ('Env 1.1.0: contact impratio 5 instead of 10 (14 % faster '
              'physics, teacher success unchanged within noise); same '
              'features, different episodes.'),
    '1.0.0': ('First release: RLDS episodes of the lite RGB-stacking task '
              '(Cartesian gripper, 20 Hz), state and vision modes, PNG '
              'camera images, unified teacher/student episode metadata.'),
}

POLICY_MODES = policy_lib.POLICY_MODES
STUDENT_POLICY = 'student'


@dataclasses.dataclass(frozen=True)
class MetadataField:
  feature: Any
  default: Any
  doc: str


# Order matters only for readability; TFDS sorts feature keys itself.
EPISODE_METADATA = {
    'triplet': MetadataField(tfds.features.Text(), None,
                             'Object triplet, e.g. "triplet1".'),
    'policy': MetadataField(tfds.features.Text(), None,
                            'Who acted: a teacher name or "student".'),
    'teacher': MetadataField(tfds.features.Text(), '',
                             'Teacher of the episode (datasets) or the teacher '
                             'a student method uses ("" if none).'),
    'policy_mode': MetadataField(tfds.features.Text(), None,
                                 'stochastic (sampled) or deterministic (mode).'),
    'episode_seed': MetadataField(np.int64, None,
                                  'Seed that fixes the initial state and the '
                                  'policy noise of the episode.'),
    'episode_index': MetadataField(np.int64, None,
                                   'Index in the teacher dataset, or the '
                                   'episode counter of a student run.'),
    'success': MetadataField(np.bool_, None,
                             'Stacking success condition held at the last step.'),
    'episode_return': MetadataField(np.float32, None,
                                    'Undiscounted sum of rewards.'),
    'learner_step': MetadataField(np.int64, -1,
                                  'Learner gradient step when a student episode '
                                  'started (-1 for teacher episodes).'),
    'method': MetadataField(tfds.features.Text(), '',
                            'Student method, e.g. "r_crr" ("" for teachers).'),
    'run_id': MetadataField(tfds.features.Text(), '',
                            'Run that produced a student episode ("" for '
                            'teachers).'),
}


def _tensor(array_spec) -> tfds.features.FeatureConnector:
  dtype = np.dtype(array_spec.dtype)
  if dtype == np.uint8 and len(array_spec.shape) == 3:
    # Raw uint8 tensors are huge and slow to parse; PNG is lossless.
    return tfds.features.Image(shape=tuple(array_spec.shape), dtype=np.uint8,
                               encoding_format='png')
  return tfds.features.Tensor(shape=tuple(array_spec.shape), dtype=dtype)


def dataset_config(obs_mode: str = 'state',
                   image_size: int = specs.DEFAULT_IMAGE_SIZE,
                   name: str = DATASET_NAME
                   ) -> tfds.rlds.rlds_base.DatasetConfig:
  """The RLDS `DatasetConfig` both producers use (envlogger takes it verbatim)."""
  obs_spec = specs.observation_spec(obs_mode, image_size)
  return tfds.rlds.rlds_base.DatasetConfig(
      name=name,
      observation_info=tfds.features.FeaturesDict(
          {k: _tensor(v) for k, v in obs_spec.items()}),
      action_info=_tensor(specs.action_spec()),
      reward_info=_tensor(specs.reward_spec()),
      discount_info=_tensor(specs.discount_spec()),
      episode_metadata_info={k: f.feature for k, f in EPISODE_METADATA.items()},
  )


def features(obs_mode: str = 'state',
             image_size: int = specs.DEFAULT_IMAGE_SIZE
             ) -> tfds.features.FeaturesDict:
  """The episode `FeaturesDict`, built exactly as envlogger's writer builds it."""
  identity = tfds.core.dataset_info.DatasetIdentity(
      name=DATASET_NAME, version=tfds.core.Version(VERSION), data_dir='/tmp',
      module_name='')
  info = tfds.rlds.rlds_base.build_info(
      dataset_config(obs_mode, image_size), identity)
  return info.features


def episode_metadata(**fields) -> dict:
  """Complete episode metadata: checks names, fills producer-specific defaults."""
  unknown = set(fields) - set(EPISODE_METADATA)
  if unknown:
    raise ValueError(f'Unknown episode metadata fields: {sorted(unknown)}; '
                     f'valid: {sorted(EPISODE_METADATA)}.')
  out = {}
  for key, field in EPISODE_METADATA.items():
    value = fields.get(key, field.default)
    if value is None:
      raise ValueError(f'Episode metadata field {key!r} is required '
                       f'({field.doc})')
    out[key] = value
  if out['policy_mode'] not in POLICY_MODES:
    raise ValueError(f'policy_mode must be one of {POLICY_MODES}, got '
                     f'{out["policy_mode"]!r}.')
  out['episode_return'] = np.float32(out['episode_return'])
  out['success'] = bool(out['success'])
  return out

