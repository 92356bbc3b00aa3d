"""One run of the study: train a method under a data budget (`train`).

The synchronous loop (`num_actors=1`) interleaves one actor env step with the
gradient steps `grad_schedule` says are due, so a run's count of updates is a
pure function of its config (reproducible).  With `num_actors > 1` actor
processes (`distributed`) collect the episodes the learner hands out and
report them; the learner applies the same schedule to their env steps, so the
count of updates is the same function of the env steps.  Order:

  1. checks (budget, method vs dataset, workdir) before any work (`setup.build`);
  2. offline pre-training steps (offline-only methods: all `grad_steps`;
     AWAC: until its offline fraction leaves 1.0);
  3. online phase until offline + online episodes = budget, gradient steps
     starting once the replay holds `min_replay_size` transitions;
  4. final checkpoint and final evaluation.

The online phase starts by ingesting the complete episodes an earlier process
of the run logged but did not count (`recovery`): a crash loses at most the
episode in flight per actor.  SIGTERM/SIGINT (`stopping`) stop the loops at
their next safe point with a final checkpoint and raise `config.Stopped`.

Checkpoint commit order (online phase: at episode boundaries only, so no
episode is half-counted; with several actors the learner first stops handing
out episodes and waits until every one in flight is reported): Reverb
checkpoint -> state snapshot (ledger + replay checkpoint path) -> learner
checkpoint.  The learner checkpoint is the commit; a resume reads the
snapshot of the learner's step and drops anything newer (Reverb keeps only its
newest checkpoint, so after a kill between the two the replay is rebuilt from
the episode log).
"""

import collections
import dataclasses
import json
import os
import sys
import time
from typing import Optional

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from learners import learner as learner_lib
from learners.training import actors as actors_lib
from learners.training import config as config_lib
from learners.training import distributed
from learners.training import evaluation
from learners.training import faults
from learners.training import grad_schedule
from learners.training import ledger as ledger_lib
from learners.training import mixer as mixer_lib
from learners.training import online_actors
from learners.training import overlap
from learners.training import recovery
from learners.training import replay as replay_lib
from learners.training import setup
from learners.training import stopping
from learners.training import workdir as workdir_lib

# How many grad steps the overlapped learner may fall behind the env steps that
# call for them before the actor waits: the actor's weights are at most this stale.
_OVERLAP_MAX_LAG = 4

SUCCESS_WINDOW = 200  # Online episodes in the success curve (Fig. 6/7).
_PROGRESS_EVERY_S = 5.0
TrainingError = config_lib.TrainingError


