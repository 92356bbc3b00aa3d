"""The learner's side of the multi-actor online phase: hand out, count, step.

Episode tokens go out while fewer than `num_actors` episodes are in flight and
the learner is at most `num_actors` episodes' worth of updates behind (so the
actors' policy lag stays bounded); it never hands out more than the online
budget.  Each reported episode makes grad steps due by the same
`grad_schedule` as the synchronous loop.  Before a checkpoint the learner
stops handing out and waits for every episode in flight, so a checkpoint
holds every episode handed out; a resume ingests the complete episodes logged
after it (`recovery`) and hands out the others again.  SIGTERM/SIGINT stop
handing out at once; the learner takes the grad steps already due and the
actors in flight are terminated (each cuts off at most its episode).
"""

import collections
import math
import time

from learners.training import distributed
from learners.training import setup
from pipelines import episode_log


def _poll(run, timeout: float) -> list:
  try:
    return run.parts.pool.poll(timeout)
  except distributed.ActorError:
    if run.stop.requested:  # A preemption signals every process: an actor may go first.
      return []
    raise


def online_phase(run) -> None:
  """Runs `run`'s actor pool until the budget is spent (see the module docstring)."""
  c, ledger, pool = run.config, run.ledger, run.parts.pool
  # Grad steps per env step: grad_steps_per_update / env_steps_per_grad_step.
  k, n = c.grad_steps_per_update, c.env_steps_per_grad_step
  max_lag = c.num_actors * math.ceil(c.episode_steps * k / n)
  publish_every = max(1, c.variable_update_period * k // n)
  publisher = distributed.VariablePublisher(
      run.parts.replay.address, run.learner.policy.variables, c.replay_timeout_ms)
  due = ledger.grad_steps
  try:
    publisher.publish(ledger.grad_steps)  # Before any actor asks for weights.
    start = time.perf_counter()
    pool.start()
    run.timing['actor_start_s'] += time.perf_counter() - start
    pending = collections.deque(ledger.uncounted())
    with run.progress(total=ledger.budget, initial=ledger.spent, desc='budget (episodes)',
                      unit='ep') as bar:
      while True:
        if run.stop.requested:
          run.grad_steps_until(due, c.grad_steps_per_call)
          break
        pause = not ledger.budget_spent and run.checkpoint_due()
        if pause and pool.in_flight == 0 and ledger.grad_steps == due:
          run.checkpoint()
          continue
        while (not pause and pool.in_flight < c.num_actors and pending
               and due - ledger.grad_steps <= max_lag):
          pool.issue(pending.popleft())
        if ledger.grad_steps < due:
          # A reported episode is in replay whole, so the steps it made due
          # can share one compiled call (as offline); only the weights the
          # actors fetch may be up to a call older.
          done = ledger.grad_steps
          run.online_call(due, c.grad_steps_per_call)
          if ledger.grad_steps // publish_every > done // publish_every:
            publisher.publish(ledger.grad_steps)
          results = _poll(run, 0.0)
        elif ledger.budget_spent:
          break
        else:
          start = time.perf_counter()
          results = _poll(run, 0.2)
          run.timing['actor_wait_s'] += time.perf_counter() - start
        for result in results:
          due = run.account_episode(result, due)
          bar.update(1)
    # All episodes are reported (or a stop cuts them off); the actors close
    # their logs and exit.
    pool.stop(timeout_s=0.0 if run.stop.requested else None)
    # A Ray actor that died, or one a stop terminated, left an unlisted last
    # shard and its half episode marked in flight: with every actor gone, the
    # log is repaired and the count is the disk's, as on a resume.
    episode_log.recover_segments(pool.config.log_root)
    setup.count_cut_off_episodes(c, ledger, run.log)
  finally:
    publisher.close()
