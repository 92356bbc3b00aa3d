"""Several actor processes feeding the learner's Reverb server over gRPC.

The data plane is Reverb, addressed as `localhost:PORT`:
  * actors insert n-step transitions into the `transitions` table, exactly as
    the synchronous actor does (`learners.training.actors.Actor`);
  * the learner publishes its policy variables to a one-item `variables` table
    (Lifo sampler, MinSize(1): Acme's "variable source" pattern) and actors
    fetch the newest every `variable_update_period` env steps.

The control plane is two `multiprocessing` queues (spawn context):
  * episode tokens, handed out by the learner: token i means "collect online
    episode i", whose seed depends only on (run seed, i), so the set of
    episodes is the same for any number of actors and the budget is exact (the
    learner never hands out more tokens than the budget has episodes);
  * reports from actors: ready, one `EpisodeResult` per finished episode, done,
    or an error with its traceback.  The learner's ledger counts episodes from
    these reports, never from table sizes (Reverb delivers at least once).

The actors themselves (`EpisodeWorker`) reach the learner only by address; with
`--actor_engine ray` the same workers run as Ray actors on any node and Ray
method calls replace the queues (`learners.training.ray_actors`).

Failures never hang: every Reverb call has a timeout, the learner polls the
actor processes (an actor killed by a signal sends no report), actors exit
when the learner process is gone, and `ActorPool.stop` joins with a timeout
and then terminates stragglers.
"""

import dataclasses
import multiprocessing
import os
import queue
import signal
import threading
import time
import traceback
from typing import List, Optional

import numpy as np
import reverb
import tensorflow as tf

from envs import policy as policy_lib
from learners import networks
from learners.training import actors as actors_lib
from learners.training import background
from learners.training import faults
from learners.training import replay
from learners.training import workdir

VARIABLES_TABLE = 'variables'
_POLL_S = 0.5  # How often an actor checks that its learner process is alive.


class ActorError(RuntimeError):
  """An actor process failed or died; names the actor and its error."""


# --- Variables: learner -> actors ---------------------------------------------


def variables_signature(variables) -> dict:
  """The `variables` table's item: the learner step and the policy variables."""
  return dict(step=tf.TensorSpec((), tf.int64, 'step'),
              variables=[tf.TensorSpec(v.shape, v.dtype, f'var_{i}')
                         for i, v in enumerate(variables)])


def variables_table(signature: dict) -> reverb.Table:
  # One item, the newest: inserting evicts the old one, so the table is never
  # empty once the learner has published and a fetch never blocks.
  return reverb.Table(name=VARIABLES_TABLE, sampler=reverb.selectors.Lifo(),
                      remover=reverb.selectors.Fifo(), max_size=1,
                      rate_limiter=reverb.rate_limiters.MinSize(1), signature=signature)


class VariablePublisher:
  """Learner side: writes the policy variables into the `variables` table."""

  def __init__(self, address: str, variables, timeout_ms: int):
    self._variables = list(variables)
    self._writer = reverb.Client(address).trajectory_writer(num_keep_alive_refs=1)
    self._timeout_ms = timeout_ms

  def publish(self, step: int) -> None:
    self._writer.append(dict(step=np.int64(step),
                             variables=[v.numpy() for v in self._variables]))
    self._writer.create_item(VARIABLES_TABLE, 1.0,
                             tf.nest.map_structure(lambda c: c[-1], self._writer.history))
    try:
      self._writer.flush(timeout_ms=self._timeout_ms)
    except reverb.errors.DeadlineExceededError as e:
      raise replay.ReplayError(f'Reverb did not accept the policy variables within '
                               f'{self._timeout_ms} ms: {e}') from e

  def close(self) -> None:
    self._writer.close()


class RemotePolicy:
  """Actor side: the student policy, refreshed from the learner's `variables` table."""
  name = 'student'

  def __init__(self, address: str, obs_mode: str, image_size: int,
               nets: networks.NetworkConfig, timeout_ms: int):
    self._policy = networks.GaussianPolicy(obs_mode, nets)
    self._policy(networks.dummy_observation(obs_mode, image_size))
    self._variables = self._policy.variables
    self._distribution_fn = networks.numpy_distribution(self._policy, obs_mode, image_size)
    # State: numpy on a copy of the weights, copied again at each fetch.
    self._numpy_policy = (networks.NumpyStatePolicy(self._policy) if obs_mode == 'state'
                          else None)
    self._client = reverb.Client(address)
    self._timeout_s = max(1.0, timeout_ms / 1000)
    self.learner_step = -1

  def update(self) -> int:
    """Fetches the newest published variables; returns their learner step."""
    # A cheap call with a deadline first, so a dead server fails fast.
    self._client.server_info(timeout=int(self._timeout_s))
    sample = background.call_with_timeout(
        lambda: next(self._client.sample(VARIABLES_TABLE, 1, emit_timesteps=False,
                                         unpack_as_table_signature=True)),
        self._timeout_s, 'Fetching the policy variables from Reverb')
    values = sample.data['variables']
    if len(values) != len(self._variables):
      raise ValueError(f'Learner published {len(values)} variables, the actor policy has '
                       f'{len(self._variables)}: different network configs?')
    for variable, value in zip(self._variables, values):
      variable.assign(value)
    if self._numpy_policy is not None:
      self._numpy_policy.sync()
    self.learner_step = int(sample.data['step'])
    return self.learner_step

  def distribution(self, observation) -> policy_lib.GaussianAction:
    return policy_lib.call_unbatched(self._numpy_policy or self._distribution_fn, observation)


