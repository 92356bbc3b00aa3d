"""The paper's findings, checked on a study's main grid (the report's "Findings").

Each finding compares two results where both kept per-start outcomes by their
paired difference (learners.study.results.paired_difference: same evaluation
starts, one 95 % interval for the difference), else by their two 95 % intervals
(those of the report's tables), and says where it stands:

  * `holds` / `fails`: the difference's interval excludes 0 (or the two
    intervals separate), in the claimed direction or not;
  * `level`: no difference shown, and the paired difference's 95 % interval lies
    within +-LEVEL_MARGIN: the two are measured equal to that resolution;
  * `holds in the means` / `fails in the means`: no difference shown with this
    many seeds and evaluation episodes, or a student side has one training seed
    (its interval then counts evaluation starts, not seeds); the means' order is
    all there is;
  * `not measured`: the study lacks the cells (the note says which).

The claims (Sec. V of the paper), per (triplet, teacher, obs) of the grid:

  (a) offline CRR at the largest budget reaches the teacher (CRR >= teacher);
  (b) R-CRR beats CRR at the smallest budget (R-CRR at its best proportion);
      the larger shared budgets are compared in the note, outside the verdict;
  (c) about half of the budget offline is best for R-CRR: the best proportion
      per budget, and whether it stands apart from the others;
  (d) MPO stays below the teacher at every budget;
  (e) DAgger-mixed vs DAgger and CRR-mixed vs CRR at each shared budget (the
      paper finds the mixed variants better; "either way" here).

Arithmetic on cells only: no TensorFlow.
"""

import dataclasses
from typing import Optional, Sequence

from learners.study import results as study_results
from learners.study.results import pct

HOLDS, FAILS = 'holds', 'fails'
HOLDS_MEANS, FAILS_MEANS = 'holds in the means', 'fails in the means'
LEVEL = 'level'
NOT_MEASURED = 'not measured'
# Differences under 5 points are what a laptop study cannot buy seeds for (a
# 3.6-point gap needs ~40 seeds per cell at the spread of docs/results/
# laptop_triplet2_b) and what one checkpoint swings by; an interval that
# tight is an answer, "level", not "in the means".
LEVEL_MARGIN = 0.05


@dataclasses.dataclass(frozen=True)
class Result:
  """One side of a comparison: a cell or the teacher."""
  label: str
  mean: float
  ci95: tuple
  cell_key: tuple = ()  # (method, budget, offline_episodes); () for the teacher.
  outcomes: tuple = ()  # Per seed, per-start outcome strings ('' where not kept).

  @classmethod
  def of_cell(cls, cell: study_results.Cell) -> 'Result':
    return cls(f'{cell.method} at {cell.budget} ({cell.offline_episodes} offline, '
               f'n={cell.n_seeds})', cell.mean, tuple(cell.interval()),
               (cell.method, cell.budget, cell.offline_episodes), tuple(cell.outcomes))

  @classmethod
  def of_teacher(cls, teacher: dict) -> 'Result':
    return cls(f'teacher ({teacher["episodes"]} episodes)', teacher['success_rate'],
               tuple(teacher['ci95']), outcomes=(teacher.get('outcomes', ''),))

  def format(self) -> str:
    return f'{self.label} {pct(self.mean)} [{pct(self.ci95[0])}, {pct(self.ci95[1])}]'


def compare(left: Result, right: Result, claim_left_higher: bool = True) -> tuple:
  """(verdict, line): where the claim "left >= right" (or "left < right") stands, and
  the comparison as the report prints it, from one paired bootstrap."""
  paired = study_results.paired_difference(left.outcomes, right.outcomes)
  one_seed = any(r.cell_key and study_results.one_seed(len(r.outcomes))
                 for r in (left, right))
  if paired:
    above, below = paired.ci95[0] > 0, paired.ci95[1] < 0
    verdict_ = paired_verdict(paired, one_seed, claim_left_higher)
  else:
    above = study_results.interval_above(left.ci95, right.ci95)
    below = study_results.interval_above(right.ci95, left.ci95)
    verdict_ = _verdict(above, below, left.mean >= right.mean, False, one_seed,
                        claim_left_higher)
  line = (f'{left.format()} {">=" if claim_left_higher else "<"} {right.format()}'
          + (f' ({paired.format()}{_on_shared_starts(paired, left, right)})' if paired else '')
          + ('; one training seed, so no verdict beyond the means' if one_seed and
             (above or below) else ''))
  return verdict_, line


