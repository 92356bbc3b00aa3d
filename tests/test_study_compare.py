"""Two studies side by side (learners.study.compare), on synthetic reports."""

import json
import os

import pytest

from learners.study import compare
from learners.study import report
from test_study_report import make_study  # pylint: disable=g-bad-import-order


def _results(root, results, teacher_rate, sweeps=()):
  make_study(root, results, teacher_rate=teacher_rate, sweeps=sweeps)
  report.write_report(root, episodes_per_hour=50)
  return os.path.join(root, 'report', 'results.json')


def test_compare_matches_cells_and_scales_by_each_teacher(tmp_path, capsys):
  smooth = _results(str(tmp_path / 'smooth'), [
      ('CRR', 100, 100, 0, 20, 100), ('BC', 100, 100, 0, 30, 100)], teacher_rate=0.4)
  sweep = [('beta', {'beta': 0.0}, ('R-CRR', 100, 50, 0, 5, 100))]
  scripted = _results(str(tmp_path / 'scripted'), [('CRR', 100, 100, 0, 40, 100)],
                      teacher_rate=0.2, sweeps=sweep)
  assert compare.main([smooth, scripted, '--output', str(tmp_path / 'c.md')]) == 0
  text = open(tmp_path / 'c.md').read()
  # 20 % of a 40 % teacher is 0.50x; 40 % of a 20 % teacher is 2.00x.
  assert ('| CRR, 100 (100 offline) | 20.0% [13.3%, 28.9%], n=1 (0.50× teacher); '
          'no training log | 40.0% [30.9%, 49.8%], n=1 (2.00× teacher); no training log |'
          ) in text
  assert '| BC, 100 (100 offline) | 30.0% [21.9%, 39.6%], n=1 (0.75× teacher); ' in text
  assert ('| R-CRR, 100 (50 offline), sweep beta beta=0.0 | – | 5.0% [2.2%, 11.2%], n=1 '
          '(0.25× teacher); no training log |') in text
  assert '| teacher | 40.0% [30.9%, 49.8%], 100 episodes | 20.0% [13.3%, 28.9%], 100 episodes |' \
      in text
  assert '| teacher data | no card | no card |' in text  # The synthetic runs name no dataset.
  data = json.load(open(smooth))
  data['teacher_data'] = [dict(triplet='triplet1', teacher='generalization', episodes=n,
                               success_rate=rate, policy_mode='stochastic')
                          for n, rate in ((100, 0.5), (500, 0.146))]
  assert compare._data_entry(dict(data, triplet='triplet1', teacher='generalization')) == (  # pylint: disable=protected-access
      '14.6% of 500 episodes end stacked (stochastic)')  # The largest dataset's card.
  # Both synthetic studies are named `synthetic`: the columns take the files' paths.
  assert text.splitlines()[2] == f'| | {smooth} | {scripted} |'
  # Claim (a), CRR at the largest budget vs the teacher, goes opposite ways (in the
  # means: one training seed each).
  assert ('| (a) | offline CRR at the largest budget >= the teacher | **fails in the means** | '
          '**holds in the means** |') in text
  assert compare.main([smooth, str(tmp_path / 'absent.json')]) == 2
  assert 'absent.json not found' in capsys.readouterr().err


def test_compare_refuses_ambiguous_or_foreign_files(tmp_path):
  path = _results(str(tmp_path / 'a'), [('CRR', 100, 100, 0, 20, 100)], teacher_rate=0.4)
  data = json.load(open(path))
  data['cells'].append(dict(data['cells'][0], triplet='triplet2'))
  two = tmp_path / 'two.json'
  two.write_text(json.dumps(data))
  with pytest.raises(ValueError, match=r"holds 2 \(triplet, teacher\) pairs"):
    compare._load(str(two))  # pylint: disable=protected-access
  foreign = tmp_path / 'foreign.json'
  foreign.write_text(json.dumps({'runs': []}))
  with pytest.raises(ValueError, match="lacks \\['study', 'cells', 'teacher_success', "
                                       "'findings'\\]"):
    compare._load(str(foreign))  # pylint: disable=protected-access
