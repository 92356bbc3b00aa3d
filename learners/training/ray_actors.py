"""Actors as Ray actors on any node of a cluster (`--actor_engine ray`).

The data plane is the local pool's (`distributed`): each actor dials the
learner's Reverb server by the learner node's IP address, inserts transitions
and fetches the newest policy variables; it logs into the run's `episodes/`
folder, which every node must see at the same path (a shared filesystem, as for
the study's runs).  What differs is the control path: instead of local queues,
handing out episode token i is a Ray method call `collect(i)` on an idle actor,
and the call's result (an `EpisodeResult`) is the report.

A Ray actor that dies (its node lost, its process killed) loses at most the
episode it was collecting.  Its token goes back: a fresh actor starts in its
place (at most `max_actor_restarts` per run) and collects that same episode
index, from the same seed, so the budget stays exact and the run's episodes
are the same for any number of actors.  The half episode stays in the dead
actor's log segment, marked in flight, and counts as cut off.  An actor that
*raises* (a bug, a mismatched network) stops the run, as in the local pool.
"""

import dataclasses
import signal
import time
from typing import Dict, List, Optional

from learners.training import actors as actors_lib
from learners.training import distributed
from learners.training import faults
from learners.training import stopping


class _RayWorker:
  """The Ray actor: a `distributed.EpisodeWorker` behind three methods."""

  def __init__(self, actor_id: int, config: distributed.PoolConfig):
    # Ctrl-C in the driver's terminal must not kill actors mid-episode: the
    # learner decides how they stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    self._worker = distributed.EpisodeWorker(actor_id, config)

  def segment(self) -> str:
    return self._worker.segment

  def collect(self, index: int) -> dict:
    return dataclasses.asdict(self._worker.collect(index))

  def close(self) -> None:
    self._worker.close()


def reachable_address(address: str) -> str:
  """`localhost:PORT` -> `NODE_IP:PORT`, which actors on other nodes can dial."""
  import ray  # pylint: disable=g-import-not-at-top
  return f'{ray.util.get_node_ip_address()}:{address.rsplit(":", 1)[1]}'


