"""The RGB-stacking task, its triplets and its teachers."""

import os

# EGL renders headless on CPU (Mesa) and GPU alike; it must be chosen before
# mujoco is imported anywhere.
os.environ.setdefault('MUJOCO_GL', 'egl')

from envs.specs import OBS_MODES  # pylint: disable=g-import-not-at-top
from envs.stacking import StackingEnv, make_env  # pylint: disable=g-import-not-at-top
from envs.triplets import TRIPLET_NAMES, Triplet, get_triplet  # pylint: disable=g-import-not-at-top
from envs.teachers import TEACHER_NAMES, make_teacher  # pylint: disable=g-import-not-at-top