def _on_shared_starts(paired: study_results.Paired, *sides: Result) -> str:
  """Each side's success on the starts the pairing used, where a side was scored on
  more: its mean over all of them need not order the same way."""
  if all(len(o) == paired.starts for side in sides for o in side.outcomes):
    return ''
  return f': {pct(paired.means[0])} vs {pct(paired.means[1])} on those starts'


def paired_verdict(paired: study_results.Paired, one_seed: bool,
                   claim_left_higher: bool = True) -> str:
  """The verdict on a paired difference (left - right); `one_seed`: a student side has
  one training seed, so its interval counts evaluation starts only."""
  return _verdict(paired.ci95[0] > 0, paired.ci95[1] < 0, paired.difference >= 0,
                  max(map(abs, paired.ci95)) <= LEVEL_MARGIN, one_seed, claim_left_higher)


def _verdict(above: bool, below: bool, higher: bool, level: bool, one_seed: bool,
             claim_left_higher: bool) -> str:
  if (above or below) and not one_seed:
    return HOLDS if above == claim_left_higher else FAILS
  if level and not one_seed:
    return LEVEL
  return HOLDS_MEANS if higher == claim_left_higher else FAILS_MEANS


def verdict(left: Result, right: Result, claim_left_higher: bool = True) -> str:
  return compare(left, right, claim_left_higher)[0]


@dataclasses.dataclass
class Finding:
  key: str  # 'a' .. 'e'
  claim: str
  group: tuple  # (triplet, teacher, obs)
  verdicts: list  # One per comparison; empty: not measured.
  lines: list  # The comparisons, as text.
  note: str = ''
  # (method, budget, offline_episodes) of the cells compared: the diagnostics'
  # evidence for a claim that fails (learners.study.diagnostics).
  cells: list = dataclasses.field(default_factory=list)

  @property
  def verdict(self) -> str:
    """The weakest of the comparisons' verdicts (all must hold for the claim)."""
    if not self.verdicts:
      return NOT_MEASURED
    order = (FAILS, FAILS_MEANS, LEVEL, HOLDS_MEANS, HOLDS)
    return min(self.verdicts, key=order.index)

  def as_row(self) -> dict:
    triplet, teacher, obs = self.group
    return {'finding': self.key, 'claim': self.claim, 'triplet': triplet,
            'teacher': teacher, 'obs': obs, 'verdict': self.verdict,
            'comparisons': [f'{v}: {line}' for v, line in zip(self.verdicts, self.lines)],
            'note': self.note}


def _add_comparison(finding: Finding, left: Result, right: Result, higher: bool = True) -> None:
  v, line = compare(left, right, higher)
  finding.verdicts.append(v)
  finding.cells += [r.cell_key for r in (left, right) if r.cell_key and r.cell_key not in
                    finding.cells]
  finding.lines.append(line)


def _best(cells: Sequence[study_results.Cell], method: str, budget: int):
  best = study_results.best_per_budget(c for c in cells if c.method == method)
  return best.get((method, budget))


def _budgets(cells, method: str) -> list:
  return sorted({c.budget for c in cells if c.method == method})


