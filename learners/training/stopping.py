"""SIGTERM / SIGINT: finish the step at hand, checkpoint, stop.

A cluster preempts a job with SIGTERM (then SIGKILL after a grace period); a
user stops one with Ctrl-C.  Either way the handler only records the request;
the loops see it at their next safe point (after a learner call or an env
step), the run writes a final checkpoint and `loop.train` raises
`config.Stopped`, which the launcher turns into exit code 143 / 130.  A second
signal while stopping takes the default action (stop at once).
"""

import contextlib
import os
import signal
import threading
from typing import Callable, Optional

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def signal_name(signum: int) -> str:
  return signal.Signals(signum).name


@contextlib.contextmanager
def handlers_kept():
  """Puts back the SIGTERM/SIGINT handlers a library call replaced.

  `ray.init` installs a SIGTERM handler that exits at once, which would turn a
  preemption into a run without its final checkpoint.
  """
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  saved = {signum: signal.getsignal(signum) for signum in SIGNALS}
  try:
    yield
  finally:
    for signum, handler in saved.items():
      signal.signal(signum, handler)


class StopRequest:
  """Installs the handlers (main thread only) and holds the first signal received.

  `on_signal(signum)`, if given, runs on the first signal (the study runner
  forwards it to its runs).
  """

  def __init__(self, on_signal: Optional[Callable[[int], None]] = None):
    self.signum: Optional[int] = None
    self._on_signal = on_signal
    self._previous = {}

  @property
  def requested(self) -> bool:
    return self.signum is not None

  def _handle(self, signum, frame) -> None:
    del frame
    if self.signum is not None:
      signal.signal(signum, signal.SIG_DFL)
      os.kill(os.getpid(), signum)
      return
    self.signum = signum
    if self._on_signal is not None:
      self._on_signal(signum)

  def __enter__(self) -> 'StopRequest':
    # Signal handlers can only be set from the main thread (a test or a
    # notebook may train on another): there the run simply has no handler.
    if threading.current_thread() is threading.main_thread():
      for signum in SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}
