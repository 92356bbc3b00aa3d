"""One run of the study: train a method under a data budget.

The synchronous loop (`num_actors=1`) interleaves one actor env step with,
every `env_steps_per_grad_step` env steps, one gradient step on a mixed batch,
so a run's count of updates is a pure function of its config (reproducible).
With `num_actors > 1` actor processes (`learners.distributed`) collect the
episodes the learner hands out and report them; the learner replays their env
steps through the same rule to know which gradient steps are due, so the count
of updates is the same function of the env steps as in the synchronous loop.
Order:

  1. checks (budget, method vs dataset, workdir) before any work;
  2. offline pre-training steps (offline-only methods: all `grad_steps`;
     AWAC: until its offline fraction leaves 1.0);
  3. online phase until offline + online episodes = budget, gradient steps
     starting once the replay holds `min_replay_size` transitions;
  4. final checkpoint and final evaluation.

Checkpoint commit order (online phase: at episode boundaries only, so no
episode is half-counted; with several actors the learner first stops handing
out episodes and waits until every one in flight is reported): Reverb
checkpoint -> state snapshot (ledger + replay checkpoint path) -> learner
checkpoint.  The learner checkpoint is the commit;
a resume reads the snapshot of the learner's step and drops anything newer.
"""

import collections
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from typing import Optional

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from envs import specs
from envs import teachers as teachers_lib
from learners import actors as actors_lib
from learners import checkpointing
from learners import distributed
from learners import evaluation
from learners import ledger as ledger_lib
from learners import learner as learner_lib
from learners import methods as methods_lib
from learners import mixer as mixer_lib
from learners import networks
from learners import replay as replay_lib
from learners import schedules
from pipelines import episode_log

CONFIG_FILE = 'config.json'
EVAL_FILE = 'eval.json'
METRICS_FILE = 'metrics.jsonl'
STATE_DIR = os.path.join('checkpoints', 'state')
REPLAY_DIR = os.path.join('checkpoints', 'replay')
EPISODE_LOG_DIR = 'episodes'
TENSORBOARD_DIR = 'tensorboard'
SUCCESS_WINDOW = 200  # Online episodes in the success curve (Fig. 6/7).

# Fields that must match between a run and its resume.
_IDENTITY_FIELDS = ('method', 'triplet', 'teacher', 'obs', 'budget', 'offline_episodes',
                    'seed', 'batch_size', 'env_steps_per_grad_step', 'episode_steps',
                    'image_size', 'n_step', 'gamma', 'grad_steps', 'network_size',
                    'offline_pretrain_steps', 'min_replay_size', 'max_replay_size',
                    'beta', 'offline_fraction')


class TrainingError(RuntimeError):
  """A run stopped: NaN/Inf metric, replay or actor failure. Names the checkpoint."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Every knob of a run; `config.json` in the workdir is this, resolved."""
  method: str = 'R-CRR'
  triplet: str = 'triplet1'
  teacher: str = 'generalization'
  obs: str = 'state'
  budget: Optional[int] = None  # Episodes: offline_episodes + online episodes.
  offline_episodes: int = 0
  workdir: str = 'runs/default'
  data_dir: str = '~/tensorflow_datasets'
  build_dataset: bool = True  # Build a missing teacher dataset (Beam) instead of failing.
  build_workers: int = 2
  grad_steps: int = 1_000_000  # Offline-only methods.
  offline_pretrain_steps: Optional[int] = None  # None: from the method's schedule.
  env_steps_per_grad_step: int = 5
  num_actors: int = 1  # 1: synchronous, in this process; > 1: actor processes.
  variable_update_period: int = 100  # Env steps between an actor's weight fetches.
  batch_size: int = 64
  eval_every: int = 50_000  # Grad steps; 0 disables periodic evaluation.
  eval_episodes: int = 20
  final_eval_episodes: int = 200
  seed: int = 0
  episode_steps: int = specs.EPISODE_STEPS
  image_size: int = specs.DEFAULT_IMAGE_SIZE
  n_step: int = 1
  gamma: float = 0.99
  min_replay_size: int = 1_000
  max_replay_size: int = 1_000_000
  replay_timeout_ms: int = 120_000
  network_size: int = 256
  # The paper's sweeps (Fig. 5): replace the method row's teacher share of the
  # prior and its share of dataset items per batch by constants; None keeps the row's.
  beta: Optional[float] = None
  offline_fraction: Optional[float] = None
  checkpoint_every_s: float = 300.0
  checkpoint_every_episodes: int = 0  # 0: time-based only.
  log_every: int = 100  # Grad steps between metric summaries.
  resume: bool = False
  progress: bool = True
  offline_shuffle: int = 10_000
  # Fault injection for the resume test: SIGKILL self after this many online
  # episodes of this process (0: never).
  fault_kill_after_episodes: int = 0
  # Fault injection for the actor-failure test: actor process 0 SIGKILLs
  # itself after this many of its episodes (num_actors > 1 only; 0: never).
  fault_kill_actor_after_episodes: int = 0

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def method_key(name: str) -> str:
  return name.lower().replace('-', '_')


