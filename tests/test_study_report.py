"""Report and split recommender on synthetic study folders (known answers).

The run folders here are written by the test (fake summary/eval JSON): they
check the report's arithmetic, not any learning result.
"""

import json
import os

import numpy as np
import pytest

from envs import evaluate as envs_evaluate
from learners.study import recommend
from learners.study import report
from learners.study import results as study_results


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(data, f)


def make_study(root, results, teacher_rate=0.3, sweeps=()):
  """results: [(method, budget, offline, seed, successes, episodes)]."""
  runs = []
  for sweep, overrides, (method, budget, offline, seed, wins, n) in (
      [('grid', {}, r) for r in results] + list(sweeps)):
    name = f'{method}_b{budget}_o{offline}_s{seed}_{sweep}_{len(runs)}'
    config = dict(method=method, triplet='triplet1', teacher='generalization', obs='state',
                  budget=budget, offline_episodes=offline, seed=seed, episode_steps=400,
                  grad_steps=1000, final_eval_episodes=n, **overrides)
    runs.append(dict(name=name, key=str(len(runs)), sweep=sweep, overrides=overrides,
                     config=config))
    run_dir = os.path.join(root, 'runs', name)
    final = dict(episodes=n, successes=wins, success_rate=wins / n, grad_step=1000,
                 ci95=list(envs_evaluate.wilson_interval(wins, n)), mean_return=0.0)
    _write(os.path.join(run_dir, 'summary.json'), dict(final_eval=final, ledger={}))
    half = dict(final, successes=wins // 2, success_rate=(wins // 2) / n, grad_step=500,
                label='eval', spent=offline + (budget - offline) // 2)
    _write(os.path.join(run_dir, 'eval.json'),
           [half, dict(final, label='final', spent=budget)])
  _write(os.path.join(root, 'study.json'), dict(name='synthetic', runs=runs))
  wins = int(teacher_rate * 100)
  _write(os.path.join(root, 'teachers.json'), dict(cells=[dict(
      teacher='generalization', triplet='triplet1', episodes=100, successes=wins,
      success_rate=wins / 100, ci95=list(envs_evaluate.wilson_interval(wins, 100)))]))
  return root


RESULTS = [
    # method, budget, offline, seed, successes, episodes
    ('CRR', 100, 100, 0, 20, 100), ('CRR', 100, 100, 1, 20, 100),
    ('CRR', 200, 200, 0, 40, 100), ('CRR', 200, 200, 1, 40, 100),
    ('R-CRR', 100, 25, 0, 10, 100), ('R-CRR', 100, 50, 0, 30, 100),
    ('R-CRR', 100, 75, 0, 25, 100),
    ('R-CRR', 200, 50, 0, 50, 100), ('R-CRR', 200, 100, 0, 80, 100),
    ('R-CRR', 200, 150, 0, 60, 100),
]


def test_study_cell_intervals(tmp_path):
  study = study_results.load_study(make_study(str(tmp_path), RESULTS))
  (crr100,) = study.select(method='CRR', budget=100)
  assert crr100.n_seeds == 2 and crr100.mean == pytest.approx(0.2)
  lo, hi = crr100.interval()
  # Two seeds of 20/100: the bootstrap over episodes of 200 pooled draws has a
  # standard error of sqrt(.2 * .8 / 200) = 2.8 %, so about +-5.5 % either side.
  assert lo < 0.2 < hi and 0.03 < 0.2 - lo < 0.08 and 0.03 < hi - 0.2 < 0.08
  (rcrr,) = study.select(method='R-CRR', budget=100, offline_episodes=50)
  assert rcrr.interval() == pytest.approx(study_results.wilson_interval(30, 100))
  # Degenerate: all seeds succeed every time -> the interval is the point.
  means = study_results.bootstrap_means([10, 10], [10, 10], np.random.default_rng(0))
  assert means.min() == means.max() == 1.0


def test_study_best_proportion_and_teacher(tmp_path):
  study = study_results.load_study(make_study(str(tmp_path), RESULTS))
  best = study_results.best_per_budget(study.select())
  assert best[('R-CRR', 100)].offline_episodes == 50
  assert best[('R-CRR', 200)].offline_episodes == 100
  assert best[('CRR', 200)].mean == pytest.approx(0.4)
  assert study.teacher('generalization', 'triplet1')['success_rate'] == pytest.approx(0.3)


def test_study_episodes_to_reach():
  points = [(100, 0.2), (200, 0.4)]
  assert recommend.episodes_to_reach(points, 0.3) == pytest.approx(150)
  assert recommend.episodes_to_reach(points, 0.4) == pytest.approx(200)
  assert recommend.episodes_to_reach(points, 0.1) == pytest.approx(100)
  assert recommend.episodes_to_reach(points, 0.5) is None
  # A dip at a larger budget does not count against it (monotone envelope).
  assert recommend.episodes_to_reach([(100, 0.5), (200, 0.3), (300, 0.7)], 0.6) == \
      pytest.approx(250)


def test_study_recommendation_known_answer(tmp_path):
  study = study_results.load_study(make_study(str(tmp_path), RESULTS))
  (cells,) = recommend.group_cells(study, None, None, None).values()
  rec = recommend.recommend(cells, 200, episodes_per_hour=50)
  assert (rec.best.method, rec.best.offline_episodes) == ('R-CRR', 100)
  assert rec.interval == pytest.approx(study_results.wilson_interval(80, 100))
  # 80 % vs the runner-up 60 %: intervals [70.6, 87.0] and [50.2, 69.0] do not overlap.
  assert rec.ties == []
  assert rec.p_best[('R-CRR', 100)] > 0.95
  assert sum(rec.p_best.values()) == pytest.approx(1.0)
  by_method = {a.method: a for a in rec.alternatives}
  assert by_method['R-CRR'].episodes == pytest.approx(200)
  assert by_method['R-CRR'].hours == pytest.approx(4.0)  # 200 episodes at 50/h.
  assert by_method['CRR'].episodes is None  # 40 % at 200 never reaches 80 %.
  # At budget 100 the best is R-CRR 50/50 (30 %); CRR reaches 30 % at 150 episodes.
  rec = recommend.recommend(cells, 100, episodes_per_hour=50)
  assert (rec.best.method, rec.best.offline_episodes) == ('R-CRR', 50)
  by_method = {a.method: a for a in rec.alternatives}
  assert by_method['CRR'].episodes == pytest.approx(150)
  assert by_method['CRR'].hours == pytest.approx(3.0)
  # R-CRR 75 offline (25 %) overlaps 30 %: reported as a tie.
  assert {(c.method, c.offline_episodes) for c in rec.ties} >= {('R-CRR', 75)}
  text = recommend.format_recommendation(rec)
  assert 'R-CRR with 50 teacher episodes offline (50.0% of the budget)' in text
  assert '| CRR | 150 | 3.0 |' in text


def test_study_recommend_cli(tmp_path, capsys):
  root = make_study(str(tmp_path), RESULTS)
  assert recommend.main([root, '--budget', '100', '--episodes_per_hour', '50']) == 0
  assert '| CRR | 150 | 3.0 |' in capsys.readouterr().out
  assert recommend.main([root, '--budget', '150']) == 2
  assert 'budgets [100, 200]' in capsys.readouterr().err


def test_study_report_writes_figures_and_tables(tmp_path):
  sweeps = [('batch', {'batch_size': 32}, ('R-CRR', 200, 100, 0, 70, 100)),
            ('batch', {'batch_size': 64}, ('R-CRR', 200, 100, 0, 80, 100))]
  root = make_study(str(tmp_path / 'study'), RESULTS, sweeps=sweeps)
  path = report.write_report(root, episodes_per_hour=50)
  text = open(path).read()
  out = os.path.dirname(path)
  for name in ('fig3_success_vs_budget.png', 'fig4_success_vs_offline_proportion.png',
               'fig5_learning_curves.png', 'fig5_sweep_batch.png'):
    assert os.path.getsize(os.path.join(out, name)) > 5000, name
    assert f']({name})' in text
  lo, hi = study_results.wilson_interval(80, 100)
  assert f'80.0% [{100 * lo:.1f}, {100 * hi:.1f}] (n=1 seed, 100 eval eps)' in text
  assert '| generalization | triplet1 | 30.0% |' in text
  assert 'best is **R-CRR with 100 teacher episodes offline' in text
  assert '| batch batch_size=32 | R-CRR |' in text
  assert 'Full 400-step episodes.' in text


def test_study_report_lists_unfinished_runs(tmp_path):
  root = make_study(str(tmp_path), RESULTS)
  with open(os.path.join(root, 'study.json')) as f:
    index = json.load(f)
  index['runs'].append(dict(index['runs'][0], name='unfinished_run', key='x'))
  _write(os.path.join(root, 'study.json'), index)
  text = open(report.write_report(root)).read()
  assert '1 runs are not finished' in text and 'unfinished_run' in text


def test_study_recommendation_when_nothing_succeeds(tmp_path):
  zeros = [('CRR', 100, 100, 0, 0, 50), ('R-CRR', 100, 50, 0, 0, 50)]
  study = study_results.load_study(make_study(str(tmp_path), zeros))
  (cells,) = recommend.group_cells(study, None, None, None).values()
  text = recommend.format_recommendation(recommend.recommend(cells, 100))
  assert 'no run succeeded' in text and 'no split to recommend' in text
  lo, hi = study_results.wilson_interval(0, 50)
  assert f'{100 * hi:.1f}%' in text
