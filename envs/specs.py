"""The task's observation and action specs: the one source every other module reads.

Datasets (TFDS features), online logs (envlogger), Reverb tables and learner
networks all derive their shapes and dtypes from here, so a change of the task
changes them together (and must bump the dataset version).
"""

import dataclasses

import numpy as np
from dm_env import specs

CONTROL_HZ = 20
EPISODE_STEPS = 400
NUM_OBJECTS = 3  # red, green, blue, in that order everywhere.

# proprio = gripper xyz (3), sin/cos yaw (2), finger opening (1),
#           gripper linear velocity (3), yaw velocity (1).
PROPRIO_DIM = 10
# object_poses = (red, green, blue) x (position xyz, quaternion wxyz).
OBJECT_POSES_DIM = NUM_OBJECTS * 7
# action = Cartesian velocity (vx, vy, vz, vyaw) + gripper (-1 open, +1 closed).
ACTION_DIM = 5
ACTION_NAMES = ('vx', 'vy', 'vz', 'vyaw', 'gripper')
# Physical scale of a unit action (m/s for xyz, rad/s for yaw).
MAX_LINEAR_SPEED = 0.25
MAX_YAW_SPEED = 2.0
# Where the gripper rests (world frame, m) and how far each finger opens: the
# scale of the proprio entries, shared by the scene and the students' encoders.
GRIPPER_HOME = np.array([0.6, 0.0, 0.25])
FINGER_MAX_OPENING = 0.045  # per finger, from the centre: 9 cm between pads.

CAMERA_NAMES = ('camera_left', 'camera_right')
DEFAULT_IMAGE_SIZE = 64

OBS_MODES = ('state', 'vision')

# Keys a student's encoder may read in each observation mode.  `object_poses`
# is always logged (teachers relabel any stored step from it) but a vision
# student never sees it.
STUDENT_KEYS = {
    'state': ('proprio', 'object_poses'),
    'vision': ('proprio',) + CAMERA_NAMES,
}
# Keys a teacher reads: privileged state, available in every mode.
TEACHER_KEYS = ('proprio', 'object_poses')


@dataclasses.dataclass(frozen=True)
class SpecConfig:
  obs_mode: str = 'state'
  image_size: int = DEFAULT_IMAGE_SIZE


def check_obs_mode(obs_mode: str) -> str:
  if obs_mode not in OBS_MODES:
    raise ValueError(
        f'Unknown observation mode {obs_mode!r}; valid choices: {", ".join(OBS_MODES)}.')
  return obs_mode


def observation_spec(obs_mode: str = 'state',
                     image_size: int = DEFAULT_IMAGE_SIZE) -> dict:
  check_obs_mode(obs_mode)
  spec = {
      'proprio': specs.Array((PROPRIO_DIM,), np.float32, 'proprio'),
      'object_poses': specs.Array((OBJECT_POSES_DIM,), np.float32, 'object_poses'),
  }
  if obs_mode == 'vision':
    for name in CAMERA_NAMES:
      spec[name] = specs.Array((image_size, image_size, 3), np.uint8, name)
  return spec


def action_spec() -> specs.BoundedArray:
  return specs.BoundedArray((ACTION_DIM,), np.float32, -1.0, 1.0,
                            name='action: ' + ','.join(ACTION_NAMES))


# The env's rewards; `shaped` is also what a critic may be relabelled with.
REWARD_TYPES = ('sparse', 'shaped')


@dataclasses.dataclass(frozen=True)
class ShapedReward:
  """The staged reward's weights and scales: the env's (MPO's) reward and the
  critic's relabelled one (pipelines/relabel.py) read them here, so they cannot drift."""
  reach: float = 0.2
  grasp: float = 0.2
  lift: float = 0.2
  place: float = 0.3
  distance_scale: float = 10.0  # a distance d (m) scores 1 - tanh(scale * d)
  lift_height: float = 0.08  # m of red above blue that earns the whole lift term


SHAPED_REWARD = ShapedReward()


def reward_spec() -> specs.Array:
  return specs.Array((), np.float32, 'reward')


def discount_spec() -> specs.BoundedArray:
  return specs.BoundedArray((), np.float32, 0.0, 1.0, 'discount')