def findings_for_group(cells: Sequence[study_results.Cell], group: tuple,
                       teacher: Optional[dict]) -> list:
  teacher_result = Result.of_teacher(teacher) if teacher else None
  out = []

  a = Finding('a', 'offline CRR at the largest budget >= the teacher', group, [], [])
  crr_budgets = _budgets(cells, 'CRR')
  if crr_budgets and teacher_result:
    _add_comparison(a, Result.of_cell(_best(cells, 'CRR', crr_budgets[-1])), teacher_result)
  else:
    a.note = 'needs CRR runs and a teacher evaluation'
  out.append(a)

  b = Finding('b', 'R-CRR >= CRR at the smallest budget', group, [], [])
  shared = sorted(set(crr_budgets) & set(_budgets(cells, 'R-CRR')))
  if shared:
    _add_comparison(b, Result.of_cell(_best(cells, 'R-CRR', shared[0])),
                    Result.of_cell(_best(cells, 'CRR', shared[0])))
    # The claim is about the smallest budget; the larger ones are shown, not judged.
    larger = []
    for budget in shared[1:]:
      left, right = (Result.of_cell(_best(cells, m, budget)) for m in ('R-CRR', 'CRR'))
      larger.append('at {} (not the claim\'s budget): {}: {}'.format(
          budget, *compare(left, right)))
    b.note = '; '.join(['R-CRR at its best offline proportion'] + larger)
  else:
    b.note = 'needs R-CRR and CRR at a shared budget'
  out.append(b)

  c = Finding('c', 'about half of the budget offline is best for R-CRR', group, [], [])
  for budget in _budgets(cells, 'R-CRR'):
    tried = sorted((x for x in cells if x.method == 'R-CRR' and x.budget == budget),
                   key=lambda x: x.offline_episodes)
    if len(tried) < 2:
      continue
    best = _best(cells, 'R-CRR', budget)
    # "About half": the best proportion is the one nearest 0.5 among those tried.
    nearest_half = min(tried, key=lambda x: (abs(x.proportion - 0.5), x.offline_episodes))
    scored = {x.offline_episodes: Result.of_cell(x) for x in tried}  # One bootstrap each.
    best_result = scored[best.offline_episodes]
    apart = all(verdict(best_result, r) == HOLDS for size, r in scored.items()
                if size != best.offline_episodes)
    if best is nearest_half:
      c.verdicts.append(HOLDS if apart else HOLDS_MEANS)
    else:
      c.verdicts.append(FAILS if verdict(best_result, scored[nearest_half.offline_episodes])
                        == HOLDS else FAILS_MEANS)
    c.cells += [(x.method, x.budget, x.offline_episodes) for x in tried]
    c.lines.append(f'budget {budget}: best proportion {best.proportion:.2f} ('
                   + ', '.join(f'{x.proportion:.2f}: {pct(x.mean)}' for x in tried) + ')'
                   + ('; the best stands apart from every other' if apart else
                      '; the best overlaps another proportion'))
  if not c.verdicts:
    c.note = 'needs R-CRR at two or more offline proportions of one budget'
  out.append(c)

  d = Finding('d', 'MPO < the teacher at every budget', group, [], [])
  if teacher_result:
    for budget in _budgets(cells, 'MPO'):
      _add_comparison(d, Result.of_cell(_best(cells, 'MPO', budget)), teacher_result, higher=False)
  if not d.verdicts:
    d.note = 'needs MPO runs and a teacher evaluation'
  out.append(d)

  e = Finding('e', 'DAgger-mixed >= DAgger and CRR-mixed >= CRR', group, [], [])
  for mixed, plain in (('DAgger-mixed', 'DAgger'), ('CRR-mixed', 'CRR')):
    for budget in sorted(set(_budgets(cells, mixed)) & set(_budgets(cells, plain))):
      _add_comparison(e, Result.of_cell(_best(cells, mixed, budget)),
                      Result.of_cell(_best(cells, plain, budget)))
  e.note = ('mixed methods at their best offline proportion' if e.verdicts else
            'needs a mixed method and its plain variant at a shared budget')
  out.append(e)
  return out


def study_findings(study: study_results.Study) -> list:
  """Every finding for every (triplet, teacher, obs) of the main grid."""
  grid = study.select('grid')
  out = []
  for group in sorted({(c.triplet, c.teacher, c.obs) for c in grid}):
    cells = [c for c in grid if (c.triplet, c.teacher, c.obs) == group]
    out += findings_for_group(cells, group, study.teacher(group[1], group[0]))
  return out


def format_findings(findings: Sequence[Finding]) -> str:
  if not findings:
    return 'No finished runs in the main grid.'
  lines = ['Each claim against this study\'s cells: **holds** / **fails** where the 95 % '
           'interval of the paired difference (same evaluation starts) excludes 0, or, for '
           'runs without per-start outcomes, where the two 95 % intervals separate; '
           f'**level** where that paired interval lies within ±{100 * LEVEL_MARGIN:.0f} points '
           '(measured equal to that resolution); **in the means** otherwise (no difference '
           'shown with these seeds and episodes).',
           '',
           '| | claim (the paper) | triplet, teacher, obs | here | comparisons (95 % intervals) |',
           '|---|---|---|---|---|']
  for f in findings:
    details = '<br>'.join(f'{v}: {line}' for v, line in zip(f.verdicts, f.lines))
    details = '; '.join(x for x in (details, f.note) if x)
    lines.append(f'| ({f.key}) | {f.claim} | {", ".join(f.group)} | **{f.verdict}** | '
                 f'{details} |')
  return '\n'.join(lines)
