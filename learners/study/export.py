"""A study's numbers as one JSON file, `results.json` beside the report.

For scripts and for diffing two studies: every cell (main grid and sweeps) with
its per-seed successes and per-start outcomes, the 95 % interval the report's
tables print and the paired difference with the teacher, the teacher evaluation
(with its per-start outcomes), the recommendation per budget, the paper's
findings checked (learners.study.findings), each cell's training-log medians
(learners.study.diagnostics) and the teacher datasets' cards
(learners.study.teacher_data).  Rows are sorted and keys too, so a rerun on the
same results writes the same bytes.
"""

from typing import Optional, Sequence

from learners.study import findings as findings_lib
from learners.study import recommend as recommend_lib
from learners.study import results as study_results
from learners.training import workdir as run_files

RESULTS_FILE = 'results.json'


def variant_row(cell: study_results.Cell, paired: Optional[study_results.Paired]) -> dict:
  """Which cell it is, and its difference with the teacher."""
  return {
      # Paired start by start on the shared evaluation starts; None without outcomes.
      'minus_teacher': paired and paired.as_dict(),
      'sweep': cell.sweep, 'overrides': dict(cell.overrides),  # A sweep's value(s).
      'method': cell.method, 'triplet': cell.triplet, 'teacher': cell.teacher,
      'obs': cell.obs, 'budget': cell.budget, 'offline_episodes': cell.offline_episodes,
  }


def cell_row(cell: study_results.Cell, study: study_results.Study) -> dict:
  lo, hi = cell.interval()
  return {
      **variant_row(cell, study.versus_teacher(cell)),
      'seeds': cell.n_seeds, 'success_rate': cell.mean, 'ci95': [lo, hi],
      'per_seed': [{'seed': seed, 'successes': wins, 'episodes': n, 'success_rate': wins / n,
                    'outcomes': outcomes}
                   for seed, wins, n, outcomes in sorted(zip(cell.seeds, cell.successes,
                                                             cell.episodes, cell.outcomes))],
  }


def teacher_row(cell: dict) -> dict:
  return {'teacher': cell['teacher'], 'triplet': cell['triplet'],
          'success_rate': cell['success_rate'], 'ci95': list(cell['ci95']),
          'episodes': cell['episodes'], 'outcomes': cell.get('outcomes', '')}


def study_json(study: study_results.Study,
               recommendations: Sequence[recommend_lib.Recommendation],
               findings: Sequence[findings_lib.Finding] = (),
               diagnostics: Sequence[dict] = (),
               teacher_data: Sequence[dict] = ()) -> dict:
  rows = [recommend_lib.as_row(r) for r in recommendations]
  return {
      'teacher_data': list(teacher_data),  # Already sorted.
      'diagnostics': list(diagnostics),  # Already in the cells' table order.
      'findings': [f.as_row() for f in findings],
      'study': study.name,
      'missing_runs': sorted(study.missing),
      'cells': [cell_row(c, study) for c in sorted(study.cells, key=study_results.table_order)],
      'teacher_source': study.teacher_source,
      'teacher_success': sorted((teacher_row(c) for c in study.teachers),
                                key=lambda r: (r['teacher'], r['triplet'])),
      'recommendations': sorted(rows, key=lambda r: (r['budget'], r['triplet'],
                                                     r['teacher'], r['obs'])),
      # Sweep cells above their teacher, which the recommendations do not count.
      'variants_above_teacher': [variant_row(c, paired) for c, paired
                                 in recommend_lib.variants_above_teacher(study)],
  }


def write_results(path: str, study: study_results.Study,
                  recommendations: Sequence[recommend_lib.Recommendation],
                  findings: Sequence[findings_lib.Finding] = (),
                  diagnostics: Sequence[dict] = (),
                  teacher_data: Sequence[dict] = ()) -> str:
  # The runs' own writer: tmp file + rename, sorted keys.
  run_files.write_json_atomic(path, study_json(study, recommendations, findings,
                                               diagnostics, teacher_data))
  return path
