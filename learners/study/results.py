"""A study's results on disk -> cells with success rates and 95 % intervals.

A *run* is one workdir (`summary.json`, `eval.json`); a *cell* pools the seeds
of one (sweep, overrides, method, triplet, teacher, obs, budget, offline
episodes).  Success intervals:

  * one seed: the Wilson score interval over its evaluation episodes (what
    `envs.evaluate` and the launcher report);
  * several seeds: a percentile bootstrap that resamples seeds, then each
    resampled seed's evaluation episodes, so both sources of variance count;
    where no episode of any seed succeeded (or none failed), Wilson over the
    pooled episodes, as the bootstrap would return the point.

Comparisons.  Every policy is evaluated on the same starts (envs.evaluate.eval_seed),
so two cells, or a cell and its teacher, are compared start by start where both
kept their per-start outcomes: `paired_difference` is the difference in success
over the starts both evaluated, with a percentile bootstrap that resamples those
starts (the same ones on both sides) and each side's seeds.  Easy starts that
every policy stacks and hard ones that none does then cancel out instead of
widening both intervals; two separate 95 % intervals that must not overlap are
a much stricter test (about a 99.5 % one).  Runs written before outcomes were
stored fall back to that interval test.

Everything here is arithmetic on JSON; no TensorFlow.
"""

import dataclasses
import os
from typing import Iterable, Optional, Sequence

import numpy as np

from envs import evaluate as envs_evaluate
from envs import teachers as envs_teachers
from learners.study import ray_engine
from learners.training import workdir as run_files

STUDY_FILE = 'study.json'  # The expanded runs, written by the runner: what the report reads.
TEACHERS_FILE = 'teachers.json'  # Teacher evaluation on the students' eval seeds.
RUNS_DIR = 'runs'  # One folder per run, named by `grid.Run.name`.
BOOTSTRAP = 2000


# The interval every evaluation in the project reports (teacher and student).
wilson_interval = envs_evaluate.wilson_interval


def pct(x: float) -> str:
  return f'{100 * x:.1f}%'


def interval_above(a: Sequence[float], b: Sequence[float]) -> bool:
  """Whether interval `a` lies wholly above `b`: the only "better" a report claims."""
  return a[0] > b[1]


def one_seed(n_seeds: int) -> bool:
  """Whether a cell rests on one training seed, so that no verdict on it goes beyond
  the means: its interval counts evaluation starts only, and seeds swing more than
  that (the demo's one-seed finding (c) flipped between two clean clones).  The
  findings and the recommender both ask this, so that they cannot disagree."""
  return n_seeds == 1


def bootstrap_means(successes: Sequence[int], episodes: Sequence[int],
                    rng: np.random.Generator, samples: int = BOOTSTRAP) -> np.ndarray:
  """`samples` bootstrap replicates of the mean success over seeds (two levels)."""
  successes, episodes = np.asarray(successes), np.asarray(episodes)
  seeds = rng.integers(0, len(successes), size=(samples, len(successes)))
  rates = rng.binomial(episodes[seeds], successes[seeds] / episodes[seeds]) / episodes[seeds]
  return rates.mean(axis=1)


@dataclasses.dataclass(frozen=True)
class Paired:
  """left - right in success rate over `starts` shared evaluation starts."""
  difference: float
  ci95: tuple
  starts: int
  means: tuple = ()  # (left, right): each side's seed-averaged success on those starts.

  def format(self) -> str:
    lo, hi = self.ci95
    return (f'{100 * self.difference:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}] '
            f'paired over {self.starts} starts')

  def as_dict(self) -> dict:
    return {'difference': self.difference, 'ci95': list(self.ci95), 'starts': self.starts}


def has_outcomes(*sides: Sequence[str]) -> bool:
  """Whether every side has seeds and every seed its per-start outcomes."""
  return all(side and all(side) for side in sides)


