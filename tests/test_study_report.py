"""Report and split recommender on synthetic study folders (known answers).

The run folders here are written by the test (fake summary/eval JSON): they
check the report's arithmetic, not any learning result.
"""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from envs import evaluate as envs_evaluate
from learners.study import figures
from learners.study import findings
from learners.study import recommend
from learners.study import report
from learners.study import results as study_results
from pipelines import build_teacher_datasets


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(data, f)


def nested(wins, n):
  """Per-start outcomes that succeed in the first `wins` starts: nested successes."""
  return '1' * wins + '0' * (n - wins)


def make_study(root, results, teacher_rate=0.3, sweeps=(), outcomes=False):
  """results: [(method, budget, offline, seed, successes, episodes)].

  The teacher succeeds in teacher_rate of 100 episodes; None: no teachers.json.
  outcomes: every evaluation keeps `nested` per-start outcomes (else none, as
  runs written before they were kept).
  """
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
    if outcomes:
      final.update(first_index=0, outcomes=nested(wins, n))
    _write(os.path.join(run_dir, 'summary.json'), dict(final_eval=final, ledger={}))
    half = dict(final, successes=wins // 2, success_rate=(wins // 2) / n, grad_step=500,
                label='eval', spent=offline + (budget - offline) // 2)
    _write(os.path.join(run_dir, 'eval.json'),
           [half, dict(final, label='final', spent=budget)])
  _write(os.path.join(root, 'study.json'), dict(name='synthetic', runs=runs))
  if teacher_rate is None:
    return root
  wins = round(teacher_rate * 100)
  teacher = dict(teacher='generalization', triplet='triplet1', episodes=100, successes=wins,
                 success_rate=wins / 100, ci95=list(envs_evaluate.wilson_interval(wins, 100)))
  if outcomes:
    teacher['outcomes'] = nested(wins, 100)
  _write(os.path.join(root, 'teachers.json'), dict(cells=[teacher]))
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

ONE_SEED_ABOVE = ('R-CRR with 100 teacher episodes offline (50.0% of the budget) and 100 '
                  'online, 80.0% [71.1, 86.7] (n=1 seed, 100 eval eps); ')


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
  # So a cell with no success in any seed takes Wilson over the pooled episodes:
  # 0 of 200 -> [0, 1.9 %], not the bootstrap's [0, 0].
  zero = study_results.Cell('grid', (), 'R-CRR', 't', 'g', 'state', 100, 50,
                            successes=[0, 0], episodes=[100, 100], seeds=[0, 1])
  assert zero.interval() == pytest.approx(study_results.wilson_interval(0, 200))
  assert zero.interval()[1] == pytest.approx(0.0188, abs=1e-4)


def test_paired_difference_known_answers():
  paired = study_results.paired_difference
  # One seed a side: 1100 - 1000 = 0.5 - 0.25.
  assert paired(['1100'], ['1000']).difference == pytest.approx(0.25)
  # Seeds are averaged per side: (0.5 + 0.5) / 2 - 0.
  assert paired(['10', '01'], ['00']).difference == pytest.approx(0.5)
  # Only the starts both evaluated count: the first 2 of 1111 against 10.
  p = paired(['1111'], ['10'])
  assert (p.difference, p.starts) == (pytest.approx(0.5), 2)
  # Seeds held fixed: only the starts are resampled.  Seeds 10 and 01 against 00:
  # +0.5 at each start, so +0.5 in every resample; resampling the seeds also
  # draws (10, 10), which scores 0, 0.5 or 1 on resampled starts.
  fixed = paired(['10', '01'], ['00'], resample_seeds=False)
  assert fixed.difference == pytest.approx(0.5) and fixed.ci95 == pytest.approx((0.5, 0.5))
  assert paired(['10', '01'], ['00']).ci95 == pytest.approx((0.0, 1.0))
  # The same outcomes: no difference, and none in any resample.
  assert paired(['1010'], ['1010']).ci95 == (0.0, 0.0)
  # A side without outcomes (runs written before they were kept): no pairing.
  assert paired(['1'], ['']) is None and paired([], ['1']) is None
  assert paired(['10', ''], ['1']) is None
  with pytest.raises(ValueError, match='string of 0 and 1'):
    paired(['12'], ['10'])


def test_paired_difference_separates_what_two_intervals_cannot():
  # Teacher 40/100, student 52/100 that stacks every start the teacher does and 12
  # more.  Wilson: [30.9, 49.8] and [42.3, 61.5] overlap, so no difference shows;
  # start by start every difference is 0 or +1: +12 points, and a resample of
  # 100 starts without one of the 12 has chance 0.88^100 = 3e-6, so the
  # interval lies above 0.
  teacher, student = nested(40, 100), nested(52, 100)
  lo_s, _ = study_results.wilson_interval(52, 100)
  _, hi_t = study_results.wilson_interval(40, 100)
  assert lo_s < hi_t
  p = study_results.paired_difference([student], [teacher])
  assert p.difference == pytest.approx(0.12) and p.starts == 100
  # Binomial(100, .12) / 100: sd 3.2 points, so about 12 -+ 6.4.
  assert 0.05 < p.ci95[0] < 0.08 and 0.16 < p.ci95[1] < 0.19
  assert p.format() == f'+12.0 points [{100 * p.ci95[0]:+.1f}, {100 * p.ci95[1]:+.1f}] ' \
      'paired over 100 starts'
  # The same success rate on other starts: unpaired the two look alike, paired the
  # difference is 0 with an interval around it.
  shuffled = nested(40, 100)[::-1]
  p = study_results.paired_difference([shuffled], [teacher])
  assert p.difference == 0 and p.ci95[0] < -0.1 and p.ci95[1] > 0.1


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
  root = make_study(str(tmp_path / 'a'), RESULTS)
  assert recommend.main([root, '--budget', '200', '--episodes_per_hour', '50']) == 0
  out = capsys.readouterr().out
  # R-CRR 100/100 at 200 (80/100) lies above the teacher, but on one training seed.
  assert ('Above the teacher on these evaluation episodes, but each from one training seed, '
          'whose interval counts the episodes and not the seeds: ') in out
  assert ONE_SEED_ABOVE in out and 'beats the teacher**' not in out
  assert 'Run more seeds of these before spending the budget on one.' in out
  two_seeds = make_study(str(tmp_path / 'b'), _second_seeds(RESULTS))
  assert recommend.main([two_seeds, '--budget', '200', '--episodes_per_hour', '50']) == 0
  out = capsys.readouterr().out
  assert '**It beats the teacher** (30.0% [21.9%, 39.6%] over 100 eval episodes)' in out
  assert '| R-CRR | 200 | 4.0 |' in out
  assert recommend.main([root, '--budget', '100']) == 0
  assert ('**No method beats the teacher (30.0% [21.9%, 39.6%] over 100 eval episodes) at '
          'budget 100: run the teacher.**') in capsys.readouterr().out
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
               'fig5_learning_curves.png', 'fig5_sweep_batch.png',
               'fig_offline_learning_curves.png'):
    assert os.path.getsize(os.path.join(out, name)) > 5000, name
    assert f']({name})' in text
  lo, hi = study_results.wilson_interval(80, 100)
  assert f'80.0% [{100 * lo:.1f}, {100 * hi:.1f}] (n=1 seed, 100 eval eps)' in text
  assert '| generalization | triplet1 | 30.0% |' in text
  assert ONE_SEED_ABOVE in text
  assert 'No method beats the teacher (30.0% [21.9%, 39.6%] over 100 eval episodes) at ' \
      'budget 100: run the teacher.' in text
  assert '`results.json`' in text and os.path.exists(os.path.join(out, 'results.json'))
  assert '| batch batch_size=32 | R-CRR |' in text
  assert 'Full 400-step episodes.' in text
  study = study_results.load_study(root)
  grid = study.grid_counterpart(study.select('batch'))
  assert (grid.sweep, grid.method, grid.budget, grid.offline_episodes) == ('grid', 'R-CRR', 200,
                                                                          100)
  assert grid.mean == pytest.approx(0.8) and grid.overrides == ()
  elsewhere = dataclasses.replace(study.select('batch')[0], offline_episodes=10)
  assert study.grid_counterpart([elsewhere]) is None


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


