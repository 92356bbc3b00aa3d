"""The checkpoint-to-checkpoint swing of a run's success (learners.study.stability)."""

import json

import pytest

from learners.study import stability


def test_swing_is_mean_std_and_mean_absolute_change():
  stats = stability.swing([0.2, 0.4, 0.1])
  assert stats['mean'] == pytest.approx(0.7 / 3)
  assert stats['std'] == pytest.approx((0.14 / 3 / 2) ** 0.5)  # ddof=1
  assert stats['mean_abs_change'] == pytest.approx(0.25)  # (0.2 + 0.3) / 2
  with pytest.raises(ValueError, match='>= 2 evaluations'):
    stability.swing([0.5])


def test_cli_reads_each_label_past_the_warm_up(tmp_path, capsys):
  evals = [dict(label=label, grad_step=step, success_rate=rate)
           for step, ema, raw in ((10, 0.0, 0.0), (20, 0.5, 0.2), (30, 0.6, 0.8), (40, 0.5, 0.2))
           for label, rate in (('eval', ema), ('eval_raw', raw))]
  evals.append(dict(label='final', grad_step=40, success_rate=0.55))
  (tmp_path / 'eval.json').write_text(json.dumps(evals))
  assert stability.main([str(tmp_path), '--after', '10']) == 0
  lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
  by_label = {l['label']: l for l in lines if 'label' in l}
  assert by_label['eval']['successes'] == [0.5, 0.6, 0.5]
  assert by_label['eval']['mean_abs_change'] == pytest.approx(0.1)
  assert by_label['eval_raw']['mean_abs_change'] == pytest.approx(0.6)
  assert [l['pooled'] for l in lines if 'pooled' in l] == ['eval', 'eval_raw']


def test_cli_names_a_directory_without_evaluations(tmp_path, capsys):
  with pytest.raises(SystemExit):
    stability.main([str(tmp_path)])
  assert 'eval.json does not exist' in capsys.readouterr().err
