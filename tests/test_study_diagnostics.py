"""The report's "why" section: training-log medians per cell (known answers).

Study folders are the synthetic ones of test_study_report, with a hand-written
metrics.jsonl per run.
"""

import json
import os

import pytest

from learners.study import diagnostics
from learners.study import report
from learners.study import results as study_results
from test_study_report import make_study  # pylint: disable=g-bad-import-order


def _write_metrics(run_dir, rows, tail_garbage=''):
  with open(os.path.join(run_dir, 'metrics.jsonl'), 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in rows)
    f.write(tail_garbage)


def test_tail_medians_take_the_last_quarter_and_skip_a_cut_line(tmp_path):
  # Steps 0, 100, ..., 1000: the last quarter is steps >= 750, i.e. 800, 900, 1000.
  rows = [{'grad_step': s, 'weight_max': s / 100, 'eta': 1.0} for s in range(0, 1001, 100)]
  rows[-2]['kl_nonparametric'] = 0.5  # Logged once in the tail: its own median.
  _write_metrics(str(tmp_path), rows, tail_garbage='{"grad_step": 11')
  got = diagnostics.tail_medians(str(tmp_path / 'metrics.jsonl'))
  assert got == {'weight_max': 9.0, 'eta': 1.0, 'kl_nonparametric': 0.5}
  assert diagnostics.tail_medians(str(tmp_path / 'absent.jsonl')) == {}


@pytest.mark.parametrize('values, expected', [
    ({'weight_min': 1.0, 'weight_max': 1.0}, 'clones: every weight 1'),
    ({'weight_min': 0.9, 'weight_max': 1.1, 'kl_nonparametric': 0.01},
     'near-uniform weights: imitates its prior'),
    ({'weight_min': 0.01, 'weight_max': 5.0, 'kl_nonparametric': 0.4},
     're-weights its prior samples'),
    ({'weight_min': 0.01, 'weight_max': 5.0}, 're-weights the data'),
    ({}, 'no training log'),
])
def test_reading(values, expected):
  assert diagnostics.reading(values) == expected


def test_cell_means_over_seeds_in_report_and_results_json(tmp_path):
  results = [('CRR', 100, 100, 0, 20, 100), ('CRR', 100, 100, 1, 30, 100),
             ('R-CRR', 100, 50, 0, 10, 100), ('BC', 100, 100, 0, 5, 100)]
  root = make_study(str(tmp_path / 'study'), results)
  study = study_results.load_study(root)
  by_method = {c.method: c for c in study.cells}
  assert len(by_method['CRR'].run_dirs) == 2
  for seed, run_dir in enumerate(by_method['CRR'].run_dirs):
    _write_metrics(run_dir, [{'grad_step': 1000, 'weight_min': 0.01 * (seed + 1),
                              'weight_max': 2.0 + seed, 'eta': 1.0, 'q_batch_mean': 40.0}])
  _write_metrics(by_method['R-CRR'].run_dirs[0], [
      {'grad_step': 1000, 'weight_min': 0.8, 'weight_max': 1.2, 'eta': 0.5,
       'q_sample_std': 0.05, 'kl_nonparametric': 0.004, 'teacher_fraction': 0.75}])
  # BC's run has no metrics.jsonl: the row says so rather than guessing.
  rows = {r['method']: r for r in diagnostics.study_diagnostics(study)}
  assert rows['CRR']['runs_logged'] == 2
  assert rows['CRR']['tail_medians'] == pytest.approx(
      {'weight_min': 0.015, 'weight_max': 2.5, 'eta': 1.0, 'q_batch_mean': 40.0})
  assert rows['CRR']['reading'] == 're-weights the data'
  assert rows['CRR']['grad_steps'] == 1000  # From each run's summary: the steps trained.
  assert rows['BC'] == dict(rows['BC'], runs_logged=0, tail_medians={},
                            reading='no training log')
  table = diagnostics.format_diagnostics(list(rows.values()))
  # Q spread / eta = 0.05 / 0.5.
  assert ('| grid | R-CRR | 100 | 50 | 1,000 | 0.8–1.2 | 0.004 | 0.1 | 0.75 | – | – | '
          'near-uniform weights: imitates its prior |') in table
  assert '| grid | CRR | 100 | 100 | 1,000 | 0.015–2.5 | – | – | – | 40.0 | – |' in table

  path = report.write_report(root, episodes_per_hour=50)
  text = open(path).read()
  assert '## Why, from the training logs' in text
  # R-CRR at 10 % vs CRR at 25 %: claim (b) fails, and the report names both losses.
  assert ('- (b) fails in the means, triplet1, generalization, state: R-CRR at 100 (50 '
          'offline): near-uniform weights: imitates its prior (1,000 grad steps, weights '
          '0.8–1.2, KL from uniform 0.004 nats, Q spread / η 0.1, teacher share 0.75); CRR at '
          '100 (100 offline): re-weights the data (1,000 grad steps, weights 0.015–2.5).') in text
  data = json.load(open(os.path.join(os.path.dirname(path), 'results.json')))
  assert [(r['method'], r['runs_logged']) for r in data['diagnostics']] == [
      ('BC', 0), ('CRR', 2), ('R-CRR', 1)]