def test_study_results_json_known_rows_and_same_bytes(tmp_path):
  sweeps = [('batch', {'batch_size': 32}, ('R-CRR', 200, 100, 0, 70, 100)),
            ('batch', {'batch_size': 64}, ('R-CRR', 200, 100, 0, 80, 100))]
  root = make_study(str(tmp_path / 'study'), RESULTS, sweeps=sweeps)
  out = os.path.join(root, 'report')
  report.write_report(root, episodes_per_hour=50)
  path = os.path.join(out, 'results.json')
  first = open(path, 'rb').read()
  report.write_report(root, episodes_per_hour=50)
  assert open(path, 'rb').read() == first  # Reruns give the same bytes...
  assert not [f for f in os.listdir(out) if '.tmp' in f]  # ...through a renamed temp file.
  data = json.loads(first)
  assert list(data) == sorted(data)  # Sorted keys.
  cells = data['cells']
  # 8 grid cells (CRR at 2 budgets, R-CRR at 2 budgets x 3 sizes), then the 2 sweep cells.
  assert [(c['sweep'], c['method'], c['budget'], c['offline_episodes']) for c in cells] == [
      ('grid', 'CRR', 100, 100), ('grid', 'CRR', 200, 200),
      ('grid', 'R-CRR', 100, 25), ('grid', 'R-CRR', 100, 50), ('grid', 'R-CRR', 100, 75),
      ('grid', 'R-CRR', 200, 50), ('grid', 'R-CRR', 200, 100), ('grid', 'R-CRR', 200, 150),
      ('batch', 'R-CRR', 200, 100), ('batch', 'R-CRR', 200, 100)]
  crr = cells[1]
  assert (crr['triplet'], crr['teacher'], crr['obs'], crr['overrides']) == (
      'triplet1', 'generalization', 'state', {})
  assert crr['seeds'] == 2 and crr['success_rate'] == pytest.approx(0.4)
  # Runs without per-start outcomes: '' and no paired difference with the teacher.
  assert crr['per_seed'] == [
      {'seed': 0, 'successes': 40, 'episodes': 100, 'success_rate': 0.4, 'outcomes': ''},
      {'seed': 1, 'successes': 40, 'episodes': 100, 'success_rate': 0.4, 'outcomes': ''}]
  assert crr['minus_teacher'] is None
  # Several seeds: the report's bootstrap interval, the one its tables print.
  (crr_cell,) = study_results.load_study(root).select(method='CRR', budget=200)
  assert crr['ci95'] == pytest.approx(list(crr_cell.interval()))
  # One seed, 80/100: Wilson, p = .8, z = 1.96: (0.8 + 0.0192) / 1.0384 -+
  # 1.96 sqrt(0.0016 + 0.00009604) / 1.0384 = 0.7889 -+ 0.0777.
  rcrr = cells[6]
  assert rcrr['seeds'] == 1 and rcrr['success_rate'] == pytest.approx(0.8)
  assert rcrr['ci95'] == pytest.approx([0.7112, 0.8666], abs=1e-4)
  assert [(c['overrides'], c['success_rate']) for c in cells[8:]] == [
      ({'batch_size': 32}, 0.7), ({'batch_size': 64}, 0.8)]
  (teacher,) = data['teacher_success']
  assert teacher == {'teacher': 'generalization', 'triplet': 'triplet1', 'episodes': 100,
                     'success_rate': 0.3, 'outcomes': '',
                     'ci95': pytest.approx([0.2189, 0.3959], abs=1e-4)}
  recs = data['recommendations']
  # At 200 the best, R-CRR 100/100, lies above the teacher on one seed: not a winner.
  assert [(r['budget'], r['verdict']) for r in recs] == [(100, 'run_teacher'),
                                                         (200, 'run_teacher')]
  # So are 50/150 (50 %) and 150/50 (60 %), all of them one seed.
  assert [r['one_seed_above_teacher'] for r in recs] == [
      [], [{'method': 'R-CRR', 'offline_episodes': n} for n in (50, 100, 150)]]
  assert all(r['teacher_success']['success_rate'] == 0.3 for r in recs)
  # Under run_teacher the best student is kept for reference: R-CRR 50/50 at 30 %.
  assert (recs[0]['student']['method'], recs[0]['student']['offline_episodes'],
          recs[0]['student']['success_rate']) == ('R-CRR', 50, 0.3)
  assert (recs[1]['student']['method'], recs[1]['student']['offline_episodes'],
          recs[1]['student']['online_episodes']) == ('R-CRR', 100, 100)
  assert recs[1]['student']['ci95'] == pytest.approx([0.7112, 0.8666], abs=1e-4)


