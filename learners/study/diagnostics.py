"""Why a method learns or not, read from its runs' own training logs.

The findings (learners.study.findings) say *what* holds; where a finding fails,
the report owes evidence of *why*.  Every run logs what its policy loss did
(`metrics.jsonl`, every `log_every` gradient steps):

  * `weight_min` / `weight_max`: the spread of the per-action weights in a batch.
    All 1: the loss is plain cloning (BC, DAgger).  CRR's exp(A/eta) weights
    filter transitions when they spread by orders of magnitude.
  * `kl_nonparametric`: KL(weights || uniform) over the prior samples of one
    state (R-CRR, MPO).  Near 0 means the sampled-action loss clones its prior,
    whatever the method's name.
  * `q_sample_std` / `eta`: how much the critic's Q differs among the sampled
    actions of one state, on the scale of the temperature; the softmax weights
    can only be as uneven as this ratio allows.
  * `teacher_fraction`: the share of prior samples drawn from the teacher (beta).
  * `q_batch_mean`, `policy_stddev`: the critic's level and the policy's width.

Per run: the median over the last quarter of its logged steps (what the final
policy was trained on); per cell: the mean of its seeds' medians.  Pure file
reading: no TensorFlow.
"""

import json
import os
from typing import Optional, Sequence

import numpy as np

from learners.study import findings as findings_lib
from learners.study import results as study_results
from learners.training import workdir as run_files

KEYS = ('weight_min', 'weight_max', 'kl_nonparametric', 'q_sample_std', 'eta',
        'teacher_fraction', 'q_batch_mean', 'policy_stddev')
TAIL = 0.25  # The last quarter of a run's logged steps.
# Below this KL from uniform the sampled-action weights change little: 0.1 nats
# is 5 % of the largest possible KL over 8 prior samples (ln 8 = 2.08).
NEAR_UNIFORM_KL = 0.1


def tail_medians(path: str, keys: Sequence[str] = KEYS, tail: float = TAIL) -> dict:
  """{key: median over the last `tail` of the logged grad steps}; {} if no log."""
  if not os.path.exists(path):
    return {}
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:  # A line cut short by a kill: the rest still counts.
        continue
  rows = [r for r in rows if 'grad_step' in r]
  if not rows:
    return {}
  start = (1.0 - tail) * max(r['grad_step'] for r in rows)
  rows = [r for r in rows if r['grad_step'] >= start]
  return {k: float(np.median([r[k] for r in rows if k in r]))
          for k in keys if any(k in r for r in rows)}


def reading(values: dict) -> str:
  """What the policy loss did, in words, from a cell's medians."""
  if 'weight_min' not in values:
    return 'no training log'
  if values['weight_max'] - values['weight_min'] < 1e-6:
    return 'clones: every weight 1'
  if 'kl_nonparametric' in values:
    if values['kl_nonparametric'] < NEAR_UNIFORM_KL:
      return 'near-uniform weights: imitates its prior'
    return 're-weights its prior samples'
  return 're-weights the data'


def cell_row(cell: study_results.Cell) -> dict:
  """The mean over the cell's seeds of each run's tail medians, and the reading."""
  # Gradient steps differ by method at one budget (offline runs train a fixed count,
  # online ones one per env_steps_per_grad_step env steps): part of any "why".
  steps = [s for s in cell.grad_steps if s is not None]  # Read from the summaries.
  per_run = [tail_medians(os.path.join(d, run_files.METRICS_FILE)) for d in cell.run_dirs]
  per_run = [r for r in per_run if r]
  values = {k: float(np.mean([r[k] for r in per_run if k in r]))
            for k in KEYS if any(k in r for r in per_run)}
  return {'sweep': cell.sweep, 'overrides': dict(cell.overrides), 'method': cell.method,
          'triplet': cell.triplet, 'teacher': cell.teacher, 'obs': cell.obs,
          'budget': cell.budget, 'offline_episodes': cell.offline_episodes,
          'runs_logged': len(per_run), 'tail_medians': values, 'reading': reading(values),
          'grad_steps': round(float(np.mean(steps))) if steps else None}


def study_diagnostics(study: study_results.Study) -> list:
  return [cell_row(c) for c in sorted(study.cells, key=study_results.table_order)]