# --- The actor process --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PoolConfig:
  num_actors: int
  actor: actors_lib.ActorConfig
  address: str  # The learner's Reverb server, `localhost:PORT`.
  log_root: str  # The run's `episodes/` folder; each actor logs its own segment.
  nets: networks.NetworkConfig
  timeout_ms: int = 120_000  # Every Reverb call, and the wait for a report.
  variable_update_period: int = 100  # Env steps between variable fetches.
  start_timeout_s: float = 600.0  # Spawning imports TF, Reverb and MuJoCo.
  join_timeout_s: float = 30.0


def _parent_alive() -> bool:
  parent = multiprocessing.parent_process()
  return parent is None or parent.is_alive()


def _exit_with_parent() -> None:
  """Ends this actor process soon after the learner process is gone.

  A killed learner takes its Reverb server along, and an actor blocked in a
  Reverb call would wait out its whole timeout; an orphan must also stop
  writing its log before a resume reads it.  `os._exit` leaves the log as a
  killed process would (complete episodes are recovered, no half episode).
  """
  def watch():
    while _parent_alive():
      time.sleep(_POLL_S)
    os._exit(1)  # pylint: disable=protected-access
  threading.Thread(target=watch, name='parent-watchdog', daemon=True).start()


class EpisodeWorker:
  """What an actor is wherever it runs (a spawned process or a Ray actor).

  It reaches the learner by address only: the policy variables and the
  transitions through the Reverb server, its log on the run's folder.  It
  collects the episodes it is handed by index; how indices arrive and results
  go back is the pool's business.
  """

  def __init__(self, actor_id: int, config: PoolConfig):
    # A small policy network: one thread each keeps N actors off the learner's cores.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    self.actor_id = actor_id
    self._config = config
    self._policy = RemotePolicy(config.address, config.actor.obs_mode,
                                config.actor.image_size, config.nets, config.timeout_ms)
    writer = replay.TransitionWriter(config.address, config.timeout_ms)
    # One at a time: each log picks the next free segment under the log root,
    # which must not race another actor's.  A file lock, so it holds across
    # machines that share the run's folder.
    os.makedirs(config.log_root, exist_ok=True)
    with workdir.exclusive(config.log_root, config.start_timeout_s):
      # The pool's owner repaired the log root before any actor started.
      self._actor = actors_lib.Actor(config.actor, self._policy, config.log_root, writer,
                                     repair_log=False)
    self.episodes = 0
    self.env_steps = 0

  @property
  def segment(self) -> str:
    return self._actor.log_segment

  def collect(self, index: int) -> actors_lib.EpisodeResult:
    """Episode `index` of the run, with the newest weights, refreshed as it goes."""
    self._policy.update()
    since_update = 0
    result = None
    while result is None:
      if since_update >= self._config.variable_update_period:
        self._policy.update()
        since_update = 0
      result = self._actor.step(self._policy.learner_step, episode_index=index)
      since_update += 1
      self.env_steps += 1
      if self.actor_id == 0:
        faults.maybe_kill(faults.KILL_ACTOR_AT_ENV_STEP, self.env_steps)
    self.episodes += 1
    return result

  def close(self) -> None:
    """Closes the log; mid-episode, the half episode is dropped (its marker counts it)."""
    self._actor.close()


def _actor_main(actor_id: int, config: PoolConfig, tokens, reports) -> None:
  """Entry point of actor process `actor_id` (spawned: imports nothing inherited)."""
  _exit_with_parent()
  # Ctrl-C reaches every process of the terminal's group: the learner alone
  # decides how its actors stop.
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  worker = None
  try:
    worker = EpisodeWorker(actor_id, config)
    reports.put(('ready', actor_id, worker.segment))
    while True:
      index = tokens.get()  # The learner sends None to stop (or terminates us).
      if index is None:
        break
      reports.put(('episode', actor_id, dataclasses.asdict(worker.collect(index))))
      if actor_id == 0:
        faults.maybe_kill(faults.KILL_ACTOR_AFTER_EPISODES, worker.episodes)
    worker.close()
    worker = None
    reports.put(('done', actor_id, None))
  except BaseException:  # pylint: disable=broad-except
    reports.put(('error', actor_id, traceback.format_exc()))
    if worker is not None:
      try:
        worker.close()
      except Exception:  # pylint: disable=broad-except
        pass
    raise SystemExit(1)