def resolve_method(name: str) -> methods_lib.Method:
  """'r_crr', 'R-CRR' or 'r-crr' -> the method row."""
  by_key = {method_key(m): m for m in methods_lib.METHODS}
  key = method_key(name)
  if key not in by_key:
    raise ValueError(f'Unknown method {name!r}; valid: {", ".join(sorted(by_key))}.')
  return methods_lib.get_method(by_key[key])


def apply_overrides(method: methods_lib.Method, beta: Optional[float],
                    offline_fraction: Optional[float]) -> methods_lib.Method:
  """The row with a run's `beta` / `offline_fraction` overrides, as constants."""
  changes = {}
  if beta is not None:
    if not 0.0 <= beta <= 1.0:
      raise ValueError(f'beta must be in [0, 1], got {beta}.')
    if method.prior == 'teacher':
      raise ValueError(f'{method.name} samples its prior from the teacher only; beta mixes '
                       'the teacher into a behavior or target prior (e.g. R-CRR, R-MPO).')
    changes['beta'] = schedules.Constant(float(beta))
  if offline_fraction is not None:
    if not is_online(method):
      raise ValueError(f'{method.name} is offline-only: every batch item is from the '
                       'dataset, so offline_fraction cannot be changed.')
    if not 0.0 <= offline_fraction < 1.0:
      raise ValueError(f'offline_fraction of an online method must be in [0, 1), got '
                       f'{offline_fraction} (1 would make it offline-only).')
    changes['offline_fraction'] = schedules.Constant(float(offline_fraction))
  return dataclasses.replace(method, **changes) if changes else method


def is_online(method: methods_lib.Method) -> bool:
  return method.offline_fraction != schedules.Constant(1.0)


def default_pretrain_steps(method: methods_lib.Method) -> int:
  """Steps before an online method first wants replay items (AWAC: 500 k)."""
  schedule = method.offline_fraction
  if isinstance(schedule, schedules.Piecewise):
    steps = 0
    for step, value in schedule.knots:
      if value < 1.0:
        break
      steps = step
    return steps
  if isinstance(schedule, schedules.Linear) and schedule.start >= 1.0:
    return schedule.begin_step
  return 0


def check_config(config: RunConfig) -> tuple[methods_lib.Method, int]:
  """All checks that need no work; returns the method and its online budget."""
  method = apply_overrides(resolve_method(config.method), config.beta,
                           config.offline_fraction)
  online = is_online(method)
  online_budget = ledger_lib.check_budget(config.budget, config.offline_episodes, online)
  uses_dataset = online and method.offline_fraction(0) > 0 or not online
  if method.offline_fraction == schedules.Constant(0.0) and config.offline_episodes:
    raise ledger_lib.BudgetError(
        f'{method.name} learns from replay only; its {config.offline_episodes} '
        'offline episodes would spend budget without being used. Pass --offline_episodes 0.')
  if uses_dataset and config.offline_episodes == 0:
    raise ledger_lib.BudgetError(f'{method.name} samples the teacher dataset; pass '
                                 '--offline_episodes > 0.')
  for name in ('batch_size', 'env_steps_per_grad_step', 'episode_steps', 'num_actors',
               'n_step', 'min_replay_size', 'variable_update_period'):
    if getattr(config, name) < 1:
      raise ValueError(f'{name} must be >= 1, got {getattr(config, name)}.')
  return method, online_budget


