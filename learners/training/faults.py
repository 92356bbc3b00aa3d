"""Fault injection for the crash tests: a test hook, not a setting of the run.

A test sets one of these environment variables for a launcher subprocess
(actor processes inherit it); production runs never do.
"""

import os
import signal

# The learner process SIGKILLs itself once it has counted this many online episodes.
KILL_AFTER_EPISODES = 'ROBOT_TIME_FAULT_KILL_AFTER_EPISODES'
# Actor process 0 SIGKILLs itself after this many of its episodes (num_actors > 1).
KILL_ACTOR_AFTER_EPISODES = 'ROBOT_TIME_FAULT_KILL_ACTOR_AFTER_EPISODES'


def maybe_kill(variable: str, episodes: int) -> None:
  """SIGKILLs this process if `variable` is set and `episodes` reached it."""
  limit = int(os.environ.get(variable) or 0)
  if limit and episodes >= limit:
    os.kill(os.getpid(), signal.SIGKILL)