# --- The learner's view of its actors -----------------------------------------


def _raise_errors(messages: list) -> None:
  for kind, actor_id, payload in messages:
    if kind == 'error':
      raise ActorError(f'Actor {actor_id} failed:\n{payload}')


def _describe_exit(code: Optional[int]) -> str:
  if code is None:
    return 'still running'
  if code < 0:
    try:
      return f'killed by {signal.Signals(-code).name}'
    except ValueError:
      return f'killed by signal {-code}'
  return f'exit code {code}'


class ActorPool:
  """Starts, feeds, watches and stops the actor processes."""

  def __init__(self, config: PoolConfig, log=print):
    self.config = config
    self._log = log
    self._context = multiprocessing.get_context('spawn')
    self._tokens = self._context.Queue()
    self._reports = self._context.Queue()
    self._processes: List[multiprocessing.Process] = []
    self.segments = {}
    self.issued = 0
    self.in_flight = 0
    self._last_report = time.monotonic()
    self._stopped = False

  def start(self) -> None:
    """Spawns the actors and waits until each has its env, policy and log."""
    for i in range(self.config.num_actors):
      process = self._context.Process(
          target=_actor_main, args=(i, self.config, self._tokens, self._reports),
          name=f'actor-{i}', daemon=True)
      process.start()
      self._processes.append(process)
    deadline = time.monotonic() + self.config.start_timeout_s
    while len(self.segments) < self.config.num_actors:
      if time.monotonic() > deadline:
        raise ActorError(f'Only {len(self.segments)} of {self.config.num_actors} actors '
                         f'started within {self.config.start_timeout_s:.0f} s.')
      for kind, actor_id, payload in self._get(timeout=_POLL_S):
        if kind != 'ready':
          raise ActorError(f'Actor {actor_id} sent {kind!r} before it was ready.')
        self.segments[actor_id] = payload
    self._last_report = time.monotonic()
    self._log(f'{self.config.num_actors} actors started; episode logs: '
              + ', '.join(os.path.basename(s) for _, s in sorted(self.segments.items())))

  def issue(self, index: int) -> None:
    self._tokens.put(index)
    self.issued += 1
    self.in_flight += 1

  def poll(self, timeout: float) -> List[actors_lib.EpisodeResult]:
    """Finished episodes reported within `timeout` s (may be none).

    Raises:
      ActorError: an actor reported an error, or died, or no episode was
        reported for `timeout_ms` while episodes were in flight.
    """
    results = []
    for kind, actor_id, payload in self._get(timeout):
      if kind == 'episode':
        results.append(actors_lib.EpisodeResult(**payload))
        self.in_flight -= 1
      else:
        raise ActorError(f'Actor {actor_id} sent {kind!r} while collecting.')
    now = time.monotonic()
    if results or not self.in_flight:
      self._last_report = now
    elif now - self._last_report > self.config.timeout_ms / 1000:
      raise ActorError(f'No episode reported for {self.config.timeout_ms} ms with '
                       f'{self.in_flight} in flight; actors stuck?')
    return results

  def _get(self, timeout: float) -> list:
    """Reports waiting (or arriving within `timeout`); then checks every process."""
    messages = self._drain(timeout)
    _raise_errors(messages)
    dead = [(i, p) for i, p in enumerate(self._processes) if not p.is_alive()]
    if dead:
      # An actor that failed put its traceback in the queue before exiting.
      _raise_errors(messages + self._drain(1.0))
      i, process = dead[0]
      raise ActorError(f'Actor {i} (pid {process.pid}) died '
                       f'({_describe_exit(process.exitcode)}) without reporting an error.')
    return messages

  def _drain(self, timeout: float) -> list:
    messages = []
    try:
      messages.append(self._reports.get(timeout=timeout))
      while True:
        messages.append(self._reports.get_nowait())
    except queue.Empty:
      pass
    return messages

  def stop(self, timeout_s: Optional[float] = None) -> None:
    """Asks every actor to finish, joins them, terminates stragglers."""
    if self._stopped:
      return
    self._stopped = True
    timeout_s = self.config.join_timeout_s if timeout_s is None else timeout_s
    for _ in self._processes:
      self._tokens.put(None)
    deadline = time.monotonic() + timeout_s
    for process in self._processes:
      process.join(max(0.0, deadline - time.monotonic()))
    for process in self._processes:
      if process.is_alive():
        if timeout_s:
          self._log(f'Actor {process.name} did not stop within {timeout_s:.0f} s; '
                    'terminating it.')
        process.terminate()
        process.join(5.0)
      if process.is_alive():
        process.kill()
        process.join(5.0)
    for q in (self._tokens, self._reports):
      q.cancel_join_thread()  # Never block exit on undelivered tokens.
      q.close()
    self._processes = []