class Run:
  """The state of one run in this process: its parts, counters and outputs."""

  def __init__(self, config: config_lib.RunConfig, parts: setup.Parts, log=print,
               stop: Optional[stopping.StopRequest] = None):
    self.config = config
    self.stop = stop or stopping.StopRequest()
    self.parts = parts
    self.log = log
    self.learner, self.ledger = parts.learner, parts.ledger
    self.workdir = config.workdir
    self.schedule = grad_schedule.GradSchedule(config.env_steps_per_grad_step,
                                               config.min_replay_size, parts.mixer.needs_online,
                                               config.grad_steps_per_update)
    # Online runs bound the wait for a batch: a lost Reverb server would block
    # its sampler for ever.  The slack covers the offline stream's start-up.
    self.prefetcher = mixer_lib.Prefetcher(
        parts.mixer, prepare=lambda b: (b, self.learner.teacher_labels(b)),
        timeout_s=config.replay_timeout_ms / 1000 + 30 if parts.replay else None)
    self.clock = ledger_lib.WallClock(self.ledger)
    self.summary = tf.summary.create_file_writer(
        os.path.join(self.workdir, workdir_lib.TENSORBOARD_DIR))
    self.successes = collections.deque(maxlen=SUCCESS_WINDOW)
    self.evals = (workdir_lib.read_json(os.path.join(self.workdir, workdir_lib.EVAL_FILE), [])
                  if parts.resuming else [])
    self.last_checkpoint = self.learner.checkpointer.latest
    self.last_checkpoint_time = time.monotonic()
    self.episodes_since_checkpoint = 0
    self.episodes_this_process = 0
    # This process only (not saved): where the learner's time goes.  The
    # first grad step (tf.function tracing, stream start-up) is kept apart so
    # that data_wait_s and learner_s describe the steady state.
    self._progress_written = -_PROGRESS_EVERY_S
    self.timing = collections.Counter(data_wait_s=0.0, learner_s=0.0, actor_s=0.0,
                                      actor_wait_s=0.0, first_step_s=0.0, eval_s=0.0)
    self._first_step = True

  def ready(self, step: int) -> bool:
    return self.schedule.ready(step, self.ledger.replay_inserts)

  # --- steps -----------------------------------------------------------------

  def grad_steps(self, k: int = 1, next_k: int = 1) -> None:
    """k grad steps in one learner call; starts building the next call's `next_k`."""
    step = self.ledger.grad_steps
    offline = sum(self.parts.mixer.num_offline(s) for s in range(step, step + k))
    start = time.perf_counter()
    try:
      batches, teacher_labels = self.prefetcher.batch(step, k)
    except TimeoutError as e:
      raise replay_lib.ReplayError(f'{e} Is the Reverb server gone?') from e
    fetched = time.perf_counter()
    if next_k and self.ready(step + k):
      self.prefetcher.prefetch(step + k, next_k)
    try:
      metrics = self.learner.steps(batches, teacher_labels)
    except learner_lib.NonFiniteError as e:
      self.ledger.write(self.workdir)
      raise TrainingError(f'{e} Stopped; last checkpoint: {self.last_checkpoint}.') from e
    if self._first_step:
      self.timing['first_step_s'] += time.perf_counter() - start
      self._first_step = False
    else:
      self.timing['data_wait_s'] += fetched - start
      self.timing['learner_s'] += time.perf_counter() - fetched
    self.ledger.grad_steps += k
    self.ledger.offline_items += offline
    self.ledger.online_items += k * self.config.batch_size - offline
    for i, s in enumerate(range(step, step + k)):
      if s % self.config.log_every == 0:
        self._log_metrics(s, {name: float(values[i]) for name, values in metrics.items()})
    if self.config.eval_every and self.ledger.grad_steps % self.config.eval_every == 0:
      self.evaluate(self.config.eval_episodes, 'eval')
      if self.learner.evaluates_average:  # The EMA's effect, measured on the same seeds.
        self.evaluate(self.config.eval_episodes, 'eval_raw', self.learner.distribution)

  def grad_steps_until(self, due: int, per_call: int = 1) -> None:
    """The online phases: the steps the env steps made due, `per_call` at most per call."""
    while self.ledger.grad_steps < due:
      self.online_call(due, per_call)

  def online_call(self, due: int, per_call: int) -> None:
    """One call of the due steps (a call already prefetched for this step keeps
    its size); prefetches the next call's, or one step ahead if none is due yet."""
    step = self.ledger.grad_steps
    k = self.prefetcher.pending_steps(step) or self.call_size(step, due, per_call)
    self.grad_steps(k, next_k=self.call_size(step + k, due, per_call) or 1)

  def call_size(self, step: int, until: int, per_call: Optional[int] = None) -> int:
    """Steps in the call at `step`: up to `per_call` (offline phases:
    `grad_steps_per_call`), ending at `until` and at evaluation steps (0 at `until`)."""
    k = min(per_call or self.config.grad_steps_per_call, until - step)
    if self.config.eval_every:
      k = min(k, self.config.eval_every - step % self.config.eval_every)
    return max(k, 0)

  def _log_metrics(self, step: int, metrics: dict) -> None:
    self.clock.tick()
    with self.summary.as_default():
      for name, value in metrics.items():
        tf.summary.scalar(f'learner/{name}', value, step=step)
      counters = self.ledger.as_dict()
      for name in ledger_lib.SUMMARY_FIELDS:
        tf.summary.scalar(f'ledger/{name}', counters[name], step=step)
    with open(os.path.join(self.workdir, workdir_lib.METRICS_FILE), 'a') as f:
      f.write(json.dumps(dict(grad_step=step, **metrics)) + '\n')
    self.write_progress()

  def write_progress(self) -> None:
    """A few live numbers for the study runner's progress lines (at most every 5 s)."""
    now = time.monotonic()
    if now - self._progress_written < _PROGRESS_EVERY_S:
      return
    self._progress_written = now
    evals = [e for e in self.evals if e['label'] in ('eval', 'final')]
    workdir_lib.write_json_atomic(os.path.join(self.workdir, workdir_lib.PROGRESS_FILE), dict(
        spent=self.ledger.spent, budget=self.ledger.budget, grad_steps=self.ledger.grad_steps,
        online_success=float(np.mean(self.successes)) if self.successes else None,
        eval_success=evals[-1]['success_rate'] if evals else None, time=time.time()))

  def evaluate(self, episodes: int, label: str,
               distribution_fn=None) -> evaluation.EvalResult:
    """Evaluates `distribution_fn` (default: the learner's evaluation policy)."""
    start = time.perf_counter()
    policy = actors_lib.StudentPolicy(distribution_fn or self.learner.eval_distribution)
    result = self.parts.evaluator.run(policy, episodes, self.ledger.grad_steps)
    self.timing['eval_s'] += time.perf_counter() - start  # The study's cost model reads it.
    self.ledger.eval_episodes += episodes
    self.evals.append(dict(result.as_dict(), label=label, spent=self.ledger.spent))
    workdir_lib.write_json_atomic(os.path.join(self.workdir, workdir_lib.EVAL_FILE),
                                  self.evals)
    with self.summary.as_default():
      tf.summary.scalar(f'{label}/success', result.success_rate, step=result.grad_step)
      tf.summary.scalar(f'{label}/return', result.mean_return, step=result.grad_step)
    self.log(evaluation.format_result(result, label))
    return result

  def after_episode(self, result: actors_lib.EpisodeResult) -> None:
    """Counts a finished online episode (either loop), at its last env step."""
    self.ledger.add_online_episode(result.index)
    self.ledger.replay_inserts += result.items
    self.successes.append(float(result.success))
    self.episodes_since_checkpoint += 1
    self.episodes_this_process += 1
    self.write_progress()
    with self.summary.as_default():
      tf.summary.scalar('online/success_window', np.mean(self.successes),
                        step=self.ledger.online_episodes)
      tf.summary.scalar('online/return', result.episode_return,
                        step=self.ledger.online_episodes)
    faults.maybe_kill(faults.KILL_AFTER_EPISODES, self.episodes_this_process)
    faults.maybe_signal(faults.SIGTERM_AFTER_EPISODES, self.episodes_this_process)
    faults.maybe_stop(faults.STOP_REPLAY_AFTER_EPISODES, self.episodes_this_process,
                      self.parts.replay)

  def account_episode(self, result: actors_lib.EpisodeResult, due: int) -> int:
    """Counts an episode reported whole; returns the grad steps due after its env steps.

    Its transitions reach the replay at its last env step, as in the
    synchronous loop, so the count of updates is the one that loop would take.
    """
    ledger = self.ledger
    start = ledger.env_steps
    due = self.schedule.due(due, start, result.steps - 1, ledger.replay_inserts)
    self.after_episode(result)
    due = self.schedule.due(due, start + result.steps - 1, 1, ledger.replay_inserts)
    ledger.env_steps += result.steps
    return due

  def checkpoint(self) -> str:
    self.clock.tick()
    replay = self.parts.replay
    replay_path = replay.checkpoint() if replay is not None else None
    workdir_lib.write_state(self.workdir, self.ledger.grad_steps,
                            dict(ledger=dataclasses.asdict(self.ledger),
                                 replay_checkpoint=replay_path))
    faults.maybe_kill(faults.KILL_IN_CHECKPOINT, self.ledger.online_episodes)
    path = self.learner.save()  # The commit point.
    self.ledger.write(self.workdir)
    if replay_path:
      workdir_lib.prune_replay_checkpoints(self.workdir, keep=replay_path)
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

  def progress(self, **kwargs) -> tqdm:
    return tqdm(disable=not self.config.progress or None, **kwargs)

  def offline_phase(self, until: int) -> None:
    if until <= self.ledger.grad_steps:
      return
    with self.progress(total=until, initial=self.ledger.grad_steps,
                       desc='offline grad steps', unit='step') as bar:
      while self.ledger.grad_steps < until and not self.stop.requested:
        k = self.call_size(self.ledger.grad_steps, until)
        self.grad_steps(k, next_k=self.call_size(self.ledger.grad_steps + k, until))
        bar.update(k)
        if self.checkpoint_due():
          self.checkpoint()

  def online_phase(self) -> None:
    """The synchronous loop: one env step, then the grad steps it makes due."""
    if recovery.ingest(self):
      self.checkpoint()  # A second crash need not ingest them again.
    if self.parts.pool is not None:
      online_actors.online_phase(self)
      return
    ledger = self.ledger
    target = ledger.grad_steps  # Grad steps the env steps so far call for.
    learner = (overlap.LearnerThread(self.grad_steps, lambda: ledger.grad_steps,
                                     _OVERLAP_MAX_LAG)
               if self.config.overlap_learner else None)
    finished = False
    try:
      with self.progress(total=ledger.budget, initial=ledger.spent, desc='budget (episodes)',
                         unit='ep') as bar:
        while not ledger.budget_spent and not self.stop.requested:
          start = time.perf_counter()
          # The episode to begin (read at a reset) is the first one not counted yet.
          result = self.parts.actor.step(ledger.grad_steps, ledger.first_uncounted)
          self.timing['actor_s'] += time.perf_counter() - start
          ledger.env_steps += 1
          faults.maybe_kill(faults.KILL_AT_ENV_STEP, ledger.env_steps)
          if result is not None:
            self.after_episode(result)
            bar.update(1)
          target = self.schedule.due(target, ledger.env_steps - 1, 1, ledger.replay_inserts)
          if learner is None:
            self.grad_steps_until(target)
          else:
            start = time.perf_counter()
            learner.advance(target)
            self.timing['actor_wait_s'] += time.perf_counter() - start
          if result is not None and not ledger.budget_spent and self.checkpoint_due():
            if learner is not None:
              learner.drain()  # A checkpoint holds exactly the steps called for so far.
            self.checkpoint()
        if learner is not None:
          learner.drain()
      finished = True
    finally:
      if learner is not None:
        learner.stop(finish=finished)

  def close(self, failed: bool = False) -> None:
    # A batch still being sampled finishes before Reverb stops under it.
    self.prefetcher.close(timeout_s=1.0 if failed else self.config.replay_timeout_ms / 1000)
    if self.parts.pool is not None:
      # After a failure the actors' work is moot: terminate them at once.
      self.parts.pool.stop(timeout_s=0.0 if failed else None)
    self.parts.evaluator.close()
    if self.parts.actor is not None:
      self.parts.actor.close()
    if self.parts.replay is not None:
      self.parts.replay.stop()
    self.summary.flush()


