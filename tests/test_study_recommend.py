"""The teacher as the recommender's baseline option (known answers).

A student beats the teacher only where the paired difference's 95 % interval
lies above 0 (or, for runs without per-start outcomes, its interval above the
teacher's); otherwise the answer is "run the teacher".  Study folders are the
synthetic ones of test_study_report.
"""

import json
import os

import pytest

from learners.study import recommend
from learners.study import report
from learners.study import results as study_results
from test_study_report import RESULTS, make_study  # pylint: disable=g-bad-import-order

RUN_TEACHER_30 = ('**No method beats the teacher (30.0% [21.9%, 39.6%] over 100 eval '
                  'episodes) at budget {}: run the teacher.**')


def _recommend(root, budget):
  study = study_results.load_study(root)
  (cells,) = recommend.group_cells(study, None, None, None).values()
  return recommend.recommend_group(study, cells, budget, episodes_per_hour=50)


def test_no_student_above_the_teacher_interval_means_run_the_teacher(tmp_path):
  # Teacher 30/100: [21.9, 39.6].  R-CRR 20/50 = 40 %, [27.6, 53.8]: its mean is
  # above the teacher's upper bound, but its interval overlaps the teacher's.
  # CRR 5/50 = 10 %, [4.3, 21.4]: below it.
  root = make_study(str(tmp_path), [('R-CRR', 200, 100, 0, 20, 50),
                                    ('CRR', 200, 200, 0, 5, 50)], teacher_rate=0.3)
  rec = _recommend(root, 200)
  assert rec.verdict == recommend.RUN_TEACHER
  assert rec.teacher['success_rate'] == pytest.approx(0.3)
  text = recommend.format_recommendation(rec)
  assert text.startswith('**Budget 200 episodes** (triplet1, generalization teacher, state): '
                         + RUN_TEACHER_30.format(200))
  # The best student is named for reference, never as the recommendation.
  assert ('The best student, R-CRR with 100 teacher episodes offline (50.0% of the budget) '
          'and 100 online, has 40.0% [27.6%, 53.8%] over 1 seed(s)') in text
  assert 'best is' not in text and 'Robot time' not in text
  assert recommend.as_row(rec)['verdict'] == 'run_teacher'


def test_students_that_never_succeed_against_a_teacher(tmp_path):
  root = make_study(str(tmp_path), [('CRR', 100, 100, 0, 0, 50), ('R-CRR', 100, 50, 0, 0, 50)])
  text = recommend.format_recommendation(_recommend(root, 100))
  assert text.endswith(RUN_TEACHER_30.format(100) + '\nAmong the students, no run succeeded '
                       'in any evaluation episode (best upper 95 % bound 7.1%).')


def test_a_student_above_the_teacher_interval_is_recommended(tmp_path):
  # Teacher 60/100: [50.2, 69.1].  9/10 = 90 % [59.6, 98.2] has the highest mean but
  # overlaps the teacher; two seeds of 80/100 (the bootstrap over 200 pooled
  # episodes, about +-5.5 points) lie above it: the recommendation.
  root = make_study(str(tmp_path), [('BC', 100, 100, 0, 9, 10),
                                    ('R-CRR', 100, 50, 0, 80, 100),
                                    ('R-CRR', 100, 50, 1, 80, 100),
                                    ('CRR', 100, 100, 0, 10, 100)], teacher_rate=0.6)
  rec = _recommend(root, 100)
  assert rec.verdict == recommend.STUDENT
  assert (rec.best.method, rec.best.offline_episodes) == ('R-CRR', 50)
  assert rec.interval == pytest.approx((0.745, 0.855), abs=0.01)
  assert [c.method for c in rec.ties] == ['BC'] and rec.one_seed_above == []
  lo, hi = (f'{100 * x:.1f}%' for x in rec.interval)
  text = recommend.format_recommendation(rec)
  assert ('best is **R-CRR with 50 teacher episodes offline (50.0% of the budget) and 50 '
          f'online**: success 80.0% [{lo}, {hi}] over 2 seed(s)') in text
  assert ('**It beats the teacher** (60.0% [50.2%, 69.1%] over 100 eval episodes): its 95 % '
          'interval against the teacher\'s (no per-start outcomes to pair).') in text
  row = recommend.as_row(rec)
  assert row['verdict'] == 'student' and row['student']['method'] == 'R-CRR'
  assert row['teacher_success'] == {'success_rate': 0.6, 'episodes': 100,
                                    'ci95': pytest.approx([0.5020, 0.6906], abs=1e-4)}


def test_no_teacher_evaluation_says_the_comparison_could_not_be_made(tmp_path, monkeypatch,
                                                                      capsys):
  # No teachers.json and no shipped card for this teacher: nothing to compare with.
  monkeypatch.setattr(study_results, 'shipped_teacher_cells', lambda: [])
  root = make_study(str(tmp_path / 'study'), RESULTS, teacher_rate=None)
  no_teacher = ('No evaluation of the generalization teacher on triplet1 in this study: the '
                'comparison with the teacher could not be made.')
  assert recommend.main([root, '--budget', '200', '--episodes_per_hour', '50']) == 0
  out = capsys.readouterr().out
  assert no_teacher in out and 'best is **R-CRR with 100 teacher episodes offline' in out
  assert '| R-CRR | 200 | 4.0 |' in out and 'beats the teacher' not in out
  path = report.write_report(root)
  assert no_teacher in open(path).read()
  data = json.load(open(os.path.join(os.path.dirname(path), 'results.json')))
  assert data['teacher_success'] == [] and data['teacher_source'] == 'none'
  assert [(r['budget'], r['verdict'], r['teacher_success']) for r in data['recommendations']] \
      == [(100, 'no_teacher_evaluation', None), (200, 'no_teacher_evaluation', None)]
  # Nothing succeeded and no teacher: both said, no crash.
  zeros = make_study(str(tmp_path / 'zeros'), [('CRR', 100, 100, 0, 0, 50)], teacher_rate=None)
  text = recommend.format_recommendation(_recommend(zeros, 100))
  assert 'no run succeeded' in text and no_teacher in text


