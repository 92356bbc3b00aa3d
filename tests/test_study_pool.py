"""Several study folders reported as one (learners.study.pool), on synthetic folders."""

import json
import os

import pytest

from learners.study import pool
from learners.study import report
from learners.study import results as study_results
from test_study_report import _write, make_study, nested  # pylint: disable=g-bad-import-order


def with_configs(root, **training):
  """Each run's config.json, as the launcher writes it: the spec's settings resolved,
  here with `training` changed (a setting the two studies' defaults disagree on)."""
  for run in json.load(open(os.path.join(root, 'study.json')))['runs']:
    config = dict(run['config'], data_dir=os.path.join(root, 'data'), image_size=64,
                  **training)
    _write(os.path.join(root, 'runs', run['name'], 'config.json'), config)
  return root


def two_studies(tmp_path):
  """A: CRR at 100 seeds 0, 1 and R-CRR seed 0 (1 000 gradient steps); B, a follow-up:
  CRR seed 2, seed 1 again scored on 200 starts, and R-CRR seed 1 at 2 000 steps."""
  a = with_configs(make_study(str(tmp_path / 'a'), [
      ('CRR', 100, 100, 0, 20, 100), ('CRR', 100, 100, 1, 40, 100),
      ('R-CRR', 100, 50, 0, 50, 100)], outcomes=True))
  b = make_study(str(tmp_path / 'b'), [
      ('CRR', 100, 100, 2, 30, 100), ('CRR', 100, 100, 1, 80, 200)], outcomes=True)
  with_configs(b)
  b_rcrr = make_study(str(tmp_path / 'b_rcrr'), [('R-CRR', 100, 50, 1, 60, 100)], outcomes=True)
  with_configs(b_rcrr, grad_steps=2000)
  # One folder, as one study would be: move b_rcrr's run into b.
  index, extra = (json.load(open(os.path.join(r, 'study.json'))) for r in (b, b_rcrr))
  (run,) = extra['runs']
  os.rename(os.path.join(b_rcrr, 'runs', run['name']), os.path.join(b, 'runs', run['name']))
  _write(os.path.join(b, 'study.json'), dict(index, name='follow-up', runs=index['runs'] + [run]))
  # B's teacher evaluation covers 200 starts, the first 100 those of A's.
  _write(os.path.join(b, 'teachers.json'), dict(cells=[dict(
      teacher='generalization', triplet='triplet1', episodes=200, successes=50,
      success_rate=0.25, ci95=[0.2, 0.3], outcomes=nested(30, 100) + nested(20, 100))]))
  return a, b


def test_pool_joins_seeds_keeps_the_longer_rerun_and_splits_different_training(tmp_path):
  a, b = two_studies(tmp_path)
  study = pool.load_studies([a, b])
  assert study.name == 'synthetic + follow-up' and study.workdirs == (a, b)
  (crr,) = study.select(method='CRR')
  assert crr.overrides == () and sorted(crr.seeds) == [0, 1, 2]
  by_seed = dict(zip(crr.seeds, zip(crr.successes, crr.episodes)))
  assert by_seed == {0: (20, 100), 1: (80, 200), 2: (30, 100)}  # Seed 1: B's rerun.
  assert crr.mean == pytest.approx((0.2 + 0.4 + 0.3) / 3)
  assert crr.outcomes[crr.seeds.index(1)] == nested(80, 200)
  (duplicate,) = study.duplicates
  assert duplicate.startswith('seed 1 of CRR at 100 is in ') and 'kept ' + os.path.join(
      b, 'runs') in duplicate and '(200 evaluation episodes)' in duplicate
  # R-CRR trained 1 000 steps in A and 2 000 in B: two cells, each named by the setting.
  rcrr = {c.overrides: (c.seeds, c.successes) for c in study.select(method='R-CRR')}
  assert rcrr == {(('grad_steps', 1000),): ([0], [50]), (('grad_steps', 2000),): ([1], [60])}
  # The teacher over the most starts; A's 100 are its first.
  (teacher,) = study.teachers
  assert teacher['episodes'] == 200
  assert study.versus_teacher(crr).starts == 100
  # One folder reads as results.load_study does, and so does the report.
  alone, plain = pool.load_studies([a]), study_results.load_study(a)
  assert [(c.method, c.overrides, c.seeds) for c in alone.cells] == [
      (c.method, c.overrides, c.seeds) for c in plain.cells]


def test_pool_report_cli_names_every_folder(tmp_path, capsys):
  a, b = two_studies(tmp_path)
  out = str(tmp_path / 'report')
  assert report.main([a, b, '--output', out]) == 0
  text = open(os.path.join(out, 'report.md')).read()
  assert f'`{a}`' in text and f'`{b}`' in text and 'pooled across the folders' in text
  assert 'Seeds found in two folders, kept once' in text
  assert '| grid grad_steps=2000 | R-CRR |' in text
  # (b) pairs R-CRR (60/100) with CRR on the 100 starts all its seeds share; CRR's mean
  # there (20 + 80 + 30 of 300) is not its mean over every start scored (30.0 %).
  (b,) = [l for l in text.splitlines() if l.startswith('| (b) |')]
  assert '+16.7 points [' in b and ': 60.0% vs 43.3% on those starts' in b
  rows = json.load(open(os.path.join(out, 'results.json')))['cells']
  assert [r['seeds'] for r in rows if r['method'] == 'CRR'] == [3]
  capsys.readouterr()
  assert report.main([a, a + '/', '--output', out]) == 2
  assert 'named twice' in capsys.readouterr().err


def test_pool_refuses_studies_scored_on_other_starts(tmp_path):
  a, b = two_studies(tmp_path)
  teachers = json.load(open(os.path.join(b, 'teachers.json')))
  teachers['cells'][0]['outcomes'] = nested(31, 100) + nested(19, 100)  # Start 30 differs.
  _write(os.path.join(b, 'teachers.json'), teachers)
  listing = os.listdir(b)
  with pytest.raises(ValueError, match='not the same teacher and starts'):
    pool.load_studies([a, b])
  assert report.main([a, b, '--output', str(tmp_path / 'never')]) == 2
  assert not os.path.exists(tmp_path / 'never') and os.listdir(b) == listing
