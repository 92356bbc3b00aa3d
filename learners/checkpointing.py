"""Save/restore of everything a learner must carry across a restart."""

import os
from typing import Mapping, Optional

import tensorflow as tf


class CheckpointError(RuntimeError):
  """A learner checkpoint on disk cannot be trusted; names the file."""


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
    try:
      self._manager = tf.train.CheckpointManager(
          self._checkpoint, directory, max_to_keep=max_to_keep)
    except (UnicodeDecodeError, tf.errors.OpError) as e:  # Bytes that are not text.
      raise CheckpointError(f'{self.state_file} is unreadable ({type(e).__name__}: '
                            f'{str(e).splitlines()[0]}); refusing to resume. Restore it from '
                            'a backup or delete the run\'s workdir.') from e

  @property
  def latest(self) -> Optional[str]:
    return self._manager.latest_checkpoint

  def save(self, step: int) -> str:
    return self._manager.save(checkpoint_number=step)

  @property
  def state_file(self) -> str:
    return os.path.join(self.directory, 'checkpoint')

  def restore(self) -> bool:
    """Restores the latest checkpoint; False if there is none yet.

    Every saved value must land in an existing variable and every variable must
    get a value (`assert_consumed`), so a changed network or method fails loudly
    instead of resuming half-initialised.

    Raises:
      CheckpointError: the state file is unparsable or names a checkpoint that
        is not on disk, or the checkpoint's files are unreadable.  TF treats an
        unparsable state file as "no checkpoint", so a resume would quietly
        restart from scratch; here it is refused, naming the file.
    """
    latest = self._manager.latest_checkpoint
    if latest is None:
      if tf.io.gfile.exists(self.state_file):
        raise CheckpointError(f'{self.state_file} exists but names no readable checkpoint '
                              '(garbage or truncated); refusing to restart from scratch. '
                              'Restore it from a backup or delete the run\'s workdir.')
      return False
    if not tf.io.gfile.exists(latest + '.index'):
      raise CheckpointError(f'{self.state_file} names checkpoint {latest}, which is not on '
                            f'disk ({latest}.index missing); refusing to resume.')
    try:
      self._checkpoint.restore(latest).assert_consumed()
    except tf.errors.OpError as e:  # Not a ValueError: a changed network names itself.
      raise CheckpointError(f'Checkpoint {latest} (named by {self.state_file}) is '
                            f'unreadable: {str(e).splitlines()[0]}; refusing to resume.') from e
    return True
