"""Fault injection for the crash tests: a test hook, not a setting of the run.

A test sets one of these environment variables for a launcher subprocess
(actor processes inherit it); production runs never do.
"""

import os
import signal

# The learner process SIGKILLs itself once it has counted this many online episodes.
KILL_AFTER_EPISODES = 'ROBOT_TIME_FAULT_KILL_AFTER_EPISODES'
# The synchronous learner SIGKILLs itself at this env step (mid-episode, say).
KILL_AT_ENV_STEP = 'ROBOT_TIME_FAULT_KILL_AT_ENV_STEP'
# Actor process 0 SIGKILLs itself after this many of its episodes (num_actors > 1).
KILL_ACTOR_AFTER_EPISODES = 'ROBOT_TIME_FAULT_KILL_ACTOR_AFTER_EPISODES'
# Actor 0 SIGKILLs itself at this env step of its own (mid-episode, say).
KILL_ACTOR_AT_ENV_STEP = 'ROBOT_TIME_FAULT_KILL_ACTOR_AT_ENV_STEP'
# The learner SIGKILLs itself inside its first checkpoint once it has counted
# this many online episodes: after the replay checkpoint and state snapshot,
# before the learner checkpoint commits.
KILL_IN_CHECKPOINT = 'ROBOT_TIME_FAULT_KILL_IN_CHECKPOINT'
# The learner sends itself SIGTERM (a preemption) after this many online episodes.
SIGTERM_AFTER_EPISODES = 'ROBOT_TIME_FAULT_SIGTERM_AFTER_EPISODES'
# The learner stops its Reverb server (as if it died) after this many online episodes.
STOP_REPLAY_AFTER_EPISODES = 'ROBOT_TIME_FAULT_STOP_REPLAY_AFTER_EPISODES'


def environment() -> dict:
  """The fault variables set in this process: Ray actors get them explicitly (a Ray
  worker inherits its node's environment, not the launcher's)."""
  return {k: v for k, v in os.environ.items() if k.startswith('ROBOT_TIME_FAULT_')}


def _limit(variable: str) -> int:
  return int(os.environ.get(variable) or 0)


def maybe_kill(variable: str, count: int) -> None:
  """SIGKILLs this process if `variable` is set and `count` reached it."""
  if _limit(variable) and count >= _limit(variable):
    os.kill(os.getpid(), signal.SIGKILL)


def maybe_signal(variable: str, count: int) -> None:
  """Sends this process SIGTERM once, when `count` reaches the limit."""
  if _limit(variable) and count == _limit(variable):
    os.kill(os.getpid(), signal.SIGTERM)


def maybe_stop(variable: str, count: int, server) -> None:
  """Stops the Reverb `server` (a `replay.ReplayServer`) once, when `count` reaches the limit."""
  if server is not None and _limit(variable) and count == _limit(variable):
    server.stop()