def test_study_figures_draw_seeds_and_teacher_band(tmp_path):
  study = study_results.load_study(make_study(
      str(tmp_path), [('CRR', 100, 100, 0, 10, 100), ('CRR', 100, 100, 1, 30, 100)]))
  fig, ax = figures.plt.subplots()
  band = figures._teacher_band(ax, study, 'triplet1', 'generalization')  # pylint: disable=protected-access
  # The teacher's 30/100 Wilson interval, in percent.
  assert band.get_y() == pytest.approx(21.89, abs=0.01)
  assert band.get_y() + band.get_height() == pytest.approx(39.59, abs=0.01)
  assert [l.get_ydata()[0] for l in ax.lines] == [pytest.approx(30.0)]  # The dashed mean.
  figures._seeds_and_means(ax, [100.0], study.select(), span=100.0)  # pylint: disable=protected-access
  (dots,) = ax.collections[-1:]
  # Seeds at 10 % and 30 %, 2 % of the x span either side of the mean's x.
  np.testing.assert_allclose(dots.get_offsets(), [[98.0, 10.0], [102.0, 30.0]])
  assert figures._teacher_band(ax, study, 'triplet1', 'mastery') is None  # pylint: disable=protected-access
  figures.plt.close(fig)


def _second_seeds(results):
  """Each one-seed row twice (seeds 0 and 1, the same evaluation): a finding's
  verdict beyond the means needs two training seeds."""
  seeds = {}
  for r in results:
    seeds.setdefault((r[0], r[1], r[2]), []).append(r)
  return results + [(*r[:3], 1, *r[4:]) for rows in seeds.values() if len(rows) == 1
                    for r in rows]


