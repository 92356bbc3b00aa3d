r"""Two studies side by side, from their `results.json`: same grid, other teacher.

  python -m learners.study.compare docs/results/laptop/results.json \
      docs/results/laptop_scripted/results.json [--output compare.md]

For a question no single study answers, e.g. "does the teacher's smoothness
change the answer?": the same grid run with two teachers (or triplets).  Cells
are matched on what the grid varies (sweep and its values, method, budget,
offline episodes, observations); each study must hold one (triplet, teacher)
pair, else the match would be ambiguous.  Each cell shows its success with the
95 % interval of its own report and its ratio to that study's teacher, the
number that compares across teachers of different strength; then the findings
(a)-(e) of both.  Reads JSON only: no TensorFlow.
"""

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from learners.study.results import pct


def _load(path: str) -> dict:
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: write it with '
                            'python -m learners.study.report <study workdir> --output DIR.')
  with open(path) as f:
    data = json.load(f)
  missing = [k for k in ('study', 'cells', 'teacher_success', 'findings') if k not in data]
  if missing:
    raise ValueError(f'{path} lacks {missing}: is it a report\'s results.json? Rewrite it with '
                     'python -m learners.study.report <study workdir> --output DIR.')
  pairs = sorted({(c['triplet'], c['teacher']) for c in data['cells']})
  if len(pairs) != 1:
    raise ValueError(f'{path} holds {len(pairs)} (triplet, teacher) pairs {pairs}; compare '
                     'needs exactly one per study.')
  (data['triplet'], data['teacher']), = pairs
  rows = [t for t in data['teacher_success']
          if (t['triplet'], t['teacher']) == (data['triplet'], data['teacher'])]
  data['teacher_row'] = rows[0] if rows else None
  return data


def cell_key(cell: dict) -> tuple:
  return (cell['sweep'] != 'grid', cell['sweep'], tuple(sorted(cell['overrides'].items())),
          cell['method'], cell['budget'], cell['offline_episodes'], cell['obs'])


def _entry(cell: Optional[dict], teacher: Optional[dict], reading: str = '') -> str:
  if cell is None:
    return '–'
  lo, hi = cell['ci95']
  text = f'{pct(cell["success_rate"])} [{pct(lo)}, {pct(hi)}], n={cell["seeds"]}'
  if teacher and teacher['success_rate'] > 0:
    text += f' ({cell["success_rate"] / teacher["success_rate"]:.2f}× teacher)'
  return text + (f'; {reading}' if reading else '')


def _teacher_entry(data: dict) -> str:
  t = data['teacher_row']
  if t is None:
    return 'not evaluated'
  lo, hi = t['ci95']
  return f'{pct(t["success_rate"])} [{pct(lo)}, {pct(hi)}], {t["episodes"]} episodes'


def _data_entry(data: dict) -> str:
  """The largest teacher dataset's card (learners.study.teacher_data), if the report has one."""
  cards = [c for c in data.get('teacher_data', ())
           if (c['triplet'], c['teacher']) == (data['triplet'], data['teacher'])]
  if not cards:
    return 'no card'
  c = max(cards, key=lambda card: card['episodes'])
  return f'{pct(c["success_rate"])} of {c["episodes"]} episodes end stacked ({c["policy_mode"]})'


def compare(a: dict, b: dict, names: Sequence[str]) -> str:
  cells_a, cells_b = ({cell_key(c): c for c in d['cells']} for d in (a, b))
  # What each cell's policy loss did (learners.study.diagnostics), where the report has it.
  read_a, read_b = ({cell_key(r): r['reading'] for r in d.get('diagnostics', ())}
                    for d in (a, b))
  lines = [f'# `{a["study"]}` vs `{b["study"]}`', '',
           f'| | {names[0]} | {names[1]} |', '|---|---|---|',
           f'| study | {a["study"]}: {a["teacher"]} on {a["triplet"]} | '
           f'{b["study"]}: {b["teacher"]} on {b["triplet"]} |',
           f'| teacher | {_teacher_entry(a)} | {_teacher_entry(b)} |',
           f'| teacher data | {_data_entry(a)} | {_data_entry(b)} |']
  for key in sorted(set(cells_a) | set(cells_b)):
    _, sweep, overrides, method, budget, offline, obs = key
    label = (f'{method}, {budget} ({offline} offline)' + (f', {obs}' if obs != 'state' else '')
             + ('' if sweep == 'grid' else f', sweep {sweep} '
                + ' '.join(f'{k}={v}' for k, v in overrides)))
    lines.append(f'| {label} | {_entry(cells_a.get(key), a["teacher_row"], read_a.get(key))} | '
                 f'{_entry(cells_b.get(key), b["teacher_row"], read_b.get(key))} |')
  findings_a, findings_b = ({f['finding']: f for f in d['findings']} for d in (a, b))
  lines += ['', '| finding | claim | ' + ' | '.join(names) + ' |', '|---|---|---|---|']
  for key in sorted(set(findings_a) | set(findings_b)):
    claim = (findings_a.get(key) or findings_b[key])['claim']
    verdicts = [d[key]['verdict'] if key in d else '–' for d in (findings_a, findings_b)]
    lines.append(f'| ({key}) | {claim} | **{verdicts[0]}** | **{verdicts[1]}** |')
  lines += ['', 'Success: mean over seeds [95 % interval of its report], n = seeds; '
            '× teacher: the mean over that study\'s teacher success; then what the '
            'cell\'s policy loss did (the report\'s "Why, from the training logs").']
  return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('results', nargs=2, help='two results.json files (the reports\')')
  parser.add_argument('--output', default=None, help='write the Markdown here (default: print)')
  args = parser.parse_args(argv)
  try:
    a, b = (_load(p) for p in args.results)
  except (FileNotFoundError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  # Columns are named by study, or by file where both studies share a name.
  names = [a['study'], b['study']] if a['study'] != b['study'] else args.results
  text = compare(a, b, names)
  if args.output:
    with open(args.output, 'w') as f:
      f.write(text)
    print(f'comparison: {os.path.abspath(args.output)}')
  else:
    print(text, end='')
  return 0


if __name__ == '__main__':
  sys.exit(main())
