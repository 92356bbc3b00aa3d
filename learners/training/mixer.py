"""Mixed batches: exactly k offline and B - k online items, k from a schedule.

k = round(offline_fraction(step) * B) (halves round up), so the batch ratio is
exact at every step, not only in expectation (`choose_from_datasets` would be).
Each source is a stream of fixed-size numpy batches that an `ItemBuffer` cuts
to any length, so a changing k (AWAC's 1.0 -> 0.2) wastes no item.

The offline stream is a pure function of (seed, first item): epoch e shuffles
its episodes and transitions with seeds derived from (seed, e), so a resumed
run continues with exactly the items it would have seen.
"""

from concurrent import futures
import dataclasses
import itertools
import math
from typing import Any, Callable, Iterator, Optional

import numpy as np
import tensorflow as tf

from learners import types
from learners.training import background
from pipelines import transitions as transitions_lib


@dataclasses.dataclass(frozen=True)
class OfflineStreamConfig:
  n_step: int = 1
  gamma: float = 0.99
  critic_reward: str = 'sparse'  # pipelines.relabel
  episode_shuffle: int = 64  # Episodes in the shuffle buffer.
  item_shuffle: int = 10_000  # Transitions in the shuffle buffer.
  chunk: int = 256  # Transitions per numpy batch handed to the mixer.


def num_offline(offline_fraction: float, batch_size: int) -> int:
  """k = round(f * B), halves up (Python's round would go to even)."""
  if not 0.0 <= offline_fraction <= 1.0:
    raise ValueError(f'offline_fraction must be in [0, 1], got {offline_fraction}.')
  return int(math.floor(offline_fraction * batch_size + 0.5))


def offline_items_before(step: int, schedule: Callable[[int], float], batch_size: int,
                         start: int = 0) -> int:
  """Offline items consumed by grad steps [start, step): a pure function of step."""
  return sum(num_offline(schedule(s), batch_size) for s in range(start, step))


def _epoch_seed(seed: int, epoch: int) -> int:
  # Distinct, stable op seeds per (seed, epoch), kept below 2**31.
  return (int(seed) * 1_000_003 + int(epoch) * 7_919) % (2**31 - 1)


def offline_epoch(episodes: tf.data.Dataset, seed: int, epoch: int,
                  config: OfflineStreamConfig = OfflineStreamConfig()) -> tf.data.Dataset:
  """One pass over the teacher transitions, shuffled by (seed, epoch) alone.

  Python-int op seeds: tf.data rejects tensor seeds once a global seed is set
  (the learner sets one), so epochs are chained in Python (`offline_chunks`).
  """
  op_seed = _epoch_seed(seed, epoch)
  shuffled = episodes.shuffle(config.episode_shuffle, seed=op_seed,
                              reshuffle_each_iteration=False)
  items = transitions_lib.transitions(shuffled, config.n_step, config.gamma,
                                      deterministic=True,
                                      critic_reward=config.critic_reward)
  items = items.shuffle(config.item_shuffle, seed=op_seed + 1,
                        reshuffle_each_iteration=False)
  options = tf.data.Options()
  options.deterministic = True
  # A spent epoch's iterator is destroyed at every epoch boundary, and with
  # autotuning on, that destructor joins the autotune thread while holding
  # the GIL, which froze the learner for seconds (docs/launch.md, "Speed").
  # The epoch is buffered by the item shuffle when it opens, so autotuning its
  # parallelism buys nothing.
  options.autotune.enabled = False
  return items.with_options(options)


def _open_epoch(episodes: tf.data.Dataset, seed: int, epoch: int, offset: int,
                config: OfflineStreamConfig):
  """Epoch `epoch` from item `offset` on: (its first chunk or None, the rest)."""
  ds = offline_epoch(episodes, seed, epoch, config)
  if offset:
    ds = ds.skip(offset)
  chunks = ds.batch(config.chunk).prefetch(2).as_numpy_iterator()
  return next(chunks, None), chunks


def offline_chunks(episodes: tf.data.Dataset, items_per_epoch: int, seed: int,
                   start_item: int = 0,
                   config: OfflineStreamConfig = OfflineStreamConfig()) -> Iterator[dict]:
  """Teacher transitions as numpy chunks, repeated forever, from `start_item`.

  The next epoch's pipeline is opened on a thread while this one is read:
  opening traces the transition functions and fills the shuffle buffer
  (seconds: docs/launch.md, "Speed"), and the learner would otherwise wait
  on it at every epoch boundary.

  Args:
    episodes: RLDS episodes of the teacher dataset.
    items_per_epoch: transitions in one pass over `episodes` (episodes x steps).
    seed: run seed.
    start_item: how many items earlier segments of this run consumed.
    config: n-step, buffer and chunk sizes.

  Yields:
    dicts of numpy arrays with a leading axis of at most `config.chunk` items
    (an epoch's last chunk may be shorter; `ItemBuffer` joins them).
  """
  if items_per_epoch < 1:
    raise ValueError(f'items_per_epoch must be >= 1, got {items_per_epoch}.')
  epoch, offset = divmod(int(start_item), int(items_per_epoch))
  upcoming = background.in_background(_open_epoch, episodes, seed, epoch, offset, config,
                                        name='offline-epoch')
  while True:
    first, rest = upcoming.result()
    upcoming = background.in_background(_open_epoch, episodes, seed, epoch + 1, 0, config,
                                        name='offline-epoch')
    count = offset
    for chunk in itertools.chain([first] if first is not None else [], rest):
      count += len(chunk['action'])
      yield chunk
    if count != items_per_epoch:
      # The resume arithmetic (start_item -> epoch, offset) relies on it.
      raise ValueError(f'Epoch {epoch} of the teacher dataset had {count} transitions, '
                       f'expected items_per_epoch={items_per_epoch}.')
    epoch, offset = epoch + 1, 0