def teacher_dataset_name(config: RunConfig) -> str:
  from pipelines import teacher_config  # pylint: disable=g-import-not-at-top
  return teacher_config.config_name(config.triplet, config.teacher, config.obs,
                                    config.offline_episodes,
                                    episode_steps=config.episode_steps,
                                    image_size=config.image_size)


def load_or_build_dataset(config: RunConfig, log=print) -> tf.data.Dataset:
  """The nested teacher dataset of size `offline_episodes` (built if missing)."""
  from pipelines import build_teacher_datasets  # pylint: disable=g-import-not-at-top
  from pipelines import teacher_dataset  # pylint: disable=g-import-not-at-top
  data_dir = os.path.expanduser(config.data_dir)
  name = teacher_dataset_name(config)
  try:
    return teacher_dataset.load_teacher_dataset(name, data_dir)
  except teacher_dataset.TeacherDatasetError as e:
    if not config.build_dataset:
      raise
    log(f'Teacher dataset {name} is not usable in {data_dir}:\n  {e}\nBuilding it now '
        f'with the Beam job ({config.build_workers} workers); this simulates '
        f'{config.offline_episodes} teacher episodes.')
  job = build_teacher_datasets.JobConfig(
      triplets=[config.triplet], teachers=[config.teacher], obs_modes=[config.obs],
      sizes=[config.offline_episodes], data_dir=data_dir,
      episode_steps=config.episode_steps, image_size=config.image_size, overwrite=True)
  build_teacher_datasets.run(job, build_teacher_datasets.local_beam_options(
      [], config.build_workers))
  return teacher_dataset.load_teacher_dataset(name, data_dir)


def _has_checkpoint_data(workdir: str) -> bool:
  directory = checkpointing.checkpoint_dir(workdir)
  return os.path.isdir(directory) and bool(os.listdir(directory))


def prepare_workdir(config: RunConfig) -> bool:
  """Creates/checks the workdir; returns True if the run resumes."""
  workdir = config.workdir
  has_ckpt = _has_checkpoint_data(workdir)
  if has_ckpt and not config.resume:
    raise FileExistsError(
        f'{workdir} holds checkpoints of an earlier run; pass --resume to continue it, '
        'or choose a new --workdir. Refusing to re-initialise it.')
  config_path = os.path.join(workdir, CONFIG_FILE)
  if has_ckpt and os.path.exists(config_path):
    with open(config_path) as f:
      saved = json.load(f)
    diffs = {k: (saved.get(k), getattr(config, k)) for k in _IDENTITY_FIELDS
             if saved.get(k) != getattr(config, k)}
    if diffs:
      raise ValueError(f'--resume with settings that differ from {config_path}: '
                       + ', '.join(f'{k}: saved {a!r}, now {b!r}' for k, (a, b) in diffs.items()))
    saved_actors = saved.get('num_actors', 1)
    if (saved_actors > 1) != (config.num_actors > 1):
      # Their Reverb checkpoints hold different tables (`variables` with actors).
      raise ValueError(f'--resume with --num_actors {config.num_actors}, but the run was '
                       f'started with {saved_actors}: a run cannot switch between the '
                       'synchronous loop (1) and actor processes (> 1).')
  if not has_ckpt and os.path.isdir(workdir):
    stale = [p for p in (STATE_DIR, REPLAY_DIR, EPISODE_LOG_DIR)
             if os.path.exists(os.path.join(workdir, p))]
    if stale and not config.resume:
      raise FileExistsError(f'{workdir} holds {", ".join(stale)} from an earlier run but no '
                            'learner checkpoint; choose a new --workdir.')
  os.makedirs(workdir, exist_ok=True)
  return has_ckpt


