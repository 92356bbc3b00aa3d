"""The overlapped learner thread: exact step counts, bounded lag, errors reach the caller."""

import threading
import time

import pytest

from learners.training import overlap


class _Counter:

  def __init__(self, delay_s=0.0, fail_at=None):
    self.done, self.delay_s, self.fail_at = 0, delay_s, fail_at
    self.max_seen_lag = 0

  def step(self):
    time.sleep(self.delay_s)
    if self.fail_at is not None and self.done == self.fail_at:
      raise FloatingPointError(f'NaN at step {self.done}')
    self.done += 1


def test_runs_exactly_the_called_for_steps_and_drains():
  counter = _Counter(delay_s=0.001)
  thread = overlap.LearnerThread(counter.step, lambda: counter.done, max_lag=3)
  for target in range(1, 41):
    thread.advance(target)
    assert target - counter.done <= 3  # The actor never runs ahead by more than max_lag.
  thread.drain()
  assert counter.done == 40
  thread.advance(40)  # A target already reached: nothing to do.
  thread.stop()
  assert counter.done == 40


def test_stop_finishes_or_abandons_the_remaining_steps():
  counter = _Counter(delay_s=0.01)
  thread = overlap.LearnerThread(counter.step, lambda: counter.done, max_lag=100)
  thread.advance(20)
  thread.stop(finish=True)
  assert counter.done == 20
  counter = _Counter(delay_s=0.01)
  thread = overlap.LearnerThread(counter.step, lambda: counter.done, max_lag=100)
  thread.advance(50)
  thread.stop(finish=False)
  assert counter.done < 50


def test_a_failed_step_is_raised_in_the_caller():
  counter = _Counter(fail_at=5)
  thread = overlap.LearnerThread(counter.step, lambda: counter.done, max_lag=2)
  with pytest.raises(FloatingPointError, match='NaN at step 5'):
    for target in range(1, 100):
      thread.advance(target)
    thread.drain()
  thread.stop()
  assert counter.done == 5 and not any(t.name == 'learner' and t.is_alive()
                                       for t in threading.enumerate())
  with pytest.raises(ValueError, match='max_lag'):
    overlap.LearnerThread(counter.step, lambda: counter.done, max_lag=0)
