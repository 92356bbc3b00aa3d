r"""The split recommender: how to spend a budget, from a study's results.

  python -m learners.study.recommend runs/laptop --budget 10000 \
      [--triplet triplet1 --teacher generalization --obs state] \
      [--episodes_per_hour 41.7]

The teacher is a baseline option: "spend the budget on nothing, run the
teacher".  A student beats the teacher only where the 95 % interval of their
difference, paired start by start on the shared evaluation starts, lies above 0
(learners.study.results.paired_difference); runs or teacher evaluations without
per-start outcomes fall back to the student's interval lying above the
teacher's.  A cell with one training seed is never counted as beating it: its
interval counts evaluation episodes, not seeds (as in the report's findings).
The teacher's numbers are the study's teacher evaluation (`teachers.json`, else
the shipped cards).  For the given budget N:

  * no student beats the teacher: the answer is "run the teacher", with its
    success and interval beside the best student's, and any one-seed cell above
    the teacher named as worth more seeds;
  * some do: it names the best of them (highest mean final success over seeds),
    and the teacher's success beside it;
  * no teacher evaluation: it says that the comparison could not be made and
    names the best cell of the study;

and for a named student

  * its 95 % interval and seed count, and the probability that it is really the
    best (a bootstrap over seeds and evaluation episodes of every candidate; with
    per-start outcomes, the same resampled starts for every candidate);
  * the candidates not shown below it (not distinguishable with this many
    seeds/evaluation episodes: the paired difference's interval includes 0, or
    without per-start outcomes the two intervals overlap);
  * for every method (at its best offline proportion per budget), how much robot
    time it needs to reach the best's success: the budget where its success-vs-
    budget curve (linear between the studied budgets, made monotone by keeping
    the best of the budgets at or below) reaches that success, in episodes and
    hours at --episodes_per_hour.

The default 41.7 episodes/hour is the paper's "just under a day for 1000
episodes on each robot".  Budgets count every episode on the task: teacher
(offline) and student (online).
"""

import argparse
import dataclasses
import sys
from typing import Optional, Sequence

import numpy as np

from learners.study import results as study_results
from learners.study.results import pct

PAPER_EPISODES_PER_HOUR = 1000 / 24


def episodes_to_reach(points: Sequence[tuple[int, float]], target: float) -> Optional[float]:
  """Smallest budget at which a success curve reaches `target` (None: never).

  `points` are (budget, success).  The curve is monotone-ised (a larger budget
  can always be spent like a smaller one, so success at N is the best at <= N)
  and linear between points.  A target met at the smallest budget returns that
  budget: the study cannot say whether fewer episodes would do.
  """
  points = sorted(points)
  envelope, best = [], -1.0
  for budget, success in points:
    best = max(best, success)
    envelope.append((budget, best))
  if not envelope or envelope[-1][1] < target:
    return None
  (b0, s0) = envelope[0]
  if s0 >= target:
    return float(b0)
  for (b0, s0), (b1, s1) in zip(envelope, envelope[1:]):
    if s1 >= target:
      return b0 + (target - s0) / (s1 - s0) * (b1 - b0)
  return None  # Unreachable: the last point is >= target.


# The verdicts (also results.json's `verdict`).
RUN_TEACHER = 'run_teacher'  # Teacher evaluated; no student's interval lies above it.
STUDENT = 'student'  # The named student's interval lies above the teacher's.
NO_TEACHER = 'no_teacher_evaluation'  # No comparison possible: the best cell, unqualified.


@dataclasses.dataclass
class Alternative:
  method: str
  episodes: Optional[float]  # To reach the target success; None: not within the study.
  hours: Optional[float]
  at_budget: Optional[study_results.Cell]  # Its best cell at the asked budget.


@dataclasses.dataclass
class Recommendation:
  budget: int
  best: study_results.Cell  # The named student; under RUN_TEACHER the best student.
  interval: tuple
  p_best: dict  # (method, offline_episodes) -> bootstrap probability of being best.
  ties: list  # Cells not shown below the best (`distinguishable`).
  alternatives: list
  episodes_per_hour: float
  max_budget: int
  verdict: str = NO_TEACHER
  teacher: Optional[dict] = None  # The teacher's evaluation (envs.evaluate cell).
  versus_teacher: Optional[study_results.Paired] = None  # best - teacher, paired.
  # (cell, its paired difference or None): one-seed cells above the teacher, not
  # counted as beating it (`beats_teacher`).
  one_seed_above: list = dataclasses.field(default_factory=list)


