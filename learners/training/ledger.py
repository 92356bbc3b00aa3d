"""The budget ledger: every episode a run spends, and when the budget is spent.

A run's data budget N counts episodes on the target task: the teacher dataset
(`offline_episodes`) plus student episodes collected online.  Evaluation
episodes cost robot time too but are not part of the budget; they are counted
apart.  The ledger is the single source of these counts (never Reverb table
sizes: Reverb delivers at least once, so a crash can leave duplicates).

Written as JSON (tmp file + fsync + rename, so a kill never leaves half a
ledger); the loop also writes its counters as TensorBoard scalars.
"""

import dataclasses
import os
import threading
import time
from typing import Optional

from learners.training import workdir as workdir_lib

LEDGER_FILE = 'ledger.json'
# Counters the loop writes to TensorBoard (`spent` is derived).
SUMMARY_FIELDS = ('spent', 'online_episodes', 'eval_episodes', 'env_steps', 'grad_steps',
                  'offline_items', 'online_items', 'wall_time_s')


class BudgetError(ValueError):
  """The budget cannot be met by this configuration (raised before any work)."""


def check_budget(budget: Optional[int], offline_episodes: int, online: bool) -> int:
  """Returns the number of online episodes the run may collect.

  Offline-only methods spend exactly their dataset: `budget` may be omitted
  (None) or must equal `offline_episodes`.  Online methods need
  budget > offline_episodes.
  """
  if offline_episodes < 0:
    raise BudgetError(f'offline_episodes must be >= 0, got {offline_episodes}.')
  if not online:
    if budget is not None and budget != offline_episodes:
      raise BudgetError(
          f'An offline-only method spends exactly its dataset: budget={budget} but '
          f'offline_episodes={offline_episodes}. Pass --budget {offline_episodes} '
          'or leave --budget out.')
    if offline_episodes == 0:
      raise BudgetError('An offline-only method needs a teacher dataset: '
                        'offline_episodes must be > 0.')
    return 0
  if budget is None:
    raise BudgetError('An online method needs --budget (episodes: dataset + online).')
  if budget < offline_episodes:
    raise BudgetError(
        f'budget={budget} is smaller than the teacher dataset '
        f'(offline_episodes={offline_episodes}): the dataset alone would overspend it.')
  if budget == offline_episodes:
    raise BudgetError(
        f'budget={budget} equals offline_episodes: no episodes are left for the '
        'online student. Raise --budget or use an offline-only method.')
  return budget - offline_episodes


@dataclasses.dataclass
class Ledger:
  """Counters of one run; `wall_time_s` accumulates over resumed segments."""
  budget: int
  offline_episodes: int
  online_episodes: int = 0
  eval_episodes: int = 0
  env_steps: int = 0
  grad_steps: int = 0
  offline_items: int = 0  # Dataset transitions the learner consumed.
  online_items: int = 0  # Replay transitions the learner consumed.
  replay_inserts: int = 0  # Transitions the actors wrote to Reverb.
  # Online episodes cut off mid-way by a crash or a stop: the robot spent them
  # but they are not in the episode log.  Counted afresh from the log's
  # in-flight markers at each resume (`pipelines.episode_log.cut_off_episodes`).
  discarded_episodes: int = 0
  wall_time_s: float = 0.0
  resumes: int = 0
  done: bool = False
  # Online episode indices counted beyond the first one not yet counted: with
  # several actors episodes finish out of order, and a resume ingests whichever
  # finished before a crash and hands out the others again.
  counted_ahead: list = dataclasses.field(default_factory=list)

  @property
  def online_budget(self) -> int:
    return self.budget - self.offline_episodes

  @property
  def spent(self) -> int:
    return self.offline_episodes + self.online_episodes

  @property
  def budget_spent(self) -> bool:
    return self.spent >= self.budget

  @property
  def first_uncounted(self) -> int:
    """The lowest online episode index not counted yet."""
    return self.online_episodes - len(self.counted_ahead)

  def is_counted(self, index: int) -> bool:
    return index < self.first_uncounted or index in self.counted_ahead

  def uncounted(self) -> list:
    """Online episode indices still to collect, in order."""
    ahead = set(self.counted_ahead)
    return [i for i in range(self.first_uncounted, self.online_budget) if i not in ahead]

  def add_online_episode(self, index: int) -> None:
    """Counts online episode `index` (its seed is a function of the index)."""
    if self.budget_spent:
      raise BudgetError(f'Online episode beyond the budget ({self.spent} of {self.budget}).')
    if not 0 <= index < self.online_budget or self.is_counted(index):
      raise BudgetError(f'Online episode {index} is outside the online budget '
                        f'({self.online_budget}) or counted already.')
    first = self.first_uncounted
    self.online_episodes += 1
    if index != first:
      self.counted_ahead = sorted(self.counted_ahead + [index])
      return
    first += 1
    while first in self.counted_ahead:
      self.counted_ahead.remove(first)
      first += 1

  def as_dict(self) -> dict:
    out = dataclasses.asdict(self)
    out['spent'] = self.spent
    return out

  def write(self, workdir: str) -> str:
    path = os.path.join(workdir, LEDGER_FILE)
    workdir_lib.write_json_atomic(path, self.as_dict())
    return path

  @classmethod
  def read(cls, workdir: str) -> 'Ledger':
    data = workdir_lib.read_json(os.path.join(workdir, LEDGER_FILE))
    data.pop('spent', None)
    return cls(**data)


def process_age_s() -> Optional[float]:
  """Seconds since this process started (Linux), or None where /proc is missing.

  The ledger's clock starts after the launcher's imports and set-up; this
  covers them too, so a study's cost model can price a run's start-up.
  """
  try:
    with open('/proc/self/stat') as f:
      # Field 22 (starttime, clock ticks after boot); the name in () may hold spaces.
      start_ticks = int(f.read().rsplit(')', 1)[1].split()[19])
    with open('/proc/uptime') as f:
      uptime = float(f.read().split()[0])
  except (OSError, ValueError, IndexError):
    return None
  return uptime - start_ticks / os.sysconf('SC_CLK_TCK')


class WallClock:
  """Adds the time since the last call to the ledger (survives resumes)."""

  def __init__(self, ledger: Ledger):
    self._ledger = ledger
    self._last = time.monotonic()
    # The overlapped learner thread ticks too: count each interval once.
    self._lock = threading.Lock()

  def tick(self) -> None:
    with self._lock:
      now = time.monotonic()
      self._ledger.wall_time_s += now - self._last
      self._last = now

