"""The RGB-stacking task, its triplets and its teachers."""

import os

# Bump on any change to dynamics, rendering, rewards or teacher behaviour:
# every data card records it, and dataset versions must follow.
ENV_VERSION = '2.0.0'

# EGL renders headless on CPU (Mesa) and GPU alike; it must be chosen before
# mujoco is imported anywhere.
os.environ.setdefault('MUJOCO_GL', 'egl')
# Mesa's CPU rasteriser spawns a thread per core by default; at 64x64 the
# threads cost more than they give (measured ~2x faster single-threaded), and
# parallel data collection runs one env per core anyway.
os.environ.setdefault('LP_NUM_THREADS', '1')

# The simulator and the teachers load on first use (PEP 562), so a tool that
# only needs `envs.specs` or `envs.triplets` (the study runner's dry run) does
# not pay for MuJoCo's scene building or the teachers' meshes.
_LAZY = {
    'OBS_MODES': 'envs.specs',
    'StackingEnv': 'envs.stacking', 'make_env': 'envs.stacking',
    'TRIPLET_NAMES': 'envs.triplets', 'Triplet': 'envs.triplets', 'get_triplet': 'envs.triplets',
    'TEACHER_NAMES': 'envs.teachers', 'make_teacher': 'envs.teachers',
}


def __getattr__(name):
  if name in _LAZY:
    import importlib  # pylint: disable=g-import-not-at-top
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