def above_teacher(cell: study_results.Cell, teacher: dict,
                  paired: Optional[study_results.Paired]) -> bool:
  """`paired`: study_results.versus_teacher(cell, teacher), None without outcomes."""
  # The teacher costs no budget, so a student must be better beyond doubt: the
  # paired difference's lower bound above 0, else its lower bound over the teacher's upper.
  if paired:
    return paired.ci95[0] > 0
  return study_results.interval_above(cell.interval(), teacher['ci95'])


def beats_teacher(cell: study_results.Cell, teacher: dict,
                  paired: Optional[study_results.Paired]) -> bool:
  return not study_results.one_seed(cell.n_seeds) and above_teacher(cell, teacher, paired)


def distinguishable(best: study_results.Cell, other: study_results.Cell) -> bool:
  """Whether `other` is shown below `best`: paired, the difference's interval above 0;
  without per-start outcomes, `other`'s interval wholly below `best`'s."""
  paired = study_results.paired_difference(best.outcomes, other.outcomes)
  if paired:
    return paired.ci95[0] > 0
  return study_results.interval_above(best.interval(), other.interval())


def _against_teacher(rec: 'Recommendation') -> str:
  if rec.versus_teacher:
    return f'paired with the teacher start by start, {rec.versus_teacher.format()}'
  return 'its 95 % interval against the teacher\'s (no per-start outcomes to pair)'


def probability_best(cells: Sequence[study_results.Cell], seed: int = 0,
                     samples: int = study_results.BOOTSTRAP) -> dict:
  if study_results.has_outcomes(*(c.outcomes for c in cells)):
    # The same starts for every cell in a replicate, as the paired comparisons draw them.
    _, draws = study_results.paired_bootstrap([c.outcomes for c in cells], seed, samples)
  else:
    rng = np.random.default_rng(seed)
    draws = np.stack([study_results.bootstrap_means(c.successes, c.episodes, rng, samples)
                      for c in cells])
  # Ties in a replicate are split evenly, so equal cells share the probability.
  top = draws == draws.max(axis=0, keepdims=True)
  share = (top / top.sum(axis=0, keepdims=True)).mean(axis=1)
  return {(c.method, c.offline_episodes): float(p) for c, p in zip(cells, share)}


def recommend(cells: Sequence[study_results.Cell], budget: int,
              episodes_per_hour: float = PAPER_EPISODES_PER_HOUR,
              teacher: Optional[dict] = None) -> Recommendation:
  """`cells` of one (triplet, teacher, obs) from the main grid; `teacher` its evaluation."""
  at_budget = [c for c in cells if c.budget == budget]
  if not at_budget:
    budgets = sorted({c.budget for c in cells})
    raise ValueError(f'No finished runs at budget {budget}; the study has budgets {budgets}.')
  # One paired bootstrap per cell, shared by the verdict and the best's line.
  versus = {id(c): study_results.versus_teacher(c, teacher) for c in at_budget} if teacher else {}
  one_seed_above = []
  if teacher is None:
    verdict, candidates = NO_TEACHER, at_budget
  else:
    winners = [c for c in at_budget if beats_teacher(c, teacher, versus[id(c)])]
    one_seed_above = [(c, versus[id(c)]) for c in at_budget
                      if study_results.one_seed(c.n_seeds)
                      and above_teacher(c, teacher, versus[id(c)])]
    # Without a winner the best student is still named, for reference.
    verdict, candidates = (STUDENT, winners) if winners else (RUN_TEACHER, at_budget)
  best = max(candidates, key=lambda c: (c.mean, -c.offline_episodes))
  lo, hi = best.interval()
  ties = [c for c in at_budget if c is not best and not distinguishable(best, c)]
  best_by = study_results.best_per_budget(cells)
  alternatives = []
  for method in sorted({c.method for c in cells}):
    points = [(b, cell.mean) for (m, b), cell in best_by.items() if m == method]
    episodes = episodes_to_reach(points, best.mean)
    alternatives.append(Alternative(
        method=method, episodes=episodes,
        hours=None if episodes is None else episodes / episodes_per_hour,
        at_budget=best_by.get((method, budget))))
  alternatives.sort(key=lambda a: (a.episodes is None, a.episodes or 0, a.method))
  return Recommendation(budget=budget, best=best, interval=(lo, hi),
                        p_best=probability_best(at_budget), ties=ties,
                        alternatives=alternatives, episodes_per_hour=episodes_per_hour,
                        max_budget=max(c.budget for c in cells), verdict=verdict,
                        teacher=teacher, versus_teacher=versus.get(id(best)),
                        one_seed_above=one_seed_above)