def _num(values: dict, key: str, fmt: str) -> str:
  return format(values[key], fmt) if key in values else '–'


def _q_spread(values: dict) -> Optional[str]:
  if 'q_sample_std' not in values or not values.get('eta'):
    return None
  return f'{values["q_sample_std"] / values["eta"]:.3g}'


def _summary(row: dict) -> str:
  v = row['tail_medians']
  spread = 'weight_min' in v and v['weight_max'] - v['weight_min'] >= 1e-6
  parts = [f'weights {v["weight_min"]:.3g}–{v["weight_max"]:.3g}' if spread else '',
           f'KL from uniform {v["kl_nonparametric"]:.3g} nats'
           if 'kl_nonparametric' in v else '',
           f'Q spread / η {_q_spread(v)}' if _q_spread(v) else '',
           f'teacher share {v["teacher_fraction"]:.2f}' if v.get('teacher_fraction') else '']
  parts = [p for p in parts if p]
  if row.get('grad_steps') is not None:
    parts.insert(0, f'{row["grad_steps"]:,} grad steps')
  return row['reading'] + (f' ({", ".join(parts)})' if parts else '')


def evidence(findings: Sequence[findings_lib.Finding], rows: Sequence[dict]) -> list:
  """For each claim that fails: what the policy loss of each compared cell did."""
  index = {(r['triplet'], r['teacher'], r['obs'], r['method'], r['budget'],
            r['offline_episodes']): r for r in rows if r['sweep'] == 'grid'}
  out = []
  for f in findings:
    if f.verdict not in (findings_lib.FAILS, findings_lib.FAILS_MEANS):
      continue
    parts = [f'{method} at {budget} ({offline} offline): {_summary(row)}'
             for method, budget, offline in f.cells
             if (row := index.get((*f.group, method, budget, offline)))]
    if parts:
      out.append(f'({f.key}) {f.verdict}, {", ".join(f.group)}: ' + '; '.join(parts) + '.')
  return out


def format_diagnostics(rows: Sequence[dict],
                       findings: Sequence[findings_lib.Finding] = ()) -> str:
  if not rows:
    return 'No finished runs.'
  lines = []
  if failing := evidence(findings, rows):
    lines += ['The policy losses behind the claims that fail:', '',
              *[f'- {e}' for e in failing], '']
  lines += [f'What each cell\'s policy loss did, from its runs\' `{run_files.METRICS_FILE}`: '
           f'medians over the last {TAIL:.0%} of each run\'s logged gradient steps, mean '
           'over seeds; "grad steps" as trained, from each run\'s summary. Weights all 1: '
           'plain cloning. KL from uniform (over the prior '
           f'samples of one state) below {NEAR_UNIFORM_KL} nats: the weights barely differ, '
           'so the method imitates its prior (R-CRR: the teacher\'s and the batch\'s '
           'actions; MPO: its own target policy). "Q spread / η": the std of Q among the '
           'sampled actions of one state over the temperature; the weights can be no more '
           'uneven than this allows.', '',
           '| sweep | method | budget | offline | grad steps | weights min–max | '
           'KL from uniform | Q spread / η | teacher share of prior | Q mean | policy σ | '
           'reading |', '|---' * 12 + '|']
  for r in rows:
    v = r['tail_medians']
    sweep = r['sweep'] + ''.join(f' {k}={x}' for k, x in sorted(r['overrides'].items()))
    weights = (f'{v["weight_min"]:.3g}–{v["weight_max"]:.3g}' if 'weight_min' in v else '–')
    steps = '–' if r.get('grad_steps') is None else f'{r["grad_steps"]:,}'
    lines.append(f'| {sweep} | {r["method"]} | {r["budget"]} | {r["offline_episodes"]} | '
                 f'{steps} | {weights} | {_num(v, "kl_nonparametric", ".3g")} | '
                 f'{_q_spread(v) or "–"} | {_num(v, "teacher_fraction", ".2f")} | '
                 f'{_num(v, "q_batch_mean", ".1f")} | {_num(v, "policy_stddev", ".3f")} | '
                 f'{r["reading"]} |')
  return '\n'.join(lines)