def paired_bootstrap(sides: Sequence[Sequence[str]], seed: int = 0, samples: int = BOOTSTRAP,
                     resample_seeds: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """(points, draws): each side's seed-averaged success over the starts all share,
  and `samples` bootstrap replicates of it, (sides, samples), with the starts drawn
  once for every side and, per side, its seeds (`resample_seeds` False: these seeds only).

  Each side is its seeds' per-start outcome strings (a teacher: one string), all
  from evaluation start 0 (`has_outcomes` first).
  """
  starts = min(len(o) for side in sides for o in side)
  decoded = [np.stack([envs_evaluate.decode_outcomes(o[:starts]) for o in side]).astype(float)
             for side in sides]
  rng = np.random.default_rng(seed)
  drawn = rng.integers(0, starts, size=(samples, starts))
  def resampled(side):  # (samples,) seed-averaged success on the drawn starts.
    per_seed = side[:, drawn].mean(axis=2).T  # (samples, seeds)
    if not resample_seeds:
      return per_seed.mean(axis=1)
    pick = rng.integers(0, side.shape[0], size=(samples, side.shape[0]))
    return np.take_along_axis(per_seed, pick, axis=1).mean(axis=1)
  return (np.array([side.mean() for side in decoded]),
          np.stack([resampled(side) for side in decoded]))


def paired_difference(left: Sequence[str], right: Sequence[str], seed: int = 0,
                      samples: int = BOOTSTRAP, resample_seeds: bool = True
                      ) -> Optional[Paired]:
  """Success of `left` minus `right`, paired start by start, with a 95 % interval.

  The point is the difference of the seed-averaged success rates over the shared
  starts; the interval is `paired_bootstrap`'s.  None where a side lacks outcomes.
  """
  if not has_outcomes(left, right):
    return None
  points, draws = paired_bootstrap([left, right], seed, samples, resample_seeds)
  diffs = draws[0] - draws[1]
  return Paired(float(points[0] - points[1]), (float(np.percentile(diffs, 2.5)),
                                               float(np.percentile(diffs, 97.5))),
                min(len(o) for o in (*left, *right)), (float(points[0]), float(points[1])))


@dataclasses.dataclass
class Cell:
  """One configuration pooled over seeds."""
  sweep: str
  overrides: tuple  # ((key, value), ...), sorted.
  method: str
  triplet: str
  teacher: str
  obs: str
  budget: int
  offline_episodes: int
  successes: list = dataclasses.field(default_factory=list)  # Per seed, final eval.
  episodes: list = dataclasses.field(default_factory=list)
  seeds: list = dataclasses.field(default_factory=list)
  curves: list = dataclasses.field(default_factory=list)  # Per seed: eval.json entries.
  run_dirs: list = dataclasses.field(default_factory=list)  # Per seed.
  grad_steps: list = dataclasses.field(default_factory=list)  # Per seed, as trained.
  outcomes: list = dataclasses.field(default_factory=list)  # Per seed, '' if not kept.

  @property
  def key(self) -> tuple:
    """What `load_study` groups runs by: sweep, overrides, method, data."""
    return (self.sweep, self.overrides, self.method, self.triplet, self.teacher, self.obs,
            self.budget, self.offline_episodes)

  @property
  def proportion(self) -> float:
    return self.offline_episodes / self.budget

  @property
  def n_seeds(self) -> int:
    return len(self.seeds)

  @property
  def mean(self) -> float:
    return float(np.mean([s / e for s, e in zip(self.successes, self.episodes)]))

  def interval(self, seed: int = 0) -> tuple[float, float]:
    wins, n = sum(self.successes), sum(self.episodes)
    if self.n_seeds == 1 or wins in (0, n):
      # All episodes of all seeds failed (or succeeded): the bootstrap has nothing
      # to resample and would claim certainty, [0, 0]; Wilson does not.
      return wilson_interval(wins, n)
    means = bootstrap_means(self.successes, self.episodes, np.random.default_rng(seed))
    return (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))

  def format(self) -> str:
    lo, hi = self.interval()
    return (f'{100 * self.mean:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] '
            f'(n={self.n_seeds} seed{"s" if self.n_seeds > 1 else ""}, '
            f'{sum(self.episodes)} eval eps)')