def test_paired_with_the_teacher_a_student_beats_it_where_intervals_overlap(tmp_path):
  # Teacher 30/100 [21.9, 39.6]; R-CRR 40/100 on two seeds overlaps it.  Without
  # per-start outcomes: run the teacher.  With them (R-CRR stacks the teacher's 30
  # starts and 10 more): +10 points, every paired difference >= 0, above 0.
  results = [('R-CRR', 200, 100, 0, 40, 100), ('R-CRR', 200, 100, 1, 40, 100),
             ('CRR', 200, 200, 0, 5, 100)]
  unpaired = _recommend(make_study(str(tmp_path / 'a'), results), 200)
  assert unpaired.verdict == recommend.RUN_TEACHER and unpaired.versus_teacher is None
  assert 'no per-start outcomes to pair' in recommend.format_recommendation(unpaired)
  rec = _recommend(make_study(str(tmp_path / 'b'), results, outcomes=True), 200)
  assert rec.verdict == recommend.STUDENT
  assert rec.versus_teacher.difference == pytest.approx(0.1)
  assert rec.versus_teacher.ci95[0] > 0
  assert ('**It beats the teacher** (30.0% [21.9%, 39.6%] over 100 eval episodes): paired '
          'with the teacher start by start, +10.0 points [') in recommend.format_recommendation(rec)
  row = recommend.as_row(rec)['student_minus_teacher']
  assert row['difference'] == pytest.approx(0.1) and row['starts'] == 100
  # CRR 5 % loses 25 of the teacher's starts: its paired interval lies below 0.
  (crr,) = [c for c in study_results.load_study(str(tmp_path / 'b')).cells if c.method == 'CRR']
  assert study_results.load_study(str(tmp_path / 'b')).versus_teacher(crr).ci95[1] < 0


def test_paired_ties_are_only_the_splits_not_shown_below_the_best(tmp_path):
  # Budget 100 of RESULTS: R-CRR 50 offline 30 % against 75 offline 25 %.  Their
  # intervals overlap, a tie; nested outcomes (5 more starts, none fewer) separate them.
  unpaired = _recommend(make_study(str(tmp_path / 'a'), RESULTS), 100)
  assert ('R-CRR', 75) in {(c.method, c.offline_episodes) for c in unpaired.ties}
  paired = _recommend(make_study(str(tmp_path / 'b'), RESULTS, outcomes=True), 100)
  assert (paired.best.method, paired.best.offline_episodes) == ('R-CRR', 50)
  assert paired.ties == []


def test_probability_best_draws_the_same_starts_for_every_split(tmp_path):
  # Nested outcomes: R-CRR 50 offline (30 %) stacks every start R-CRR 75 offline
  # (25 %) stacks.  Drawn on the same starts it is never behind, so it is best in every
  # replicate but those that tie it with another cell (no start of its 5 drawn);
  # drawn apart, as without outcomes, 75 offline is best in some.
  paired = _recommend(make_study(str(tmp_path / 'b'), RESULTS, outcomes=True), 100)
  unpaired = _recommend(make_study(str(tmp_path / 'a'), RESULTS), 100)
  assert paired.p_best[('R-CRR', 75)] < 0.01 < unpaired.p_best[('R-CRR', 75)]
  assert paired.p_best[('R-CRR', 50)] > 0.99
  assert sum(paired.p_best.values()) == pytest.approx(1.0)


def test_a_one_seed_student_above_the_teacher_is_not_recommended_over_it(tmp_path):
  # As the paired test above, but R-CRR on one training seed: its +10 points over the
  # teacher count the evaluation starts only, so the answer stays "run the teacher"
  # and R-CRR is named as worth more seeds, with its paired difference.
  root = make_study(str(tmp_path), [('R-CRR', 200, 100, 0, 40, 100),
                                    ('CRR', 200, 200, 0, 5, 100)], outcomes=True)
  rec = _recommend(root, 200)
  assert rec.verdict == recommend.RUN_TEACHER
  ((cell, paired),) = rec.one_seed_above
  assert cell.method == 'R-CRR' and paired.ci95[0] > 0
  assert paired.difference == pytest.approx(0.1)
  text = recommend.format_recommendation(rec)
  assert text.startswith('**Budget 200 episodes** (triplet1, generalization teacher, state): '
                         + RUN_TEACHER_30.format(200))
  assert ('paired over 100 starts: above it on these episodes, but from one training seed '
          '(below).\nAbove the teacher on these evaluation episodes, ') in text
  assert ('but each from one training seed, whose interval counts the episodes and not the '
          'seeds: R-CRR with 100 teacher episodes offline (50.0% of the budget) and 100 online, '
          '40.0% [30.9, 49.8] (n=1 seed, 100 eval eps), minus the teacher +10.0 points [') in text
  assert recommend.as_row(rec)['one_seed_above_teacher'] == [
      {'method': 'R-CRR', 'offline_episodes': 100}]