def _state_path(workdir: str, step: int) -> str:
  return os.path.join(workdir, STATE_DIR, f'state-{step}.json')


class _Run:
  """The state of one run in this process (built by `train`)."""

  def __init__(self, config: RunConfig, log=print):
    self.config = config
    self.log = log
    self.method, self.online_budget = check_config(config)
    self.online = is_online(self.method)
    self.pretrain_steps = (config.offline_pretrain_steps
                           if config.offline_pretrain_steps is not None
                           else default_pretrain_steps(self.method))
    self.resuming = prepare_workdir(config)
    self.workdir = config.workdir
    with open(os.path.join(self.workdir, CONFIG_FILE), 'w') as f:
      json.dump(dict(config.to_json(), method_row=repr(self.method),
                     pretrain_steps_resolved=self.pretrain_steps), f, indent=1)

    self.episodes_ds = None
    if config.offline_episodes:
      self.episodes_ds = load_or_build_dataset(config, log)
    teacher = (teachers_lib.make_teacher(config.teacher, config.triplet)
               if self.method.uses_teacher else None)
    nets = networks.NetworkConfig(encoder_size=config.network_size,
                                  policy_torso=(config.network_size,),
                                  critic_torso=(config.network_size,))
    self.learner = learner_lib.Learner(
        self.method, learner_lib.LearnerConfig(obs_mode=config.obs,
                                               image_size=config.image_size,
                                               nets=nets, seed=config.seed),
        teacher=teacher, workdir=self.workdir)

    self.ledger = ledger_lib.Ledger(budget=config.offline_episodes + self.online_budget,
                                    offline_episodes=config.offline_episodes)
    replay_checkpoint = None
    if self.resuming:
      if not self.learner.restore():
        raise TrainingError(f'No learner checkpoint to resume in {self.workdir}.')
      step = self.learner.num_steps
      state_path = _state_path(self.workdir, step)
      if not os.path.exists(state_path):
        raise TrainingError(f'Learner checkpoint at step {step} has no state snapshot '
                            f'{state_path}; the checkpoint is incomplete.')
      with open(state_path) as f:
        state = json.load(f)
      self.ledger = ledger_lib.Ledger(**state['ledger'])
      self.ledger.resumes += 1
      replay_checkpoint = state.get('replay_checkpoint')
      log(f'Resuming {self.workdir} at grad step {step}: '
          f'{self.ledger.spent}/{self.ledger.budget} episodes spent.')
    if self.ledger.grad_steps != self.learner.num_steps:
      raise TrainingError(f'Ledger grad steps {self.ledger.grad_steps} != learner steps '
                          f'{self.learner.num_steps}.')
    self.clock = ledger_lib.WallClock(self.ledger)

    self.replay = None
    self.actor = None
    self.pool = None
    self.due_steps = self.ledger.grad_steps  # Multi-actor: grad steps the env steps call for.
    online_buffer = None
    if self.online:
      replay_dir = os.path.join(self.workdir, REPLAY_DIR)
      _prune_replay_checkpoints(replay_dir, keep=replay_checkpoint)
      extra_tables = ()
      if config.num_actors > 1:
        extra_tables = (distributed.variables_table(
            distributed.variables_signature(self.learner.policy.variables)),)
      self.replay = replay_lib.ReplayServer(
          replay_lib.ReplayConfig(max_size=config.max_replay_size,
                                  min_size=config.min_replay_size,
                                  rate_limiter='min_size',
                                  timeout_ms=config.replay_timeout_ms),
          config.obs, config.image_size, burst=config.episode_steps,
          checkpoint_dir=replay_dir, extra_tables=extra_tables)
      actor_config = actors_lib.ActorConfig(
          triplet=config.triplet, obs_mode=config.obs, reward=self.method.reward,
          episode_steps=config.episode_steps, image_size=config.image_size,
          n_step=config.n_step, gamma=config.gamma, seed=config.seed,
          method=method_key(self.method.name),
          teacher=config.teacher if self.method.uses_teacher else '',
          run_id=os.path.basename(os.path.abspath(self.workdir)))
      log_root = os.path.join(self.workdir, EPISODE_LOG_DIR)
      if config.num_actors == 1:
        writer = replay_lib.TransitionWriter(self.replay.address, config.replay_timeout_ms)
        self.actor = actors_lib.Actor(
            actor_config, actors_lib.StudentPolicy(self.learner.distribution), log_root,
            writer, first_episode=self.ledger.online_episodes)
        previous_segments = self.actor.previous_log_segments
      else:
        # Repaired and counted here, before any actor process writes to the log.
        previous_segments = episode_log.recover_segments(log_root)
        self.pool = distributed.ActorPool(distributed.PoolConfig(
            num_actors=config.num_actors, actor=actor_config, address=self.replay.address,
            log_root=log_root, nets=nets, timeout_ms=config.replay_timeout_ms,
            variable_update_period=config.variable_update_period,
            fault_kill_after_episodes=config.fault_kill_actor_after_episodes), log)
      if previous_segments:  # A resume, or a start killed before its first checkpoint.
        logged = _count_episodes(previous_segments)
        newly_discarded = logged - self.ledger.online_episodes - self.ledger.discarded_episodes
        if newly_discarded < 0:
          raise TrainingError(f'The episode log holds {logged} episodes but the ledger counts '
                              f'{self.ledger.online_episodes} trained + '
                              f'{self.ledger.discarded_episodes} discarded: log lost.')
        self.ledger.discarded_episodes += newly_discarded
        if newly_discarded:
          log(f'{newly_discarded} online episodes were logged after the last checkpoint; '
              'they stay on disk but are not trained on or counted in the budget.')
      if self.resuming:
        replay_size = self.replay.size()
        if replay_size != min(self.ledger.replay_inserts, config.max_replay_size):
          raise TrainingError(f'Restored replay holds {replay_size} items, the ledger '
                              f'expects {self.ledger.replay_inserts} (was the run killed '
                              'between its replay and learner checkpoints?).')
      online_buffer = mixer_lib.ItemBuffer(self._online_batches())

    offline_buffer = None
    if self.episodes_ds is not None:
      start = self.ledger.offline_items
      expected = self._offline_items_for(self.ledger.grad_steps)
      if start != expected:
        raise TrainingError(f'Ledger offline items {start} != {expected} implied by the '
                            'schedule at this step.')
      offline_buffer = mixer_lib.ItemBuffer(mixer_lib.offline_chunks(
          self.episodes_ds, config.offline_episodes * config.episode_steps, config.seed,
          start_item=start, config=mixer_lib.OfflineStreamConfig(
              n_step=config.n_step, gamma=config.gamma,
              item_shuffle=config.offline_shuffle)))
    self.mixer = mixer_lib.Mixer(config.batch_size, self._offline_fraction,
                                 offline_buffer, online_buffer)
    self.prefetcher = mixer_lib.Prefetcher(
        self.mixer, prepare=lambda b: (b, self.learner.teacher_labels(b)))
    self.evaluator = evaluation.Evaluator(config.triplet, config.obs, config.episode_steps,
                                          config.image_size)
    self.summary = tf.summary.create_file_writer(os.path.join(self.workdir, TENSORBOARD_DIR))
    self.successes = collections.deque(maxlen=SUCCESS_WINDOW)
    self.evals = _read_evals(self.workdir) if self.resuming else []
    self.last_checkpoint_time = time.monotonic()
    self.episodes_since_checkpoint = 0
    self.episodes_this_process = 0
    self.last_checkpoint = self.learner.checkpointer.latest
    # This process only (not saved): where the learner's time goes.  The
    # first grad step (tf.function tracing, stream start-up) is kept apart so
    # that data_wait_s and learner_s describe the steady state.
    self.timing = collections.Counter(data_wait_s=0.0, learner_s=0.0, actor_s=0.0,
                                      actor_wait_s=0.0, first_step_s=0.0)
    self._first_step = True

  # --- data ------------------------------------------------------------------

  def _offline_fraction(self, step: int) -> float:
    # Before the online phase, batches are all offline (AWAC's pre-training).
    if step < self.pretrain_steps:
      return 1.0
    return self.method.offline_fraction(step)

  def _offline_items_for(self, step: int) -> int:
    return mixer_lib.offline_items_before(step, self._offline_fraction, self.config.batch_size)

  def _online_batches(self):
    # Created lazily: sampling starts only once the learner asks for replay items.
    yield from replay_lib.numpy_batches(self.replay.address, self.config.batch_size,
                                        self.config.replay_timeout_ms)

  # --- steps -----------------------------------------------------------------

  def grad_step(self) -> None:
    step = self.ledger.grad_steps
    k = self.mixer.num_offline(step)
    start = time.perf_counter()
    batch, teacher_labels = self.prefetcher.batch(step)
    fetched = time.perf_counter()
    if self._ready(step + 1):
      self.prefetcher.prefetch(step + 1)
    try:
      metrics = self.learner.step(batch, teacher_labels)
    except learner_lib.NonFiniteError as e:
      self.ledger.write(self.workdir)
      raise TrainingError(f'{e} Stopped; last checkpoint: {self.last_checkpoint}.') from e
    if self._first_step:
      self.timing['first_step_s'] += time.perf_counter() - start
      self._first_step = False
    else:
      self.timing['data_wait_s'] += fetched - start
      self.timing['learner_s'] += time.perf_counter() - fetched
    self.ledger.grad_steps += 1
    self.ledger.offline_items += k
    self.ledger.online_items += self.config.batch_size - k
    if step % self.config.log_every == 0:
      self._log_metrics(step, metrics)
    if self.config.eval_every and self.ledger.grad_steps % self.config.eval_every == 0:
      self.evaluate(self.config.eval_episodes, 'eval')

  def _log_metrics(self, step: int, metrics: dict) -> None:
    self.clock.tick()
    with self.summary.as_default():
      for name, value in metrics.items():
        tf.summary.scalar(f'learner/{name}', value, step=step)
      self.ledger.summarise(step)
    with open(os.path.join(self.workdir, METRICS_FILE), 'a') as f:
      f.write(json.dumps(dict(grad_step=step, **metrics)) + '\n')

  def evaluate(self, episodes: int, label: str) -> evaluation.EvalResult:
    result = self.evaluator.run(actors_lib.StudentPolicy(self.learner.distribution),
                                episodes, self.ledger.grad_steps)
    self.ledger.eval_episodes += episodes
    self.evals.append(dict(result.as_dict(), label=label, spent=self.ledger.spent))
    ledger_lib.write_json_atomic(os.path.join(self.workdir, EVAL_FILE), self.evals)
    with self.summary.as_default():
      tf.summary.scalar(f'{label}/success', result.success_rate, step=result.grad_step)
      tf.summary.scalar(f'{label}/return', result.mean_return, step=result.grad_step)
    self.log(evaluation.format_result(result, label))
    return result

  def on_episode(self, result: actors_lib.EpisodeResult) -> None:
    self.ledger.add_online_episode()
    self.ledger.replay_inserts += result.items
    self.successes.append(float(result.success))
    self.episodes_since_checkpoint += 1
    self.episodes_this_process += 1
    with self.summary.as_default():
      tf.summary.scalar('online/success_window', np.mean(self.successes),
                        step=self.ledger.online_episodes)
      tf.summary.scalar('online/return', result.episode_return,
                        step=self.ledger.online_episodes)

  def checkpoint(self) -> str:
    self.clock.tick()
    replay_path = self.replay.checkpoint() if self.replay is not None else None
    step = self.ledger.grad_steps
    os.makedirs(os.path.join(self.workdir, STATE_DIR), exist_ok=True)
    ledger_lib.write_json_atomic(_state_path(self.workdir, step),
                                 dict(ledger=dataclasses.asdict(self.ledger),
                                      replay_checkpoint=replay_path))
    path = self.learner.save()  # The commit point.
    self.ledger.write(self.workdir)
    if replay_path:
      _prune_replay_checkpoints(os.path.join(self.workdir, REPLAY_DIR), keep=replay_path)
    self.last_checkpoint = path
    self.last_checkpoint_time = time.monotonic()
    self.episodes_since_checkpoint = 0
    return path

  def checkpoint_due(self) -> bool:
    c = self.config
    if c.checkpoint_every_episodes and self.episodes_since_checkpoint >= c.checkpoint_every_episodes:
      return True
    return time.monotonic() - self.last_checkpoint_time >= c.checkpoint_every_s

  # --- phases ----------------------------------------------------------------

  def offline_phase(self, until: int) -> None:
    remaining = until - self.ledger.grad_steps
    if remaining <= 0:
      return
    with tqdm(total=until, initial=self.ledger.grad_steps, desc='offline grad steps',
              unit='step', disable=not self.config.progress or None) as bar:
      while self.ledger.grad_steps < until:
        self.grad_step()
        bar.update(1)
        if self.checkpoint_due():
          self.checkpoint()

  def online_phase(self) -> None:
    if self.pool is not None:
      self._online_phase_actors()
      return
    c = self.config
    ledger = self.ledger
    with tqdm(total=ledger.budget, initial=ledger.spent, desc='budget (episodes)',
              unit='ep', disable=not c.progress or None) as bar:
      while not ledger.budget_spent:
        start = time.perf_counter()
        result = self.actor.step(ledger.grad_steps)
        self.timing['actor_s'] += time.perf_counter() - start
        ledger.env_steps += 1
        if result is not None:
          self.on_episode(result)
          bar.update(1)
        if ledger.env_steps % c.env_steps_per_grad_step == 0 and self._ready():
          self.grad_step()
        if result is not None and not ledger.budget_spent and self.checkpoint_due():
          self.checkpoint()
        if (result is not None and c.fault_kill_after_episodes
            and self.episodes_this_process >= c.fault_kill_after_episodes):
          os.kill(os.getpid(), 9)

  def _online_phase_actors(self) -> None:
    """The learner's side of the multi-actor mode: hand out, count, step.

    Episode tokens go out while fewer than `num_actors` episodes are in flight
    and the learner is at most `num_actors` episodes' worth of updates behind
    (so the actors' policy lag stays bounded); it never hands out more than
    the online budget.  Before a checkpoint it stops handing out and waits for
    every episode in flight, so a checkpoint holds episodes 0..n-1 exactly and
    a resume hands out tokens from n on.
    """
    c = self.config
    ledger = self.ledger
    online_budget = ledger.budget - ledger.offline_episodes
    max_lag = c.num_actors * math.ceil(c.episode_steps / c.env_steps_per_grad_step)
    publish_every = max(1, c.variable_update_period // c.env_steps_per_grad_step)
    publisher = distributed.VariablePublisher(
        self.replay.address, self.learner.policy.variables, c.replay_timeout_ms)
    try:
      publisher.publish(ledger.grad_steps)  # Before any actor asks for weights.
      start = time.perf_counter()
      self.pool.start()
      self.timing['actor_start_s'] += time.perf_counter() - start
      next_index = ledger.online_episodes
      with tqdm(total=ledger.budget, initial=ledger.spent, desc='budget (episodes)',
                unit='ep', disable=not c.progress or None) as bar:
        while True:
          pause = not ledger.budget_spent and self.checkpoint_due()
          if pause and self.pool.in_flight == 0 and ledger.grad_steps == self.due_steps:
            self.checkpoint()
            continue
          while (not pause and self.pool.in_flight < c.num_actors
                 and next_index < online_budget
                 and self.due_steps - ledger.grad_steps <= max_lag):
            self.pool.issue(next_index)
            next_index += 1
          if ledger.grad_steps < self.due_steps:
            self.grad_step()
            if ledger.grad_steps % publish_every == 0:
              publisher.publish(ledger.grad_steps)
            results = self.pool.poll(0.0)
          elif ledger.budget_spent:
            break
          else:
            start = time.perf_counter()
            results = self.pool.poll(0.2)
            self.timing['actor_wait_s'] += time.perf_counter() - start
          for result in results:
            self._account_episode(result)
            bar.update(1)
          if (results and c.fault_kill_after_episodes
              and self.episodes_this_process >= c.fault_kill_after_episodes):
            os.kill(os.getpid(), 9)
      # All episodes are reported; the actors close their logs and exit.
      self.pool.stop()
    finally:
      publisher.close()

  def _account_episode(self, result: actors_lib.EpisodeResult) -> None:
    """Counts a reported episode and the grad steps its env steps make due.

    Replays the synchronous loop's rule step by step: the episode's items
    count at its last env step, and every `env_steps_per_grad_step`-th env
    step calls for a grad step if the replay is ready for it then.
    """
    start = self.ledger.env_steps
    for t in range(start + 1, start + result.steps + 1):
      if t == start + result.steps:
        self.on_episode(result)
      if t % self.config.env_steps_per_grad_step == 0 and self._ready(self.due_steps):
        self.due_steps += 1
    self.ledger.env_steps += result.steps

  def _ready(self, step: Optional[int] = None) -> bool:
    step = self.ledger.grad_steps if step is None else step
    if not self.mixer.needs_online(step):
      return True
    return self.ledger.replay_inserts >= self.config.min_replay_size

  def close(self, failed: bool = False) -> None:
    # A batch still being sampled finishes before Reverb stops under it.
    self.prefetcher.close(timeout_s=1.0 if failed else self.config.replay_timeout_ms / 1000)
    if self.pool is not None:
      # After a failure the actors' work is moot: terminate them at once.
      self.pool.stop(timeout_s=0.0 if failed else None)
    self.evaluator.close()
    if self.actor is not None:
      self.actor.close()
    if self.replay is not None:
      self.replay.stop()
    self.summary.flush()


def _count_episodes(segments) -> int:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return sum(tfds.builder_from_directory(s).info.splits['train'].num_examples
             for s in segments)


def _prune_replay_checkpoints(directory: str, keep: Optional[str]) -> None:
  """Keeps only Reverb's checkpoint `keep` (Reverb restores the newest one it finds)."""
  if not os.path.isdir(directory):
    return
  keep_name = os.path.basename(os.path.normpath(keep)) if keep else None
  for name in os.listdir(directory):
    path = os.path.join(directory, name)
    if os.path.isdir(path) and name != keep_name:
      shutil.rmtree(path)


def _read_evals(workdir: str) -> list:
  path = os.path.join(workdir, EVAL_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return json.load(f)


def train(config: RunConfig, log=print) -> dict:
  """Runs (or resumes) a run to its end; returns the final summary."""
  run = _Run(config, log)
  failed = True
  try:
    if run.online:
      run.offline_phase(run.pretrain_steps)
      start = time.perf_counter()
      run.online_phase()
      run.timing['online_s'] += time.perf_counter() - start
    else:
      run.offline_phase(config.grad_steps)
    run.checkpoint()
    final = run.evaluate(config.final_eval_episodes, 'final')
    run.ledger.done = True
    run.clock.tick()
    run.ledger.write(config.workdir)
    summary = dict(ledger=run.ledger.as_dict(), final_eval=final.as_dict(),
                   checkpoint=run.last_checkpoint, workdir=config.workdir,
                   timing=dict(run.timing))
    ledger_lib.write_json_atomic(os.path.join(config.workdir, 'summary.json'), summary)
    failed = False
    return summary
  except replay_lib.ReplayError as e:
    raise TrainingError(f'Replay failure at grad step {run.ledger.grad_steps}: {e} '
                        f'Last checkpoint: {run.last_checkpoint}.') from e
  except distributed.ActorError as e:
    run.ledger.write(config.workdir)
    raise TrainingError(f'{e}\nStopped at grad step {run.ledger.grad_steps} with '
                        f'{run.ledger.online_episodes} online episodes counted; last '
                        f'checkpoint: {run.last_checkpoint or "none yet"}'
                        f'{"; continue with --resume" if run.last_checkpoint else ""}.') from e
  finally:
    run.close(failed)
    sys.stdout.flush()
