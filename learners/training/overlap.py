"""The synchronous loop's learner on its own thread, so env steps and grad steps overlap.

On 2 cores the single-actor loop used to run env step, then the grad steps it
made due, then the next env step: the env's core idled while the learner ran
and the other way round.  Here the main thread keeps stepping the env and
only raises the *target* (the grad steps the env steps have called for, by
the same `GradSchedule`); this thread runs grad steps until it reaches it.

Two things stay exact: the number of grad steps (the target is the
synchronous loop's count), and what a checkpoint holds (`drain` waits until
the learner has caught up and is idle, so no variable changes while it is
written).  The actor may act with weights up to `max_lag` grad steps old,
and reads them while Adam updates them (Hogwild-style), so an online run's
actions depend on thread timing; online runs already differ between runs
through Reverb's unseeded sampler.  Set `overlap_learner: false` for the
strictly alternating loop.
"""

import threading
from typing import Callable


class LearnerThread:
  """Runs `step_fn()` (one grad step, advancing `done_fn()`) until `done_fn() == target`."""

  def __init__(self, step_fn: Callable[[], None], done_fn: Callable[[], int], max_lag: int):
    if max_lag < 1:
      raise ValueError(f'max_lag must be >= 1, got {max_lag}.')
    self._step, self._done, self._max_lag = step_fn, done_fn, max_lag
    self._target = done_fn()
    self._stopping = False
    self._error = None
    self._cv = threading.Condition()
    self._thread = threading.Thread(target=self._loop, name='learner', daemon=True)
    self._thread.start()

  def _loop(self) -> None:
    while True:
      with self._cv:
        while self._done() >= self._target and not self._stopping:
          self._cv.wait()
        if self._done() >= self._target:  # Stopping, and nothing left to do.
          return
      try:
        self._step()
      except BaseException as e:  # pylint: disable=broad-except
        with self._cv:
          self._error = e
          self._cv.notify_all()
        return
      with self._cv:
        self._cv.notify_all()

  def _raise_if_failed(self) -> None:
    if self._error is not None:
      raise self._error

  def advance(self, target: int) -> None:
    """Raises the target; blocks while the learner is more than `max_lag` steps behind."""
    with self._cv:
      self._target = max(self._target, target)
      self._cv.notify_all()
      while self._error is None and self._target - self._done() > self._max_lag:
        self._cv.wait()
      self._raise_if_failed()

  def drain(self) -> None:
    """Blocks until every called-for step ran; the learner is idle when this returns."""
    with self._cv:
      while self._error is None and self._done() < self._target:
        self._cv.wait()
      self._raise_if_failed()

  def stop(self, finish: bool = True, timeout_s: float = None) -> None:
    """Joins the thread, after the called-for steps if `finish` (else after the current one)."""
    with self._cv:
      self._stopping = True
      if not finish:
        self._target = self._done()
      self._cv.notify_all()
    self._thread.join(timeout_s)
