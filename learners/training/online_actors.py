"""The learner's side of the multi-actor online phase: hand out, count, step.

Episode tokens go out while fewer than `num_actors` episodes are in flight and
the learner is at most `num_actors` episodes' worth of updates behind (so the
actors' policy lag stays bounded); it never hands out more than the online
budget.  Each reported episode makes grad steps due by the same
`grad_schedule` as the synchronous loop.  Before a checkpoint the learner
stops handing out and waits for every episode in flight, so a checkpoint
holds episodes 0..n-1 exactly and a resume hands out tokens from n on.
"""

import math
import time

from learners.training import actors as actors_lib
from learners.training import distributed


def _account_episode(run, result: actors_lib.EpisodeResult, due: int) -> int:
  """Counts a reported episode; returns the grad steps due after its env steps.

  Its transitions reach the replay at its last env step, as in the
  synchronous loop.
  """
  ledger, schedule = run.ledger, run.schedule
  start = ledger.env_steps
  due = schedule.due(due, start, result.steps - 1, ledger.replay_inserts)
  run.after_episode(result)
  due = schedule.due(due, start + result.steps - 1, 1, ledger.replay_inserts)
  ledger.env_steps += result.steps
  return due


def online_phase(run) -> None:
  """Runs `run`'s actor pool until the budget is spent (see the module docstring)."""
  c, ledger, pool = run.config, run.ledger, run.parts.pool
  online_budget = ledger.budget - ledger.offline_episodes
  max_lag = c.num_actors * math.ceil(c.episode_steps / c.env_steps_per_grad_step)
  publish_every = max(1, c.variable_update_period // c.env_steps_per_grad_step)
  publisher = distributed.VariablePublisher(
      run.parts.replay.address, run.learner.policy.variables, c.replay_timeout_ms)
  due = ledger.grad_steps
  try:
    publisher.publish(ledger.grad_steps)  # Before any actor asks for weights.
    start = time.perf_counter()
    pool.start()
    run.timing['actor_start_s'] += time.perf_counter() - start
    next_index = ledger.online_episodes
    with run.progress(total=ledger.budget, initial=ledger.spent, desc='budget (episodes)',
                      unit='ep') as bar:
      while True:
        pause = not ledger.budget_spent and run.checkpoint_due()
        if pause and pool.in_flight == 0 and ledger.grad_steps == due:
          run.checkpoint()
          continue
        while (not pause and pool.in_flight < c.num_actors and next_index < online_budget
               and due - ledger.grad_steps <= max_lag):
          pool.issue(next_index)
          next_index += 1
        if ledger.grad_steps < due:
          run.grad_steps()
          if ledger.grad_steps % publish_every == 0:
            publisher.publish(ledger.grad_steps)
          results = pool.poll(0.0)
        elif ledger.budget_spent:
          break
        else:
          start = time.perf_counter()
          results = pool.poll(0.2)
          run.timing['actor_wait_s'] += time.perf_counter() - start
        for result in results:
          due = _account_episode(run, result, due)
          bar.update(1)
    # All episodes are reported; the actors close their logs and exit.
    pool.stop()
  finally:
    publisher.close()
