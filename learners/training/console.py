"""A clean console: the libraries' log lines go to a file, ours stay on screen.

Beam (and its worker processes), absl, TensorFlow and Reverb log hundreds of
INFO lines, many from C++ straight to file descriptor 2.  `libraries_log`
points descriptor 2 and Python's `logging` at a log file for the duration,
while `sys.stderr` (tqdm bars, error messages, tracebacks) keeps writing to
the terminal.  `verbosity >= 1` leaves everything on the console.
"""

import contextlib
import logging
import os
import sys
from typing import Iterator


def _stderr_is_fd2() -> bool:
  try:
    return sys.stderr.fileno() == 2
  except (AttributeError, OSError, ValueError):
    return False  # Replaced by a capture (pytest) or a pipe wrapper.


@contextlib.contextmanager
def libraries_log(path: str, verbosity: int = 0) -> Iterator[None]:
  """Within the block, library logs go to `path` (appended) unless `verbosity >= 1`."""
  if verbosity >= 1:
    yield
    return
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  sys.stdout.flush()
  sys.stderr.flush()
  log_file = open(path, 'a', buffering=1)  # pylint: disable=consider-using-with
  saved_fd = os.dup(2)
  saved_stderr = sys.stderr
  if _stderr_is_fd2():
    # Our own writes keep going to the terminal through a copy of the old fd 2.
    sys.stderr = os.fdopen(os.dup(saved_fd), 'w', buffering=1)
  root = logging.getLogger()
  saved_handlers, saved_level = root.handlers[:], root.level
  root.handlers = [logging.StreamHandler(log_file)]
  root.setLevel(logging.INFO)
  os.dup2(log_file.fileno(), 2)
  try:
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved_fd, 2)
    os.close(saved_fd)
    if sys.stderr is not saved_stderr:
      sys.stderr.close()
      sys.stderr = saved_stderr
    root.handlers, root.level = saved_handlers, saved_level
    log_file.close()
