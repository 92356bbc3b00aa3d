"""One helper for work on a daemon thread whose result is collected later."""

from concurrent import futures
import threading
from typing import Callable


def in_background(fn: Callable, *args, name: str = 'background') -> futures.Future:
  """`fn(*args)` on a daemon thread; its result (or exception) in the returned Future.

  Not a ThreadPoolExecutor: an abandoned stream is finalised by the garbage
  collector at any point, on any thread, and an executor's shutdown then joins
  its worker there (which deadlocked inside another thread's start-up).  A
  daemon thread also never keeps a stopping run waiting, e.g. on a Reverb call
  that has no deadline.
  """
  future = futures.Future()

  def run():
    try:
      future.set_result(fn(*args))
    except BaseException as e:  # pylint: disable=broad-except
      future.set_exception(e)  # Raised where the result is asked for.
  threading.Thread(target=run, name=name, daemon=True).start()
  return future


def call_with_timeout(fn: Callable, timeout_s: float, what: str):
  """`fn()`, or TimeoutError naming `what` if it does not return within `timeout_s`."""
  try:
    return in_background(fn, name=what).result(timeout_s)
  except futures.TimeoutError:
    raise TimeoutError(f'{what} did not return within {timeout_s:.0f} s.') from None
