import os

import pytest

os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def pytest_addoption(parser):
  parser.addoption('--runslow', action='store_true', default=False,
                   help='also run tests marked slow')


def pytest_configure(config):
  if config.getoption('--runslow'):
    # pyproject's addopts deselects slow tests; the flag puts them back.
    config.option.markexpr = ''