def test_study_findings_known_answers(tmp_path):
  results = _second_seeds([r for r in RESULTS if r[:2] != ('CRR', 200)] + [
      ('CRR', 200, 200, 0, 60, 100), ('CRR', 200, 200, 1, 60, 100),
      ('MPO', 100, 0, 0, 0, 100), ('DAgger', 100, 0, 0, 5, 100),
      ('DAgger-mixed', 100, 50, 0, 40, 100)])
  root = make_study(str(tmp_path / 'study'), results)  # Teacher: 30 of 100.
  found = {f.key: f for f in findings.study_findings(study_results.load_study(root))}
  # (a) CRR at 200: 60 % over 2 seeds, interval above the teacher's [21.9, 39.6].
  assert found['a'].verdict == findings.HOLDS
  # (b) R-CRR at 100, best proportion 50/100: 30 % [21.9, 39.6] against CRR's 20 %,
  # whose interval reaches into it: the means only.
  assert found['b'].verdict == findings.HOLDS_MEANS
  assert 'R-CRR at 100 (50 offline' in found['b'].lines[0]
  # At 200 R-CRR (80 % [71.1, 86.7], one seed) stands above CRR's 60 %: in the note only.
  assert found['b'].verdicts == [findings.HOLDS_MEANS]
  assert 'at 200 (not the claim\'s budget): holds: R-CRR at 200 (100 offline' in found['b'].note
  # (c) half is best at both budgets; apart from the others only at 200 (80 % vs
  # 50 % and 60 %), not at 100 (30 % vs 25 %).
  assert found['c'].verdicts == [findings.HOLDS_MEANS, findings.HOLDS]
  assert found['c'].verdict == findings.HOLDS_MEANS
  # (d) MPO 0 of 100: [0, 3.7] below the teacher.  (e) DAgger-mixed 40 % vs 5 %.
  assert found['d'].verdict == findings.HOLDS
  assert found['e'].verdicts == [findings.HOLDS]
  assert found['e'].lines[0].startswith('DAgger-mixed at 100')
  report.write_report(root)
  data = json.load(open(os.path.join(root, 'report', 'results.json')))
  assert [(f['finding'], f['verdict']) for f in data['findings']] == [
      ('a', 'holds'), ('b', 'holds in the means'), ('c', 'holds in the means'),
      ('d', 'holds'), ('e', 'holds')]
  text = open(os.path.join(root, 'report', 'report.md')).read()
  assert "## The paper's findings, checked" in text and '| (c) |' in text
  assert 'Online runs take 1 gradient step per 5 env steps (the paper: 1 per 5).' in text
  assert 'Polyak' not in text  # No run evaluated an EMA copy.


