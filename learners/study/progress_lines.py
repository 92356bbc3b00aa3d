"""The study runner's periodic lines: one per run in progress, read from the run folders.

Either engine writes the same `progress.json` in each run's folder, so the
lines need no channel from the runs (local subprocesses or Ray tasks).
"""

import os
import threading
import time
from typing import Optional, Sequence

from tqdm import tqdm

from learners.training import workdir as run_files


def progress_line(run_dir: str, since: float = 0.0) -> Optional[str]:
  """One line for an unfinished run that reported after `since`: budget, grad steps, success.

  A run stopped by an earlier invocation keeps its old progress file until its
  resume writes one; it is waiting, not in progress.
  """
  progress = os.path.join(run_dir, run_files.PROGRESS_FILE)
  if (not os.path.exists(progress)
      or os.path.exists(os.path.join(run_dir, run_files.SUMMARY_FILE))):
    return None
  p = run_files.read_json(progress)
  if p['time'] < since:
    return None
  pct = lambda x: '-' if x is None else f'{100 * x:.0f}%'
  return (f'  {os.path.basename(run_dir)}: {p["spent"]}/{p["budget"]} episodes, '
          f'{p["grad_steps"]} grad steps, online success {pct(p["online_success"])}, '
          f'last eval {pct(p["eval_success"])} ({time.time() - p["time"]:.0f} s ago)')


class ProgressLines:
  """Every `period_s`, a line per run in progress (either engine: it reads the run folders)."""

  def __init__(self, run_dirs: Sequence[str], period_s: float):
    self._run_dirs, self._period_s = list(run_dirs), period_s
    self._since = time.time()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, name='progress', daemon=True)

  def _loop(self) -> None:
    while not self._stop.wait(self._period_s):
      lines = [l for l in (progress_line(d, self._since) for d in self._run_dirs) if l]
      if lines:
        tqdm.write(time.strftime('%H:%M:%S') + ' runs in progress:\n' + '\n'.join(lines))

  def __enter__(self) -> 'ProgressLines':
    if self._period_s > 0:
      self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._stop.set()