@dataclasses.dataclass
class Study:
  name: str
  workdir: str
  cells: list
  missing: list  # Runs listed in study.json without a summary.json yet.
  teachers: list  # Teacher cells (envs.evaluate format).
  teacher_source: str
  description: str = ''
  # Finished runs that did not go straight through: {name: (resumes, Ray attempts)}.
  restarted: dict = dataclasses.field(default_factory=dict)
  # The study folders read (more than one: learners.study.pool), and the seeds found
  # in two of them, with the run kept.
  workdirs: tuple = ()
  duplicates: list = dataclasses.field(default_factory=list)

  def select(self, sweep: Optional[str] = 'grid', **where) -> list:
    return [c for c in self.cells if (sweep is None or c.sweep == sweep)
            and all(getattr(c, k) == v for k, v in where.items())]

  def grid_counterpart(self, sweep_cells: list) -> Optional['Cell']:
    """The main grid's cell a sweep varies: same method, data and budget, and no
    override the sweep's cells do not all share (its swept value is the row's
    default).  A spec need not repeat that run in the sweep to see it there.
    """
    first = sweep_cells[0]
    shared = set.intersection(*(set(c.overrides) for c in sweep_cells))
    matches = [c for c in self.select('grid', method=first.method, triplet=first.triplet,
                                      teacher=first.teacher, obs=first.obs,
                                      budget=first.budget,
                                      offline_episodes=first.offline_episodes)
               if set(c.overrides) <= shared]
    return max(matches, key=lambda c: len(c.overrides), default=None)

  def teacher(self, teacher: str, triplet: str) -> Optional[dict]:
    for cell in self.teachers:
      if cell['teacher'] == teacher and cell['triplet'] == triplet:
        return cell
    return None

  def versus_teacher(self, cell: Cell) -> Optional[Paired]:
    """The cell minus its teacher, start by start (None: either lacks outcomes)."""
    teacher = self.teacher(cell.teacher, cell.triplet)
    return versus_teacher(cell, teacher) if teacher else None


def versus_teacher(cell: Cell, teacher: dict) -> Optional[Paired]:
  return paired_difference(cell.outcomes, [teacher.get('outcomes', '')])


def longest_evaluation(evaluations: Sequence[tuple]) -> dict:
  """The longest of (source, evaluation) pairs of one teacher, each of which must agree
  with it on the starts they share (a deterministic teacher on the same starts); a
  ValueError names the source that does not."""
  longest = max((e for _, e in evaluations),
                key=lambda e: (len(e.get('outcomes', '')), e['episodes']))
  for source, e in evaluations:
    mine, theirs = e.get('outcomes', ''), longest.get('outcomes', '')
    if (e['teacher'], e['triplet']) != (longest['teacher'], longest['triplet']) or (
        mine != theirs[:len(mine)] if mine and theirs else
        (e['episodes'], e['successes']) != (longest['episodes'], longest['successes'])):
      raise ValueError(f'the teacher evaluation of {source} disagrees with the others\' '
                       f'({e["teacher"]}, {e["triplet"]}) on the starts they share: not the '
                       'same teacher and starts, so not one evaluation to pair against. '
                       'Pool or pair only studies scored on the same starts (one '
                       'teachers.json, or one extended by more_starts).')
  return longest


def require_study(workdir: str) -> str:
  """The path of `workdir`'s study.json; FileNotFoundError naming the folder if none."""
  index_path = os.path.join(workdir, STUDY_FILE)
  if not os.path.exists(index_path):
    raise FileNotFoundError(f'{index_path} not found: is {workdir} a study folder '
                            '(written by python -m learners.study)?')
  return index_path