class RayActorPool:
  """`distributed.ActorPool`'s interface (start, issue, poll, stop) over Ray actors."""

  def __init__(self, config: distributed.PoolConfig, ray_address: Optional[str] = None,
               max_actor_restarts: int = 3, log=print):
    self.config = config
    self._ray_address = ray_address
    self._max_restarts = max_actor_restarts
    self._log = log
    self._actors: Dict[int, object] = {}  # actor id -> handle, live ones only.
    self._busy: Dict[object, tuple] = {}  # call ref -> (actor id, episode index).
    self._next_id = 0
    self._started_ray = False
    self._stopped = False
    self._last_report = time.monotonic()
    # Replacement actors still starting: their `segment` call returns once they are
    # up.  Until then their episode cannot report, so the stall clock waits.
    self._starting: Dict[object, float] = {}  # ready ref -> when it was spawned
    self.segments: Dict[int, str] = {}
    self.issued = 0
    self.in_flight = 0
    self.restarts = 0  # Actors replaced after they died; each gave its token back.

  # --- start -------------------------------------------------------------------

  def start(self) -> None:
    """Joins (or starts) a Ray cluster, starts the actors, waits until each has its log."""
    import ray  # pylint: disable=g-import-not-at-top
    if not ray.is_initialized():
      with stopping.handlers_kept():
        ray.init(address=self._ray_address, include_dashboard=False, log_to_driver=False)
      self._started_ray = True
    self.config = dataclasses.replace(self.config,
                                      address=reachable_address(self.config.address))
    options = dict(num_cpus=1, max_restarts=0)
    if faults.environment():  # A crash test's hooks; never set in production runs.
      options['runtime_env'] = dict(env_vars=faults.environment())
    self._remote = ray.remote(**options)(_RayWorker)
    pending = {self._actors[i].segment.remote(): i
               for i in [self._spawn() for _ in range(self.config.num_actors)]}
    ready, _ = ray.wait(list(pending), num_returns=len(pending),
                        timeout=self.config.start_timeout_s)
    for ref in ready:
      try:
        self.segments[pending[ref]] = ray.get(ref)
      except ray.exceptions.RayError as e:
        raise distributed.ActorError(f'Actor {pending[ref]} failed to start:\n{e}') from e
    if len(ready) < len(pending):
      raise distributed.ActorError(
          f'Only {len(ready)} of {self.config.num_actors} Ray actors started within '
          f'{self.config.start_timeout_s:.0f} s; each asks for 1 CPU: does the cluster '
          f'have {self.config.num_actors} free (`ray status`)?')
    self._last_report = time.monotonic()
    self._log(f'{self.config.num_actors} Ray actors started (Reverb at '
              f'{self.config.address}); episode logs: '
              + ', '.join(s.rsplit('/', 1)[-1] for _, s in sorted(self.segments.items())))

  def _spawn(self) -> int:
    actor_id, self._next_id = self._next_id, self._next_id + 1
    self._actors[actor_id] = self._remote.remote(actor_id, self.config)
    return actor_id

  # --- hand out, collect ---------------------------------------------------------

  def issue(self, index: int) -> None:
    self.issued += 1
    self.in_flight += 1
    self._dispatch(index)

  def _dispatch(self, index: int) -> None:
    busy = {actor_id for actor_id, _ in self._busy.values()}
    idle = [i for i in sorted(self._actors) if i not in busy]
    if not idle:  # The learner hands out at most one token per actor.
      raise distributed.ActorError(f'No idle actor for episode {index}.')
    self._busy[self._actors[idle[0]].collect.remote(index)] = (idle[0], index)

  def poll(self, timeout: float) -> List[actors_lib.EpisodeResult]:
    """Finished episodes reported within `timeout` s (may be none).

    Raises:
      ActorError: an actor raised, more actors died than may be replaced, or
        no episode was reported for `timeout_ms` while episodes were in flight.
    """
    import ray  # pylint: disable=g-import-not-at-top
    if not self._busy:
      time.sleep(timeout)
      return []
    ready, _ = ray.wait(list(self._busy), num_returns=len(self._busy), timeout=timeout)
    results = []
    for ref in ready:
      actor_id, index = self._busy.pop(ref)
      try:
        results.append(actors_lib.EpisodeResult(**ray.get(ref)))
        self.in_flight -= 1
      except ray.exceptions.RayActorError as e:
        self._replace(actor_id, index, e)
      except ray.exceptions.RayError as e:
        raise distributed.ActorError(f'Actor {actor_id} failed:\n{e}') from e
    now = time.monotonic()
    if self._starting:
      up, _ = ray.wait(list(self._starting), num_returns=len(self._starting), timeout=0)
      for ref in up:  # Started, or died starting (its episode's call says which).
        del self._starting[ref]
        self._last_report = now
      if any(now - t > self.config.start_timeout_s for t in self._starting.values()):
        raise distributed.ActorError(
            f'A replacement actor did not start within {self.config.start_timeout_s:.0f} s; '
            'each asks for 1 CPU: does the cluster have one free (`ray status`)?')
    if results or not self.in_flight:
      self._last_report = now
    elif not self._starting and now - self._last_report > self.config.timeout_ms / 1000:
      raise distributed.ActorError(f'No episode reported for {self.config.timeout_ms} ms '
                                   f'with {self.in_flight} in flight; actors stuck?')
    return results

  def _replace(self, actor_id: int, index: int, error: Exception) -> None:
    """A dead actor's token goes back: a fresh actor collects episode `index`."""
    import ray  # pylint: disable=g-import-not-at-top
    reason = str(error).strip().splitlines()[0]
    ray.kill(self._actors.pop(actor_id), no_restart=True)
    if self.restarts >= self._max_restarts:
      raise distributed.ActorError(
          f'Actor {actor_id} died while collecting episode {index}, and '
          f'{self.restarts} actors were replaced already (max_actor_restarts): '
          f'{reason}')
    self.restarts += 1
    new_id = self._spawn()
    # Importing TensorFlow and building the env take tens of seconds on a loaded
    # node (a 2-core CI box stalled out at 30 s here): the new actor gets
    # `start_timeout_s` to start, as the first ones did.
    self._starting[self._actors[new_id].segment.remote()] = time.monotonic()
    self._log(f'Actor {actor_id} died while collecting episode {index}; actor {new_id} '
              f'takes its place and collects that episode ({reason})')
    self._dispatch(index)

  # --- stop --------------------------------------------------------------------

  def stop(self, timeout_s: Optional[float] = None) -> None:
    """Closes every actor's log (within `timeout_s`), then kills the actors."""
    if self._stopped:
      return
    self._stopped = True
    import ray  # pylint: disable=g-import-not-at-top
    if not ray.is_initialized():
      return
    timeout_s = self.config.join_timeout_s if timeout_s is None else timeout_s
    if timeout_s:
      closing = [actor.close.remote() for actor in self._actors.values()]
      closed, late = ray.wait(closing, num_returns=len(closing), timeout=timeout_s)
      for ref in closed:
        try:
          ray.get(ref)
        except ray.exceptions.RayError as e:
          self._log(f'An actor failed to close its log: {e}')
      if late:
        self._log(f'{len(late)} actors did not close their logs within {timeout_s:.0f} s; '
                  'killing them.')
    for actor in self._actors.values():
      ray.kill(actor, no_restart=True)
    self._actors = {}
    if self._started_ray:
      ray.shutdown()