def train(config: config_lib.RunConfig, log=print) -> dict:
  """Runs (or resumes) a run to its end; returns the final summary.

  Raises:
    config.Stopped: SIGTERM/SIGINT; a final checkpoint was written.
    config.TrainingError: the run failed; the message names its last checkpoint.
  """
  with stopping.StopRequest() as stop:
    run = Run(config, setup.build(config, log), log, stop)
    failed = True
    try:
      summary = _train(run)
      failed = False
      return summary
    except replay_lib.ReplayError as e:
      run.ledger.write(config.workdir)
      raise TrainingError(f'Replay failure at grad step {run.ledger.grad_steps}: {e}\n'
                          f'Last checkpoint: {run.last_checkpoint or "none yet"}'
                          '; continue with --resume.') from e
    except distributed.ActorError as e:
      run.ledger.write(config.workdir)
      raise TrainingError(f'{e}\nStopped at grad step {run.ledger.grad_steps} with '
                          f'{run.ledger.online_episodes} online episodes counted; last '
                          f'checkpoint: {run.last_checkpoint or "none yet"}'
                          '; continue with --resume.') from e
    finally:
      run.close(failed)
      sys.stdout.flush()


def _train(run: Run) -> dict:
  config = run.config
  if run.parts.method.is_online:
    run.offline_phase(run.parts.pretrain_steps)
    if not run.stop.requested:
      start = time.perf_counter()
      run.online_phase()
      run.timing['online_s'] += time.perf_counter() - start
  else:
    run.offline_phase(config.grad_steps)
  run.checkpoint()
  if run.stop.requested:
    name = stopping.signal_name(run.stop.signum)
    raise config_lib.Stopped(
        f'{name}: stopped at grad step {run.ledger.grad_steps} with '
        f'{run.ledger.spent}/{run.ledger.budget} episodes spent; final checkpoint '
        f'{run.last_checkpoint}.', run.stop.signum)
  final = run.evaluate(config.final_eval_episodes, 'final')
  run.ledger.done = True
  run.clock.tick()
  run.ledger.write(config.workdir)
  timing = dict(run.timing)
  process_s = ledger_lib.process_age_s()
  if process_s is not None:
    timing['process_s'] = process_s  # Start-up included: the study's `run_overhead`.
  summary = dict(ledger=run.ledger.as_dict(), final_eval=final.as_dict(),
                 checkpoint=run.last_checkpoint, workdir=config.workdir, timing=timing)
  workdir_lib.write_json_atomic(os.path.join(config.workdir, workdir_lib.SUMMARY_FILE),
                                summary)
  return summary