def test_study_findings_fail_and_not_measured(tmp_path):
  # Half is not best, and no teacher evaluation: (a), (d) cannot be checked.
  results = _second_seeds([('R-CRR', 100, 25, 0, 60, 100), ('R-CRR', 100, 50, 0, 10, 100),
                           ('R-CRR', 100, 75, 0, 20, 100), ('CRR', 100, 100, 0, 90, 100)])
  root = make_study(str(tmp_path / 'study'), results, teacher_rate=None)
  study = study_results.load_study(root)
  study.teachers = []  # Not even the shipped cards.
  found = {f.key: f for f in findings.study_findings(study)}
  assert found['a'].verdict == found['d'].verdict == findings.NOT_MEASURED
  assert found['b'].verdict == findings.FAILS  # 60 % [50.2, 69.1] below 90 % [82.6, 94.5].
  assert found['c'].verdict == findings.FAILS  # 25 % offline best, apart from 50 %.
  assert found['e'].verdict == findings.NOT_MEASURED and 'needs' in found['e'].note


def test_study_report_sets_the_teacher_data_beside_the_teacher(tmp_path):
  data_dir = str(tmp_path / 'data')
  # A real 2-episode dataset (20-step episodes never stack: its card says 0 of 2).
  build_teacher_datasets.run(build_teacher_datasets.JobConfig(
      triplets=['triplet1'], teachers=['generalization'], obs_modes=['state'], sizes=[2],
      data_dir=data_dir, episode_steps=20), build_teacher_datasets.local_beam_options([], 1))
  root = make_study(str(tmp_path / 'study'), [('CRR', 2, 2, 0, 20, 100),
                                              ('CRR', 2, 2, 1, 20, 100),
                                              ('DAgger', 4, 0, 0, 5, 100)])
  for run in json.load(open(os.path.join(root, 'study.json')))['runs']:
    _write(os.path.join(root, 'runs', run['name'], 'config.json'),
           dict(run['config'], data_dir=data_dir, episode_steps=20, image_size=64))
  report.write_report(root)
  data = json.load(open(os.path.join(root, 'report', 'results.json')))
  # One row: both CRR seeds trained on the same dataset; DAgger on none.
  assert data['teacher_data'] == [dict(
      dataset='triplet1_generalization_state_2_steps20', triplet='triplet1',
      teacher='generalization', obs='state', episodes=2, policy_mode='stochastic',
      success_rate=0.0, mean_return=0.0)]
  text = open(os.path.join(root, 'report', 'report.md')).read()
  assert '| triplet1_generalization_state_2_steps20 | 2 | stochastic | 0.0% (0) | 0.0 |' in text
  shutil.rmtree(data_dir)  # Moved since the runs: no card, and the report says so.
  report.write_report(root)
  assert json.load(open(os.path.join(root, 'report', 'results.json')))['teacher_data'] == []
  assert 'No teacher dataset card found' in open(os.path.join(root, 'report',
                                                              'report.md')).read()


