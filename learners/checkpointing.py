"""Save/restore of everything a learner must carry across a restart."""

import os
from typing import Mapping, Optional

import tensorflow as tf


def checkpoint_dir(workdir: str) -> str:
  """The one stable place a learner's checkpoints live inside a run's workdir."""
  return os.path.join(workdir, 'checkpoints', 'learner')


class Checkpointer:
  """tf.train.Checkpoint + CheckpointManager that refuses to resume silently wrong.

  `objects` is the single list of trackables that must survive a restart
  (networks, targets, optimizers, duals, step counter, RNG state).
  """

  def __init__(self, objects: Mapping[str, tf.Module], directory: str,
               max_to_keep: int = 3):
    self.directory = directory
    self._checkpoint = tf.train.Checkpoint(**objects)
    self._manager = tf.train.CheckpointManager(
        self._checkpoint, directory, max_to_keep=max_to_keep)

  @property
  def latest(self) -> Optional[str]:
    return self._manager.latest_checkpoint

  def save(self, step: int) -> str:
    return self._manager.save(checkpoint_number=step)

  def restore(self) -> bool:
    """Restores the latest checkpoint; False if there is none yet.

    Every saved value must land in an existing variable and every variable must
    get a value (`assert_consumed`), so a changed network or method fails loudly
    instead of resuming half-initialised.
    """
    latest = self._manager.latest_checkpoint
    if latest is None:
      state_file = os.path.join(self.directory, 'checkpoint')
      # TF treats an unparsable state file as "no checkpoint": a resume would
      # quietly restart from scratch.
      if tf.io.gfile.exists(state_file):
        raise RuntimeError(f'{state_file} exists but names no readable checkpoint; '
                           'refusing to restart from scratch. Fix or delete it.')
      return False
    self._checkpoint.restore(latest).assert_consumed()
    return True
