"""How many gradient steps a run's env steps call for: one rule for every loop.

Every `env_steps_per_grad_step`-th env step calls for `grad_steps_per_update`
gradient steps (1 unless set: the paper's rule), each if the replay is ready
for its batch then: a batch that needs replay
items waits until the actors have inserted `min_replay_size` transitions.
An episode's transitions reach the replay at its last env step, so within an
episode the readiness is that of the inserts before it.

The synchronous loop asks at every env step; the multi-actor learner asks
once per reported episode (steps before its last, then its last).  Both get
the same count from the same env steps, so the number of updates is a pure
function of the run's config, whatever the number of actors.
"""

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class GradSchedule:
  env_steps_per_grad_step: int
  min_replay_size: int
  # needs_online(step): whether grad step `step`'s batch holds replay items.
  needs_online: Callable[[int], bool]
  grad_steps_per_update: int = 1

  def ready(self, step: int, replay_inserts: int) -> bool:
    """Can grad step `step` run with `replay_inserts` transitions in the replay?"""
    return not self.needs_online(step) or replay_inserts >= self.min_replay_size

  def due(self, grad_steps: int, env_steps: int, new_env_steps: int,
          replay_inserts: int) -> int:
    """Grad steps due after `grad_steps` once env steps (env_steps, env_steps + new] run.

    `replay_inserts` is the replay's insert count during those env steps.
    """
    for t in range(env_steps + 1, env_steps + new_env_steps + 1):
      if t % self.env_steps_per_grad_step:
        continue
      for _ in range(self.grad_steps_per_update):
        if self.ready(grad_steps, replay_inserts):
          grad_steps += 1
    return grad_steps