class ItemBuffer:
  """Cuts a stream of fixed-size batches into batches of any size."""

  def __init__(self, batches: Iterator[dict]):
    self._batches = batches
    self._pending = []  # numpy batches, the first one partly consumed
    self._available = 0

  def take(self, n: int) -> Optional[dict]:
    if n == 0:
      return None
    while self._available < n:
      batch = next(self._batches)
      self._pending.append(batch)
      self._available += len(batch['action'])
    parts, need = [], n
    while need:
      head = self._pending[0]
      size = len(head['action'])
      if size <= need:
        parts.append(head)
        self._pending.pop(0)
        need -= size
      else:
        parts.append(tf.nest.map_structure(lambda x: x[:need], head))  # pylint: disable=cell-var-from-loop
        self._pending[0] = tf.nest.map_structure(lambda x: x[need:], head)  # pylint: disable=cell-var-from-loop
        need = 0
    self._available -= n
    if len(parts) == 1:
      return parts[0]
    return tf.nest.map_structure(lambda *xs: np.concatenate(xs, axis=0), *parts)


def _as_batch(items: dict, is_offline: float) -> types.Batch:
  n = len(items['action'])
  return types.Batch(
      observation=items['observation'], action=items['action'], reward=items['reward'],
      discount=items['discount'], next_observation=items['next_observation'],
      is_offline=np.full((n,), is_offline, np.float32))


class Mixer:
  """`batch(step)`: k offline items then B - k online items, k from the schedule."""

  def __init__(self, batch_size: int, offline_fraction: Callable[[int], float],
               offline: Optional[ItemBuffer], online: Optional[ItemBuffer]):
    self.batch_size = batch_size
    self.offline_fraction = offline_fraction
    self._offline = offline
    self._online = online

  def num_offline(self, step: int) -> int:
    return num_offline(self.offline_fraction(step), self.batch_size)

  def needs_online(self, step: int) -> bool:
    return self.num_offline(step) < self.batch_size

  def batch(self, step: int) -> types.Batch:
    k = self.num_offline(step)
    parts = []
    if k:
      if self._offline is None:
        raise ValueError(f'Step {step} needs {k} offline items but the run has no '
                         'teacher dataset (offline_episodes=0).')
      parts.append(_as_batch(self._offline.take(k), 1.0))
    if k < self.batch_size:
      if self._online is None:
        raise ValueError(f'Step {step} needs {self.batch_size - k} online items but the '
                         'run has no replay.')
      parts.append(_as_batch(self._online.take(self.batch_size - k), 0.0))
    if len(parts) == 1:
      return parts[0]
    return types.concat(*parts)

  def batches(self, step: int, k: int) -> types.Batch:
    """The batches of steps [step, step + k), stacked (leading axis k)."""
    return types.stack([self.batch(s) for s in range(step, step + k)])


class Prefetcher:
  """Builds the batches of the next learner call on a thread while this one runs.

  Acme's learners prefetch their dataset for the same reason: the teacher
  stream's slicing, the Reverb sampler and the teacher's relabelling (in
  `prepare`) then overlap the grad steps (and, in the synchronous loop, the
  actor's env steps) instead of preceding them.  What a batch holds does not
  change: offline items come in the same order (the stream is a function of
  the step), and online items are a uniform sample of the table either way,
  drawn a few env steps earlier.  A call covers k steps: the k batches come
  stacked (`Mixer.batches`), as `Learner.steps` takes them.
  """

  def __init__(self, mixer: Mixer, prepare: Callable[[types.Batch], Any] = lambda b: b,
               timeout_s: Optional[float] = None):
    """`batch(step, k)` returns `prepare(mixer.batches(step, k))` (e.g. with teacher labels).

    With `timeout_s`, a batch not built in time raises TimeoutError: Reverb's
    sampler retries a lost server for ever, its timeout covers only the rate
    limiter.
    """
    self.mixer = mixer
    self._prepare = prepare
    self._timeout_s = timeout_s
    self._pending = None  # ((step, k), Future) of the batches being built, if any.

  def _build(self, step: int, k: int):
    return self._prepare(self.mixer.batches(step, k))

  def prefetch(self, step: int, k: int = 1) -> None:
    """Starts building steps [step, step + k) (no-op while another build is pending)."""
    if self._pending is None:
      self._pending = ((step, k), background.in_background(self._build, step, k,
                                                           name='mixer-prefetch'))

  def pending_steps(self, step: int) -> int:
    """k of the call being built for `step` (0: none), which `batch` must be asked for."""
    return self._pending[0][1] if self._pending and self._pending[0][0] == step else 0

  def batch(self, step: int, k: int = 1):
    """Steps [step, step + k), prepared: the prefetched ones, or built now if none is pending."""
    if self._pending is None:
      if self._timeout_s is None:
        return self._build(step, k)
      self.prefetch(step, k)
    (built, future), self._pending = self._pending, None
    try:
      batch = future.result(self._timeout_s)  # Raises what the thread raised.
    except futures.TimeoutError:
      raise TimeoutError(f'The batches of grad steps {step}+{k} were not ready within '
                         f'{self._timeout_s:g} s.') from None
    if built != (step, k):
      raise AssertionError(f'Prefetched the batches of steps {built[0]}+{built[1]}, asked '
                           f'for {step}+{k}.')
    return batch

  def close(self, timeout_s: float = 60.0) -> None:
    """Waits up to `timeout_s` for a pending build (its thread is a daemon)."""
    if self._pending is not None:
      futures.wait([self._pending[1]], timeout=timeout_s)
      self._pending = None
