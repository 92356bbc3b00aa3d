r"""Two cells, from any reports, compared start by start: their paired difference.

  python -m learners.study.pair \
      --left docs/results/laptop_triplet2/results.json \
      --left docs/results/laptop_triplet2_b/results.json \
      --left_cell method=R-CRR,budget=100,offline_episodes=50 \
      --right docs/results/laptop_triplet2/results.json \
      --right docs/results/laptop_triplet2_b/results.json \
      --right_cell method=CRR,budget=100

A report compares the cells of one study; the questions that outgrow a study
(fresh seeds of a cell run as a second study, a variant run later, a cell
against another study's teacher evaluation) need the same paired bootstrap
across `results.json` files.  Every student and teacher is evaluated on its
triplet's evaluation starts from index 0, so cells of different studies on the
same triplet share starts.  Each side is one cell, selected in each of its
files by `key=value` pairs: `teacher` for the teacher's evaluation, else the
cell's `method`, `budget`, `offline_episodes`, `sweep` (default `grid` unless
an override is named) and any override (`eta=0.3`); its seeds are pooled over
the files (a seed twice is refused).  The verdict is the findings' (`holds`,
`level`, ...), for the claim left >= right.  Reads JSON only: no TensorFlow.
"""

import argparse
import json
import os
import sys
from typing import NamedTuple, Sequence

from learners.study import findings
from learners.study import results as study_results

CELL_FIELDS = ('method', 'budget', 'offline_episodes', 'sweep', 'obs', 'teacher')


def parse_selector(text: str) -> dict:
  """'method=CRR,budget=500' -> {'method': 'CRR', 'budget': '500'}; 'teacher' -> {}."""
  if text == 'teacher':
    return {}
  pairs = [p.split('=', 1) for p in text.split(',') if p]
  if not pairs or any(len(p) != 2 or not p[0] or not p[1] for p in pairs):
    raise ValueError(f'cell selector {text!r}: give `teacher` or key=value pairs joined by '
                     'commas, e.g. method=CRR,budget=500,eta=0.3.')
  return dict(pairs)


def _matches(cell: dict, selector: dict) -> bool:
  overrides = {k: v for k, v in selector.items() if k not in CELL_FIELDS}
  wanted = dict({'sweep': 'grid'} if not overrides else {}, **selector)
  for key, value in wanted.items():
    have = cell.get(key) if key in CELL_FIELDS else cell.get('overrides', {}).get(key)
    if not _same(have, value):
      return False
  return True


def _same(have, text: str) -> bool:
  """A cell's value against the selector's text: 0.3 matches '0.3' and '.3'."""
  if have is None or str(have) == text:
    return have is not None
  try:
    return float(have) == float(text)
  except (TypeError, ValueError):
    return False


def _describe(cell: dict) -> str:
  over = ','.join(f'{k}={v}' for k, v in sorted(cell.get('overrides', {}).items()))
  return (f'sweep={cell["sweep"]},method={cell["method"]},budget={cell["budget"]},'
          f'offline_episodes={cell["offline_episodes"]}' + (f',{over}' if over else ''))


class Side(NamedTuple):
  label: str
  triplet: str
  outcomes: list  # Per seed (the teacher: one string), from evaluation start 0.
  teacher: bool


def _teacher(loaded: Sequence[tuple]) -> Side:
  """The longest of the files' teacher evaluations, which must agree where they overlap
  (a deterministic teacher on the same starts)."""
  evaluations = []
  for path, data in loaded:
    teachers = data.get('teacher_success', [])
    if len(teachers) != 1:
      raise ValueError(f'{path} holds {len(teachers)} teacher evaluations; `teacher` needs '
                       'exactly one.')
    evaluations.append((path, teachers[0]))
  longest = study_results.longest_evaluation(evaluations)
  return Side(f'teacher {longest["teacher"]} ({longest["episodes"]} starts)',
              longest['triplet'], [longest.get('outcomes', '')], True)