def load_study(workdir: str) -> Study:
  index_path = require_study(workdir)
  index = run_files.read_json(index_path)
  cells, missing, restarted = {}, [], {}
  for run in index['runs']:
    run_dir = os.path.join(workdir, RUNS_DIR, run['name'])
    summary_path = os.path.join(run_dir, run_files.SUMMARY_FILE)
    if not os.path.exists(summary_path):
      missing.append(run['name'])
      continue
    summary = run_files.read_json(summary_path)
    final = summary['final_eval']
    resumes, tries = summary.get('ledger', {}).get('resumes', 0), ray_engine.attempts(run_dir)
    if resumes or tries > 1:
      restarted[run['name']] = (resumes, tries)
    evals_path = os.path.join(run_dir, run_files.EVAL_FILE)
    evals = run_files.read_json(evals_path) if os.path.exists(evals_path) else []
    c = run['config']
    key = (run['sweep'], tuple(sorted(run['overrides'].items())), c['method'], c['triplet'],
           c['teacher'], c['obs'], c['budget'], c['offline_episodes'])
    cell = cells.setdefault(key, Cell(*key))
    cell.successes.append(int(final['successes']))
    cell.episodes.append(int(final['episodes']))
    cell.seeds.append(c['seed'])
    cell.curves.append(evals)
    cell.run_dirs.append(run_dir)
    cell.grad_steps.append(final.get('grad_step'))
    # Paired comparisons align starts from 0, like the teacher's evaluation.
    cell.outcomes.append(checked_outcomes(final, summary_path)
                         if final.get('first_index', 0) == 0 else '')
  teachers_path = os.path.join(workdir, TEACHERS_FILE)
  if os.path.exists(teachers_path):
    teachers, source = run_files.read_json(teachers_path)['cells'], (
        f'{TEACHERS_FILE} (this study, the students\' evaluation seeds)')
    for teacher in teachers:
      checked_outcomes(teacher, teachers_path)
  else:
    teachers = shipped_teacher_cells()
    source = ('the shipped teachers\' cards, envs/teacher_models/*/card.json (same '
              'evaluation seeds, 400-step episodes)') if teachers else 'none'
  return Study(name=index['name'], workdir=workdir, cells=list(cells.values()),
               missing=missing, teachers=teachers, teacher_source=source,
               description=index.get('description', ''), restarted=restarted,
               workdirs=(workdir,))


def checked_outcomes(evaluation: dict, path: str) -> str:
  """An evaluation's per-start outcomes ('' if not kept), refused if they disagree."""
  outcomes = evaluation.get('outcomes', '')
  try:
    decoded = envs_evaluate.decode_outcomes(outcomes)
  except ValueError:
    decoded = None
  if outcomes and (decoded is None or len(decoded) != evaluation['episodes']
                   or decoded.sum() != evaluation['successes']):
    raise ValueError(f'{path}: its per-start outcomes ({len(outcomes)} characters) are not '
                     f'{evaluation["episodes"]} 0/1 with {evaluation["successes"]} successes: '
                     'the file is corrupted; delete its "outcomes" and rerun python -m '
                     'learners.study.outcomes on the study.')
  return outcomes


def shipped_teacher_cells() -> list:
  """Table I of the shipped neural teachers: the evaluation their cards record."""
  cells = []
  for name in envs_teachers.NEURAL_TEACHERS:
    path = os.path.join(envs_teachers.shipped_model_path(name), envs_teachers.CARD_FILE)
    if os.path.exists(path):
      card = run_files.read_json(path)
      cells += [dict(cell, teacher=name, triplet=triplet)
                for triplet, cell in card.get('test_success', {}).items()]
  return cells


def table_order(cell: Cell) -> tuple:
  """How cells are listed (report table, results.json): main grid first, then sweeps."""
  return (cell.sweep != 'grid', cell.sweep, cell.overrides, cell.triplet, cell.teacher,
          cell.obs, cell.method, cell.budget, cell.offline_episodes)


def best_per_budget(cells: Iterable[Cell]) -> dict:
  """{(method, budget): the cell of its best offline proportion (highest mean)}."""
  best = {}
  for cell in cells:
    key = (cell.method, cell.budget)
    # Ties go to the smaller dataset: fewer teacher episodes for the same result.
    if key not in best or (cell.mean, -cell.offline_episodes) > (
        best[key].mean, -best[key].offline_episodes):
      best[key] = cell
  return best
