"""learners.study.pair: cells of different reports, paired start by start."""

import json
import os

import pytest

from learners.study import findings
from learners.study import pair
from learners.study import results as study_results


def _traded(n, wins, trades):
  """`wins` of `n` starts: the first `wins` but `trades` of them, plus `trades` after them."""
  return '0' * trades + '1' * (wins - trades) + '1' * trades + '0' * (n - wins - trades)


def _write(path, cells, teacher):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(dict(study='fake', cells=cells, teacher_success=[teacher]), f)
  return path


def _cell(method, seeds, sweep='grid', overrides=None, triplet='triplet2'):
  return dict(sweep=sweep, overrides=overrides or {}, method=method, triplet=triplet,
              teacher='generalization', obs='state', budget=500, offline_episodes=500,
              per_seed=[dict(seed=s, outcomes=o) for s, o in seeds.items()])


def _teacher(outcomes, triplet='triplet2'):
  return dict(teacher='generalization', triplet=triplet, episodes=len(outcomes),
              outcomes=outcomes)


def test_pair_pools_seeds_across_reports_and_pairs_with_the_longest_teacher(tmp_path):
  # Teacher: the first 400 of 1 000 starts (the first study evaluated it on 200 of them).
  # CRR seeds 0 and 1 in one report, seed 2 in another, the sweep's eta = 0.3 beside it.
  teacher = '1' * 400 + '0' * 600
  first = _write(str(tmp_path / 'a' / 'results.json'),
                 [_cell('CRR', {0: _traded(1000, 410, 5), 1: _traded(1000, 420, 5)}),
                  _cell('CRR', {0: '1' * 1000}, 'eta', {'eta': 0.3})], _teacher(teacher[:200]))
  second = _write(str(tmp_path / 'b' / 'results.json'),
                  [_cell('CRR', {2: _traded(1000, 450, 5)})], _teacher(teacher))
  left = pair.load_side([first, second], 'method=CRR,budget=500')
  assert left.outcomes[2].count('1') == 450 and not left.teacher
  right = pair.load_side([first, second], 'teacher')
  assert right.outcomes == [teacher]  # The longest, agreeing with the shorter one.
  out = pair.compare(left, right)
  assert out['starts'] == 1000 and out['left_seeds'] == [410, 420, 450]
  # (410 + 420 + 450) / 3 000 - 400 / 1 000 = 42.67 - 40.0 = +2.67 points.
  assert out['paired']['difference'] == pytest.approx(0.0266667, abs=1e-6)
  expected = study_results.paired_difference(left.outcomes, [teacher])
  assert out['paired']['ci95'] == list(expected.ci95)
  assert out['verdict'] == findings.compare(
      findings.Result('l', 0, (0, 0), ('cell',), tuple(left.outcomes)),
      findings.Result('r', 0, (0, 0), (), (teacher,)))[0]
  # The override selects the sweep's cell (sweep defaults to grid only without one).
  sweep = pair.load_side([first], 'method=CRR,eta=.3')
  assert sweep.outcomes == ['1' * 1000] and 'eta=0.3' in sweep.label
  assert pair.compare(sweep, right)['verdict'] == findings.HOLDS_MEANS  # One seed.


def test_pair_refuses_what_cannot_be_paired(tmp_path):
  a = _write(str(tmp_path / 'a' / 'results.json'), [_cell('CRR', {0: '1100'})],
             _teacher('1010'))
  again = _write(str(tmp_path / 'b' / 'results.json'), [_cell('CRR', {0: '0011'})],
                 _teacher('0101'))
  with pytest.raises(ValueError, match='seed 0 .* a seed counts once'):
    pair.load_side([a, again], 'method=CRR')
  with pytest.raises(ValueError, match='disagrees with the others'):
    pair.load_side([a, again], 'teacher')
  with pytest.raises(ValueError, match="'method=BC' matches 0 cells"):
    pair.load_side([a], 'method=BC')


def test_pair_cli_prints_the_comparison(tmp_path, capsys):
  path = _write(str(tmp_path / 'results.json'),
                [_cell('CRR', {0: '1' * 90 + '0' * 10, 1: '1' * 90 + '0' * 10})],
                _teacher('1' * 50 + '0' * 50))
  assert pair.main(['--left', path, '--left_cell', 'method=CRR', '--right', path,
                    '--right_cell', 'teacher']) == 0
  text = capsys.readouterr().out
  assert 'left: sweep=grid,method=CRR,budget=500,offline_episodes=500: 90.0 % over 2 seed(s)' in text
  assert 'right: teacher generalization (100 starts): 50.0 % over 100 starts' in text
  assert 'left - right: +40.0 points [' in text and 'Left >= right: holds.' in text
