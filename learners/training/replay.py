"""The Reverb replay of online student transitions.

One table of n-step transitions, the same items the offline stream yields
(`pipelines.transitions` makes both), so the mixer can concatenate them.  The
table has a `signature` derived from `envs.specs` (float32 everywhere but
images), uniform sampling, FIFO removal at `max_size`, and a rate limiter:
`MinSize` for the synchronous loop (the loop itself fixes the update rate) or
`SampleToInsertRatio` when actors run in other processes.

Every insert, flush and sample has a timeout: a dead actor or a starved
learner surfaces as `ReplayError`, never as a hang.
"""

import dataclasses
import hashlib
import json
import os
from typing import Iterator, Mapping, Optional, Sequence

import numpy as np
import reverb
import tensorflow as tf

from envs import specs
from learners.training import workdir

TABLE = 'transitions'
# Beside (not inside) the checkpoint dir: Reverb's checkpointer prunes every
# entry of its dir but the newest by name, files included.
CONFIG_SUFFIX = '.config.json'


class ReplayError(RuntimeError):
  """Reverb did not answer in time, or its checkpoint does not match the code."""


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
  max_size: int = 1_000_000
  min_size: int = 1_000  # Transitions in the table before the learner samples.
  # 'min_size' (synchronous loop) or 'ratio' (actors in other processes).
  rate_limiter: str = 'min_size'
  samples_per_insert: float = 6.4  # (B - k) / env_steps_per_grad_step, 'ratio' only.
  error_buffer: float = 0.0  # 'ratio' only; 0: derived (see `make_rate_limiter`).
  timeout_ms: int = 60_000  # For every insert, flush and sample.

  def __post_init__(self):
    if self.rate_limiter not in ('min_size', 'ratio'):
      raise ValueError(f'Unknown rate_limiter {self.rate_limiter!r}; valid: min_size, ratio.')
    if not 1 <= self.min_size <= self.max_size:
      raise ValueError(f'Need 1 <= min_size <= max_size, got {self.min_size}, {self.max_size}.')


def transition_spec(obs_mode: str, image_size: int = specs.DEFAULT_IMAGE_SIZE) -> dict:
  """One unbatched n-step transition as `tf.TensorSpec`s (the table signature)."""
  obs = {k: tf.TensorSpec(v.shape, tf.as_dtype(v.dtype), k)
         for k, v in specs.observation_spec(obs_mode, image_size).items()}
  return dict(
      observation=obs,
      action=tf.TensorSpec((specs.ACTION_DIM,), tf.float32, 'action'),
      reward=tf.TensorSpec((), tf.float32, 'reward'),
      discount=tf.TensorSpec((), tf.float32, 'discount'),
      next_observation=dict(obs),
  )


def make_rate_limiter(config: ReplayConfig, burst: int) -> reverb.rate_limiters.RateLimiter:
  """The table's limiter; `burst` = most items one actor inserts at once.

  A SampleToInsertRatio limiter blocks inserts when samples lag and samples
  when inserts lag; with too small an `error_buffer` an actor that inserts a
  whole episode at once (or the prefill) can block forever.  The buffer
  therefore covers two bursts and the prefill's slack, and is at least
  max(1, samples_per_insert) as Reverb requires.
  """
  if config.rate_limiter == 'min_size':
    return reverb.rate_limiters.MinSize(config.min_size)
  spi = config.samples_per_insert
  error_buffer = config.error_buffer or max(
      2.0 * burst * spi, 0.1 * config.min_size * spi, 2.0 * max(1.0, spi))
  return reverb.rate_limiters.SampleToInsertRatio(
      samples_per_insert=spi, min_size_to_sample=config.min_size,
      error_buffer=error_buffer)


def _config_digest(config: ReplayConfig, signature: dict, burst: int,
                   extra_tables: Sequence[str] = ()) -> dict:
  described = dict(dataclasses.asdict(config), burst=burst,
                   signature=str(tf.nest.map_structure(
                       lambda s: (tuple(s.shape), s.dtype.name), signature)))
  described.pop('timeout_ms')  # A client-side setting; not in the checkpoint.
  if extra_tables:  # Absent for the single table, so older digests still match.
    described['extra_tables'] = list(extra_tables)
  text = json.dumps(described, sort_keys=True)
  return dict(described, sha256=hashlib.sha256(text.encode()).hexdigest())