def format_teacher(teacher: dict) -> str:
  lo, hi = teacher['ci95']
  return (f'{pct(teacher["success_rate"])} [{pct(lo)}, {pct(hi)}] over '
          f'{teacher["episodes"]} eval episodes')


def _split(cell: study_results.Cell) -> str:
  return (f'{cell.method} with {cell.offline_episodes} teacher episodes offline '
          f'({pct(cell.proportion)} of the budget) and {cell.budget - cell.offline_episodes} '
          'online')


def _nothing_succeeded(rec: Recommendation) -> str:
  return ('no run succeeded in any evaluation episode (best upper 95 % bound '
          f'{pct(max(c.interval()[1] for c in [rec.best] + rec.ties))})')


def _minus_teacher(paired: Optional[study_results.Paired]) -> str:
  return f', minus the teacher {paired.format()}' if paired else ''


def _run_teacher(rec: Recommendation, header: str) -> str:
  b = rec.best
  lines = [f'{header}**No method beats the teacher ({format_teacher(rec.teacher)}) at '
           f'budget {rec.budget}: run the teacher.**']
  if b.mean == 0:
    lines.append(f'Among the students, {_nothing_succeeded(rec)}.')
  else:
    lo, hi = rec.interval
    lines.append(f'The best student, {_split(b)}, has {pct(b.mean)} [{pct(lo)}, {pct(hi)}] '
                 f'over {b.n_seeds} seed(s), P(best among the students) = '
                 f'{rec.p_best[(b.method, b.offline_episodes)]:.2f}; '
                 f'{_against_teacher(rec)}: '
                 + ('above it on these episodes, but from one training seed (below).'
                    if any(c is b for c, _ in rec.one_seed_above)
                    else 'not shown above the teacher.'))
  if rec.one_seed_above:
    lines.append('Above the teacher on these evaluation episodes, but each from one training '
                 'seed, whose interval counts the episodes and not the seeds: ' + '; '.join(
                     f'{_split(c)}, {c.format()}' + _minus_teacher(paired)
                     for c, paired in rec.one_seed_above)
                 + '. Run more seeds of these before spending the budget on one.')
  return '\n'.join(lines)


def format_recommendation(rec: Recommendation) -> str:
  b = rec.best
  lo, hi = rec.interval
  header = f'**Budget {rec.budget} episodes** ({b.triplet}, {b.teacher} teacher, {b.obs}): '
  if rec.verdict == RUN_TEACHER:
    return _run_teacher(rec, header)
  no_teacher = (f'No evaluation of the {b.teacher} teacher on {b.triplet} in this study: '
                'the comparison with the teacher could not be made.')
  if b.mean == 0:  # Only without a teacher: any teacher's upper bound is above 0.
    return (f'{header}{_nothing_succeeded(rec)}, so there is no split to recommend at this '
            f'budget: spend more episodes, or train longer. {no_teacher}')
  lines = [
      f'{header}best is **{_split(b)}**: success {pct(b.mean)} [{pct(lo)}, {pct(hi)}] over '
      f'{b.n_seeds} seed(s), P(best) = {rec.p_best[(b.method, b.offline_episodes)]:.2f}.']
  if rec.verdict == STUDENT:
    lines.append(f'**It beats the teacher** ({format_teacher(rec.teacher)}): '
                 f'{_against_teacher(rec)}.')
  else:
    lines.append(no_teacher)
  if rec.ties:
    lines.append('Not distinguishable from it (the paired difference\'s 95 % interval '
                 'includes 0, or without per-start outcomes the intervals overlap): '
                 + '; '.join(
        f'{c.method} offline {c.offline_episodes} {c.format()}, '
        f'P(best) = {rec.p_best[(c.method, c.offline_episodes)]:.2f}' for c in rec.ties) + '.')
  else:
    lines.append('Every other split is shown below it (95 %).')
  lines += ['', f'Robot time each method needs (best offline proportion per budget) for '
            f'{pct(b.mean)} success, at {rec.episodes_per_hour:.1f} episodes/hour:', '',
            '| method | episodes | hours | success at this budget |', '|---|---|---|---|']
  for alt in rec.alternatives:
    if alt.episodes is None:
      need, hours = f'> {rec.max_budget} (not reached in the study)', '–'
    else:
      need, hours = f'{alt.episodes:.0f}', f'{alt.hours:.1f}'
    here = (f'{alt.at_budget.format()} (offline {alt.at_budget.offline_episodes})'
            if alt.at_budget else 'not run at this budget')
    lines.append(f'| {alt.method} | {need} | {hours} | {here} |')
  return '\n'.join(lines)