def test_study_offline_curve_is_success_vs_grad_steps(tmp_path):
  study = study_results.load_study(make_study(str(tmp_path), RESULTS))
  (crr,) = study.select(method='CRR', budget=100)
  # Two seeds of 20/100 final, 10/100 at the half-way eval (grad step 500).
  points = figures._mean_curve(crr, x='grad_step')  # pylint: disable=protected-access
  assert [(x, rate) for x, rate, _ in points] == [(500.0, 0.1), (1000.0, 0.2)]
  assert points[0][2] == pytest.approx(study_results.wilson_interval(20, 200))
  # By episodes spent (Fig. 5), both points sit at the budget: why offline runs need this one.
  assert {x for x, _, _ in figures._mean_curve(crr)} == {100.0}  # pylint: disable=protected-access


def test_study_findings_paired_where_runs_kept_outcomes(tmp_path):
  # The cells of test_study_findings_known_answers, now with nested per-start
  # outcomes: each better cell stacks every start the worse one does, and more.
  results = _second_seeds([r for r in RESULTS if r[:2] != ('CRR', 200)] + [
      ('CRR', 200, 200, 0, 60, 100), ('CRR', 200, 200, 1, 60, 100)])
  root = make_study(str(tmp_path / 'study'), results, outcomes=True)
  found = {f.key: f for f in findings.study_findings(study_results.load_study(root))}
  # (b) R-CRR 30 % against CRR's 20 %: the intervals overlap, but start by start
  # R-CRR gains 10 starts and loses none, so the paired interval excludes 0.
  assert found['b'].verdicts == [findings.HOLDS]
  assert '(+10.0 points [' in found['b'].lines[0]
  assert 'paired over 100 starts' in found['b'].lines[0]
  # (c) at 100: 30 % against 25 %, 5 starts more: apart now (P(none of the 5 in a
  # resample) = 0.95^100 = 0.6 % < 2.5 %).
  assert found['c'].verdicts == [findings.HOLDS, findings.HOLDS]
  text = findings.format_findings(found.values())
  assert 'interval of the paired difference' in text


def test_a_paired_interval_within_the_margin_reads_level():
  # Each student seed trades 3 starts with the teacher: stacks 3 it fails, fails 3 it
  # stacks.  Over 1 000 shared starts the paired interval is about +-0.5 points, inside
  # +-5: level.  Over 40 starts the same trades leave it ~+-12 points wide: no answer
  # beyond the means.  One student seed: its interval counts starts only, no verdict.
  def traded(n, wins):
    return '000' + '1' * (wins - 3) + '111' + '0' * (n - wins - 3)
  for n, wins, expected in ((1000, 430, findings.LEVEL), (40, 17, findings.HOLDS_MEANS)):
    teacher = findings.Result('teacher', wins / n, (0.0, 1.0), outcomes=(nested(wins, n),))
    student = findings.Result('CRR', wins / n, (0.0, 1.0), ('CRR', 500, 500),
                              (traded(n, wins), traded(n, wins)))
    verdict, line = findings.compare(student, teacher)
    assert verdict == expected, line
    assert '+0.0 points [' in line
  teacher = findings.Result('teacher', 0.43, (0.0, 1.0), outcomes=(nested(430, 1000),))
  one_seed = findings.Result('CRR', 0.43, (0.0, 1.0), ('CRR', 500, 500), (traded(1000, 430),))
  assert findings.verdict(one_seed, teacher) == findings.HOLDS_MEANS
  # A finding's verdict is its weakest comparison's: level sits under "in the means".
  f = findings.Finding('a', 'claim', ('triplet2', 'generalization', 'state'),
                       [findings.HOLDS_MEANS, findings.LEVEL], ['', ''])
  assert f.verdict == findings.LEVEL