class ReplayServer:
  """A Reverb server on localhost with the transitions table.

  With `checkpoint_dir`, `checkpoint()` saves the table and a restart restores
  it.  Reverb restores the *saved* table config (rate limiter, sizes), not the
  one in code, so a digest of the config is stored beside the checkpoint and a
  mismatch is refused.
  """

  def __init__(self, config: ReplayConfig, obs_mode: str,
               image_size: int = specs.DEFAULT_IMAGE_SIZE, burst: int = 400,
               checkpoint_dir: Optional[str] = None,
               extra_tables: Sequence[reverb.Table] = ()):
    self.config = config
    self.signature = transition_spec(obs_mode, image_size)
    checkpointer = None
    self._digest = _config_digest(config, self.signature, burst,
                                  sorted(t.name for t in extra_tables))
    self._checkpoint_dir = checkpoint_dir
    if checkpoint_dir is not None:
      os.makedirs(checkpoint_dir, exist_ok=True)
      digest_path = os.path.normpath(checkpoint_dir) + CONFIG_SUFFIX
      if os.path.exists(digest_path):
        saved = workdir.read_json(digest_path)
        if saved['sha256'] != self._digest['sha256']:
          raise ReplayError(
              f'The replay checkpoint in {checkpoint_dir} was written with another table '
              f'config ({saved}) than this run ({self._digest}); Reverb would silently '
              'restore the old one. Resume with the original settings.')
      checkpointer = reverb.checkpointers.DefaultCheckpointer(checkpoint_dir)
    table = reverb.Table(
        name=TABLE,
        sampler=reverb.selectors.Uniform(),
        remover=reverb.selectors.Fifo(),
        max_size=config.max_size,
        rate_limiter=make_rate_limiter(config, burst),
        signature=self.signature)
    # Extra tables (the multi-actor mode's `variables`) share the server, so
    # actors dial one address.
    self._server = reverb.Server(tables=[table] + list(extra_tables),
                                 checkpointer=checkpointer)
    # Clients always dial the loopback interface.
    self.address = f'localhost:{self._server.port}'
    self.client = reverb.Client(self.address)

  def size(self) -> int:
    return int(self.client.server_info(timeout=self.config.timeout_ms // 1000 or 1)[TABLE]
               .current_size)

  def checkpoint(self) -> Optional[str]:
    """Saves the table (no-op without a checkpoint dir); returns the path."""
    if self._checkpoint_dir is None:
      return None
    try:
      path = self.client.checkpoint()
    except RuntimeError as e:  # Reverb's gRPC failures, e.g. the server is gone.
      raise ReplayError(f'Reverb could not write its checkpoint: {e}') from e
    workdir.write_json_atomic(os.path.normpath(self._checkpoint_dir) + CONFIG_SUFFIX,
                             self._digest)
    return path

  def stop(self) -> None:
    self._server.stop()


_MAX_IN_FLIGHT_ITEMS = 16


class TransitionWriter:
  """Inserts n-step transitions (one Reverb item each) into the table."""

  def __init__(self, address: str, timeout_ms: int):
    self._client = reverb.Client(address)
    self._writer = self._client.trajectory_writer(num_keep_alive_refs=1)
    self._timeout_ms = timeout_ms

  def insert(self, transitions: Mapping[str, np.ndarray]) -> int:
    """Inserts a batch of transitions (leading axis) and waits for the server."""
    count = int(np.shape(transitions['action'])[0])
    try:
      for i in range(count):
        self._writer.append(tf.nest.map_structure(lambda x: x[i], transitions))  # pylint: disable=cell-var-from-loop
        item = tf.nest.map_structure(lambda column: column[-1], self._writer.history)
        self._writer.create_item(TABLE, 1.0, item)
        # Bounded in-flight items, as Acme's adders do: an episode's worth of
        # unconfirmed items makes Reverb warn (and would grow memory).
        self._writer.flush(block_until_num_items=_MAX_IN_FLIGHT_ITEMS,
                           timeout_ms=self._timeout_ms)
      self._writer.flush(timeout_ms=self._timeout_ms)
    except reverb.errors.DeadlineExceededError as e:
      raise ReplayError(
          f'Reverb did not accept {count} transitions within {self._timeout_ms} ms '
          '(server down, or the rate limiter blocks inserts because the learner '
          f'stopped sampling): {e}') from e
    return count

  def close(self) -> None:
    self._writer.close()


def dataset(address: str, batch_size: int, timeout_ms: int) -> tf.data.Dataset:
  """Batches of uniformly sampled transitions (`data` only, no sample info)."""
  ds = reverb.TrajectoryDataset.from_table_signature(
      server_address=address, table=TABLE,
      max_in_flight_samples_per_worker=2 * batch_size,
      rate_limiter_timeout_ms=timeout_ms)
  return ds.map(lambda sample: sample.data).batch(batch_size, drop_remainder=True)


def numpy_batches(address: str, batch_size: int, timeout_ms: int) -> Iterator[dict]:
  """`dataset` as numpy dicts; a sampling timeout raises `ReplayError`."""
  iterator = iter(dataset(address, batch_size, timeout_ms).prefetch(1))
  while True:
    try:
      batch = next(iterator)
    except (StopIteration, tf.errors.OutOfRangeError,
            tf.errors.DeadlineExceededError) as e:
      raise ReplayError(
          f'No replay sample within {timeout_ms} ms: the table is below its minimum size '
          'or the rate limiter is waiting for inserts (actor dead or too slow?).') from e
    yield tf.nest.map_structure(lambda t: t.numpy(), batch)