def as_row(rec: Recommendation) -> dict:
  """The recommendation as plain JSON (results.json's `recommendations`)."""
  b, t = rec.best, rec.teacher
  return {
      'budget': rec.budget, 'triplet': b.triplet, 'teacher': b.teacher, 'obs': b.obs,
      'verdict': rec.verdict,
      # Under run_teacher: the best student, for reference; not a recommendation.
      'student': {'method': b.method, 'offline_episodes': b.offline_episodes,
                  'online_episodes': b.budget - b.offline_episodes, 'seeds': b.n_seeds,
                  'success_rate': b.mean, 'ci95': list(rec.interval),
                  'p_best': rec.p_best[(b.method, b.offline_episodes)]},
      'teacher_success': None if t is None else {
          'success_rate': t['success_rate'], 'ci95': list(t['ci95']),
          'episodes': t['episodes']},
      'student_minus_teacher': rec.versus_teacher and rec.versus_teacher.as_dict(),
      'one_seed_above_teacher': [{'method': c.method, 'offline_episodes': c.offline_episodes}
                                 for c, _ in rec.one_seed_above],
  }


def recommend_group(study: study_results.Study, cells: Sequence[study_results.Cell],
                    budget: int,
                    episodes_per_hour: float = PAPER_EPISODES_PER_HOUR) -> Recommendation:
  """`recommend` for one group of `group_cells`, against its teacher's evaluation."""
  return recommend(cells, budget, episodes_per_hour,
                   study.teacher(cells[0].teacher, cells[0].triplet))


def variants_above_teacher(study: study_results.Study) -> list:
  """(cell, paired or None) for each sweep cell shown above its teacher, by the rule a
  grid cell must meet to be recommended.  The recommendation reads the main grid only:
  a sweep varies one setting of a method, often chosen after the grid ran, so it is not
  one of the study's options; but a reader of the recommendation alone should see it."""
  above = []
  for cell in sorted(study.cells, key=study_results.table_order):
    teacher = study.teacher(cell.teacher, cell.triplet)
    if cell.sweep != 'grid' and teacher:
      paired = study_results.versus_teacher(cell, teacher)
      if beats_teacher(cell, teacher, paired):
        above.append((cell, paired))
  return above


def _variant(cell: study_results.Cell) -> str:
  settings = ', '.join(f'{k} = {v}' for k, v in cell.overrides)  # None: a sweep of sizes.
  return (f'{cell.method}{f" with {settings}" if settings else ""} (sweep `{cell.sweep}`), '
          f'{cell.offline_episodes} of {cell.budget} episodes offline, {cell.triplet}, '
          f'{cell.teacher} teacher, {cell.obs}')


def format_variants_above(above: Sequence[tuple]) -> str:
  return ('Sweep variants shown above their teacher, which the recommendation above does '
          'not count (each changes a setting of the method\'s row; run it as a grid row on '
          'fresh seeds before spending a budget on it): ' + '; '.join(
              f'{_variant(c)}: {c.format()}' + _minus_teacher(paired) for c, paired in above)
          + '.')


def group_cells(study: study_results.Study, triplet: Optional[str], teacher: Optional[str],
                obs: Optional[str]) -> dict:
  """{(triplet, teacher, obs): main-grid cells}, filtered by the given values."""
  groups = {}
  for cell in study.select('grid'):
    key = (cell.triplet, cell.teacher, cell.obs)
    if all(v is None or v == k for v, k in zip((triplet, teacher, obs), key)):
      groups.setdefault(key, []).append(cell)
  return dict(sorted(groups.items()))


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('workdir', help='a study folder (python -m learners.study --workdir)')
  parser.add_argument('--budget', type=int, required=True, help='episodes on the task')
  parser.add_argument('--triplet', default=None)
  parser.add_argument('--teacher', default=None)
  parser.add_argument('--obs', default=None)
  parser.add_argument('--episodes_per_hour', type=float, default=PAPER_EPISODES_PER_HOUR)
  args = parser.parse_args(argv)
  if args.episodes_per_hour <= 0:
    parser.error('--episodes_per_hour must be > 0')
  try:
    study = study_results.load_study(args.workdir)
    groups = group_cells(study, args.triplet, args.teacher, args.obs)
    if not groups:
      raise ValueError('no finished runs match (triplet, teacher, obs) = '
                       f'({args.triplet}, {args.teacher}, {args.obs}).')
    for cells in groups.values():
      print(format_recommendation(recommend_group(study, cells, args.budget,
                                                  args.episodes_per_hour)))
      print()
  except (ValueError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