def test_study_findings_with_one_training_seed_stay_in_the_means(tmp_path):
  # The paired test's cells with R-CRR at one seed: start by start R-CRR is still
  # ahead (+10 points, interval above 0), but that interval counts the evaluation
  # starts only, not what another training seed would do.
  results = [r for r in RESULTS if r[:2] != ('CRR', 200)] + [
      ('CRR', 200, 200, 0, 60, 100), ('CRR', 200, 200, 1, 60, 100)]
  root = make_study(str(tmp_path / 'study'), results, outcomes=True)
  found = {f.key: f for f in findings.study_findings(study_results.load_study(root))}
  assert found['b'].verdicts == [findings.HOLDS_MEANS]
  assert '(+10.0 points [' in found['b'].lines[0]
  assert found['b'].lines[0].endswith('one training seed, so no verdict beyond the means')
  assert found['c'].verdicts == [findings.HOLDS_MEANS, findings.HOLDS_MEANS]
  # (a): CRR's two seeds against the teacher, which is one fixed policy: apart.
  assert found['a'].verdict == findings.HOLDS


def test_study_report_names_the_sweep_variants_above_the_teacher(tmp_path):
  # The recommendation reads the main grid (run the teacher at 200 here: its best,
  # R-CRR 100/100, has one seed); a sweep's variant above the teacher is named
  # beside it, by the same rule: two seeds and the paired interval above 0.
  sweeps = [('eta', {'eta': 0.3}, ('CRR', 200, 200, seed, 70, 100)) for seed in (0, 1)]
  sweeps += [('eta', {'eta': 3.0}, ('CRR', 200, 200, seed, 30, 100)) for seed in (0, 1)]
  sweeps += [('batch', {'batch_size': 32}, ('R-CRR', 200, 100, 0, 90, 100))]  # One seed.
  # A sweep of sizes, no override: 50 of 100 offline, two seeds at 60 %.
  sweeps += [('sizes', {}, ('CRR', 100, 50, seed, 60, 100)) for seed in (0, 1)]
  root = make_study(str(tmp_path / 'study'), RESULTS, sweeps=sweeps, outcomes=True)
  text = open(report.write_report(root)).read()
  line, = [l for l in text.splitlines() if l.startswith('Sweep variants shown above')]
  assert 'CRR with eta = 0.3 (sweep `eta`), 200 of 200 episodes offline, triplet1, ' \
      'generalization teacher, state: 70.0% [' in line
  # Nested outcomes: the variant stacks starts 30-69 that the teacher fails, and loses none.
  assert 'minus the teacher +40.0 points [' in line
  assert 'eta = 3.0' not in line and 'batch_size' not in line
  assert 'run the teacher.' in text
  data = json.load(open(os.path.join(root, 'report', 'results.json')))
  assert '; CRR (sweep `sizes`), 50 of 100 episodes offline, triplet1, ' in line
  row, sizes = data['variants_above_teacher']
  assert (row['sweep'], row['overrides'], row['method'], row['budget'],
          row['offline_episodes']) == ('eta', {'eta': 0.3}, 'CRR', 200, 200)
  assert row['minus_teacher']['difference'] == pytest.approx(0.4)
  assert (sizes['sweep'], sizes['overrides']) == ('sizes', {})
  # Without such a variant, no line and an empty list.
  plain = make_study(str(tmp_path / 'plain'), RESULTS, sweeps=sweeps[2:5], outcomes=True)
  assert 'Sweep variants' not in open(report.write_report(plain)).read()
  assert json.load(open(os.path.join(plain, 'report', 'results.json')))[
      'variants_above_teacher'] == []