def _cell(loaded: Sequence[tuple], selector_text: str) -> Side:
  """One cell per (path, results) of `loaded`, its seeds pooled."""
  selector = parse_selector(selector_text)
  by_seed, triplets, labels = {}, set(), []
  for path, data in loaded:
    found = [c for c in data['cells'] if _matches(c, selector)]
    if len(found) != 1:
      cells = '; '.join(_describe(c) for c in data['cells'])
      raise ValueError(f'{selector_text!r} matches {len(found)} cells of {path}, not one. '
                       f'Its cells: {cells}.')
    (cell,) = found
    for s in cell['per_seed']:
      if s['seed'] in by_seed:
        raise ValueError(f'seed {s["seed"]} of {selector_text!r} is in two of the files: '
                         'a seed counts once.')
      by_seed[s['seed']] = s.get('outcomes', '')
    triplets.add(cell['triplet'])
    labels.append(_describe(cell))
  if len(triplets) != 1:
    raise ValueError(f'{selector_text!r} spans triplets {sorted(triplets)}; a side is one cell.')
  return Side(labels[0], triplets.pop(), [by_seed[s] for s in sorted(by_seed)], False)


def load_side(paths: Sequence[str], selector_text: str) -> Side:
  """One side: the teacher or one cell, over the `results.json` files in `paths`."""
  loaded = []
  for path in paths:
    if not os.path.exists(path):
      raise FileNotFoundError(f'{path} not found: a report\'s results.json (python -m '
                              'learners.study.report <study workdir> --output DIR).')
    with open(path) as f:
      loaded.append((path, json.load(f)))
  side = _teacher(loaded) if selector_text == 'teacher' else _cell(loaded, selector_text)
  if not study_results.has_outcomes(side.outcomes):
    raise ValueError(f'{selector_text!r} in {list(paths)} lacks per-start outcomes; add them '
                     'with python -m learners.study.outcomes <study workdir> and rewrite the '
                     'report.')
  return side


def compare(left: Side, right: Side) -> dict:
  """The paired comparison of two sides, as a JSON-able dict."""
  if left.triplet != right.triplet:
    raise ValueError(f'left is on {left.triplet}, right on {right.triplet}: different '
                     'evaluation starts, nothing to pair.')
  starts = min(len(o) for o in (*left.outcomes, *right.outcomes))
  counts = {name: [o[:starts].count('1') for o in side.outcomes]
            for name, side in (('left', left), ('right', right))}
  one_seed = any(not side.teacher and study_results.one_seed(len(side.outcomes))
                 for side in (left, right))
  paired = study_results.paired_difference(left.outcomes, right.outcomes)
  fixed = study_results.paired_difference(left.outcomes, right.outcomes, resample_seeds=False)
  verdict = findings.paired_verdict(paired, one_seed)
  return {'left': left.label, 'right': right.label, 'triplet': left.triplet, 'starts': starts,
          'left_seeds': counts['left'], 'right_seeds': counts['right'],
          'left_teacher': left.teacher, 'right_teacher': right.teacher,
          'left_success': paired.means[0], 'right_success': paired.means[1],
          'paired': paired.as_dict(), 'paired_seeds_fixed': fixed.as_dict(),
          'verdict': verdict, 'text': (
              f'left - right: {paired.format()}; with these seeds fixed '
              f'{fixed.format()}. Left >= right: {verdict}.')}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  for side in ('left', 'right'):
    parser.add_argument(f'--{side}', action='append', required=True, metavar='RESULTS_JSON',
                        help='a report\'s results.json; repeat to pool seeds across studies')
    parser.add_argument(f'--{side}_cell', required=True, metavar='SELECTOR',
                        help='`teacher`, or key=value pairs joined by commas')
  parser.add_argument('--json', action='store_true', help='print one JSON line instead')
  args = parser.parse_args(argv)
  try:
    out = compare(load_side(args.left, args.left_cell), load_side(args.right, args.right_cell))
  except (ValueError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  if args.json:
    print(json.dumps(out))
    return 0
  for name in ('left', 'right'):
    seeds = out[f'{name}_seeds']
    over = (f'{out["starts"]} starts' if out[f'{name}_teacher'] else
            f'{len(seeds)} seed(s) x {out["starts"]} starts (per seed: {seeds})')
    print(f'{name}: {out[name]}: {100 * out[f"{name}_success"]:.1f} % over {over}')
  print(out['text'])
  return 0


if __name__ == '__main__':
  sys.exit(main())
