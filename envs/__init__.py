"""The RGB-stacking task, its triplets and its teachers."""

import os

# Bump on any change to dynamics, rendering, rewards or teacher behaviour:
# every data card records it, and dataset versions must follow.
ENV_VERSION = '1.1.0'

# EGL renders headless on CPU (Mesa) and GPU alike; it must be chosen before
# mujoco is imported anywhere.
os.environ.setdefault('MUJOCO_GL', 'egl')
# Mesa's CPU rasteriser spawns a thread per core by default; at 64x64 the
# threads cost more than they give (measured ~2x faster single-threaded), and
# parallel data collection runs one env per core anyway.
os.environ.setdefault('LP_NUM_THREADS', '1')

from envs.specs import OBS_MODES  # pylint: disable=g-import-not-at-top
from envs.stacking import StackingEnv, make_env  # pylint: disable=g-import-not-at-top
from envs.triplets import TRIPLET_NAMES, Triplet, get_triplet  # pylint: disable=g-import-not-at-top
from envs.teachers import TEACHER_NAMES, make_teacher  # pylint: disable=g-import-not-at-top
