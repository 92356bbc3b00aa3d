r"""Report of a study: Markdown + PNG figures, the paper's figures and tables.

  python -m learners.study.report runs/laptop [--output runs/laptop/report] \
      [--episodes_per_hour 41.7] [--budget 10000]

Writes `report.md`, `results.json` (every number of it, for scripts: see
learners.study.export) and `fig*.png` under --output (default: <study>/report):

  * Fig. 3: success vs budget per method at its best offline proportion: each
    seed a small dot, the mean a marker with its 95 % interval; the teacher's
    95 % interval a grey band around a dashed line at its success, in every
    figure (methods are shifted by ~1 % of the x range so that equal results
    stay visible; Fig. 4 likewise);
  * Fig. 4: success vs offline proportion of the budget, one panel per budget;
  * Fig. 5: learning curves (evaluation success vs episodes spent) of the online
    runs, and one figure per sweep of the spec (e.g. batch size), its runs side by side;
  * Table I (teacher success), a Table III-style table per budget, every cell;
  * the split recommender (learners.study.recommend) for each budget, or --budget,
    with the teacher as the baseline option ("run the teacher");
  * the paper's findings (a)-(e) checked on the main grid (learners.study.findings);
  * why, from each cell's training logs (learners.study.diagnostics).

Every number carries its 95 % interval and its seed count (learners.study.results
has the interval math).  Unfinished runs are listed, not guessed.
"""

import argparse
import collections
import os
import sys
from typing import Optional, Sequence

import matplotlib

matplotlib.use('Agg')  # Files only; no display on servers and CI.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from envs import specs  # pylint: disable=g-import-not-at-top
from learners.study import diagnostics as diagnostics_lib  # pylint: disable=g-import-not-at-top
from learners.study import export  # pylint: disable=g-import-not-at-top
from learners.study import findings as findings_lib  # pylint: disable=g-import-not-at-top
from learners.study import recommend as recommend_lib  # pylint: disable=g-import-not-at-top
from learners.study import results as study_results  # pylint: disable=g-import-not-at-top
from learners.study.results import pct  # pylint: disable=g-import-not-at-top
from learners.training import workdir as run_files  # pylint: disable=g-import-not-at-top

_DPI = 110


def _jitter(index: int, count: int, span: float) -> float:
  """A small x offset per method, so equal results do not hide each other."""
  return (index - (count - 1) / 2) * 0.012 * span


def _seed_offsets(count: int, span: float) -> np.ndarray:
  """x offsets of one cell's seed dots: spread evenly, not at random, so reruns
  draw the same figure; wide enough to clear the mean's marker."""
  return np.linspace(-1, 1, count) * 0.02 * span if count > 1 else np.zeros(count)


def _seeds_and_means(ax, xs, cells, span: float, **kwargs):
  """Each seed's success as a dot; the mean as a marker with its 95 % interval.

  The dots show what a mean of few seeds hides: whether one seed carries it.
  """
  means = np.array([c.mean for c in cells])
  bounds = np.array([c.interval() for c in cells])
  err = np.stack([means - bounds[:, 0], bounds[:, 1] - means])
  bars = ax.errorbar(xs, 100 * means, yerr=100 * np.clip(err, 0, None), capsize=3,
                     marker='o', **kwargs)
  color = bars.lines[0].get_color()
  for x, cell in zip(xs, cells):
    rates = [s / n for s, n in zip(cell.successes, cell.episodes)]
    ax.scatter(x + _seed_offsets(len(rates), span), 100 * np.array(rates), s=10,
               color=color, edgecolors='k', linewidths=0.4, zorder=3)


def _teacher_band(ax, study, triplet, teacher):
  """The teacher's 95 % interval as a band, its success dashed: a student
  beats it only above the band (learners.study.recommend)."""
  cell = study.teacher(teacher, triplet)
  if cell is None:
    return None
  lo, hi = cell['ci95']
  band = ax.axhspan(100 * lo, 100 * hi, color='k', alpha=0.1, linewidth=0)
  ax.axhline(100 * cell['success_rate'], color='k', linestyle='--', linewidth=1,
             label=f'teacher ({pct(cell["success_rate"])} [{pct(lo)}, {pct(hi)}])')
  return band


def _pairs(cells):
  return sorted({(c.triplet, c.teacher, c.obs) for c in cells})


def _grid_axes(rows: int, cols: int, width: float = 4.2, height: float = 3.2):
  return plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)


def _save(fig, directory: str, name: str) -> str:
  fig.tight_layout()
  path = os.path.join(directory, name)
  fig.savefig(path, dpi=_DPI)
  plt.close(fig)
  return name


def figure_budget(study, directory: str) -> Optional[str]:
  """Fig. 3: success vs budget per method (best proportion), teacher as a band."""
  cells = study.select('grid')
  pairs = _pairs(cells)
  if not pairs:
    return None
  fig, axes = _grid_axes(1, len(pairs))
  for ax, (triplet, teacher, obs) in zip(axes[0], pairs):
    best = study_results.best_per_budget(
        c for c in cells if (c.triplet, c.teacher, c.obs) == (triplet, teacher, obs))
    methods = sorted({m for m, _ in best})
    budgets = [b for _, b in best]
    span = (max(budgets) - min(budgets)) or max(budgets)
    for i, method in enumerate(methods):
      points = sorted((b, cell) for (m, b), cell in best.items() if m == method)
      _seeds_and_means(ax, [b + _jitter(i, len(methods), span) for b, _ in points],
                       [c for _, c in points], span, label=method)
    _teacher_band(ax, study, triplet, teacher)
    ax.set(title=f'{triplet}, {teacher} teacher ({obs})', xlabel='budget (episodes)',
           ylabel='success (%)', ylim=(-3, 103))
    ax.legend(fontsize=7)
  return _save(fig, directory, 'fig3_success_vs_budget.png')


def _budget_panels(cells):
  """One row per (triplet, teacher, obs), one column per budget.

  Returns the figure and, per panel, (axes, (triplet, teacher, obs), budget,
  the cells of that panel).
  """
  pairs = _pairs(cells)
  budgets = sorted({c.budget for c in cells})
  fig, axes = _grid_axes(len(pairs), len(budgets))
  panels = [(ax, pair, budget, [c for c in cells if (c.triplet, c.teacher, c.obs) == pair
                                and c.budget == budget])
            for row, pair in zip(axes, pairs) for ax, budget in zip(row, budgets)]
  return fig, panels


def figure_proportion(study, directory: str) -> Optional[str]:
  """Fig. 4: success vs offline proportion of the budget, one panel per budget."""
  cells = study.select('grid')
  if not cells:
    return None
  fig, panels = _budget_panels(cells)
  for ax, (triplet, teacher, _), budget, here in panels:
    methods = sorted({c.method for c in here})
    for i, method in enumerate(methods):
      points = sorted((c.proportion, c) for c in here if c.method == method)
      _seeds_and_means(ax, [p + _jitter(i, len(methods), 1.0) for p, _ in points],
                       [c for _, c in points], 1.0, label=method)
    _teacher_band(ax, study, triplet, teacher)
    ax.set(title=f'{triplet}, {teacher}, budget {budget}', xlabel='offline proportion',
           ylabel='success (%)', xlim=(-0.05, 1.05), ylim=(-3, 103))
    ax.legend(fontsize=7)
  return _save(fig, directory, 'fig4_success_vs_offline_proportion.png')


def _mean_curve(cell):
  """(episodes spent, success, (lo, hi)) pooled over seeds at common eval points."""
  by_step = collections.defaultdict(list)
  for evals in cell.curves:
    for e in evals:
      # The reported policy only: with policy_ema a run also logs 'eval_raw'.
      if e['label'] in ('eval', 'final'):
        by_step[(e['grad_step'], e['label'])].append(e)
  points = []
  for (_, _), entries in sorted(by_step.items()):
    if len(entries) != cell.n_seeds:
      continue  # An eval point only some seeds reached (unequal lengths).
    wins = sum(e['successes'] for e in entries)
    n = sum(e['episodes'] for e in entries)
    points.append((float(np.mean([e['spent'] for e in entries])), wins / n,
                   study_results.wilson_interval(wins, n)))
  return sorted(points)


def _plot_curve(ax, cell, label):
  points = _mean_curve(cell)
  if not points:
    return
  xs = [p[0] for p in points]
  ax.plot(xs, [100 * p[1] for p in points], marker='.', label=label)
  ax.fill_between(xs, [100 * p[2][0] for p in points], [100 * p[2][1] for p in points],
                  alpha=0.15)


def figure_curves(study, directory: str) -> Optional[str]:
  """Fig. 5-style learning curves of the main grid's online runs."""
  cells = [c for c in study.select('grid') if c.offline_episodes < c.budget]
  if not cells:
    return None
  fig, panels = _budget_panels(cells)
  for ax, (triplet, teacher, _), budget, here in panels:
    for cell in sorted(here, key=lambda c: (c.method, c.offline_episodes)):
      _plot_curve(ax, cell, f'{cell.method}, offline {cell.offline_episodes}')
    _teacher_band(ax, study, triplet, teacher)
    ax.set(title=f'{triplet}, {teacher}, budget {budget}',
           xlabel='episodes spent (offline + online)', ylabel='eval success (%)',
           ylim=(-3, 103))
    ax.legend(fontsize=6)
  return _save(fig, directory, 'fig5_learning_curves.png')


def figure_sweeps(study, directory: str) -> list:
  """One figure per sweep: its runs' curves, one line per override value."""
  names = []
  for sweep in sorted({c.sweep for c in study.cells} - {'grid'}):
    cells = study.select(sweep)
    panels = sorted({(c.method, c.triplet, c.teacher, c.obs, c.budget, c.offline_episodes)
                     for c in cells})
    fig, axes = _grid_axes(1, len(panels))
    for ax, panel in zip(axes[0], panels):
      for cell in (c for c in cells if (c.method, c.triplet, c.teacher, c.obs, c.budget,
                                        c.offline_episodes) == panel):
        label = ', '.join(f'{k}={v}' for k, v in cell.overrides) or 'default'
        _plot_curve(ax, cell, f'{label}: final {pct(cell.mean)}')
      _teacher_band(ax, study, panel[1], panel[2])
      ax.set(title=f'{sweep}: {panel[0]}, budget {panel[4]}, offline {panel[5]}',
             xlabel='episodes spent', ylabel='eval success (%)', ylim=(-3, 103))
      ax.legend(fontsize=6)
    names.append(_save(fig, directory, f'fig5_sweep_{sweep}.png'))
  return names


# --- tables ---------------------------------------------------------------------


def table_teachers(study) -> str:
  if not study.teachers:
    return 'No teacher evaluation found.'
  lines = ['| teacher | triplet | success | 95 % interval | eval episodes |',
           '|---|---|---|---|---|']
  for c in study.teachers:
    lo, hi = c['ci95']
    lines.append(f'| {c["teacher"]} | {c["triplet"]} | {pct(c["success_rate"])} | '
                 f'[{pct(lo)}, {pct(hi)}] | {c["episodes"]} |')
  return '\n'.join(lines)


def table_best(study, budget: int) -> str:
  """Table III-style: one row per (triplet, teacher), best proportion per method."""
  cells = [c for c in study.select('grid') if c.budget == budget]
  methods = sorted({c.method for c in cells})
  best = {}
  for pair in _pairs(cells):
    best[pair] = study_results.best_per_budget(
        c for c in cells if (c.triplet, c.teacher, c.obs) == pair)
  lines = ['| triplet | teacher | obs | teacher success | ' + ' | '.join(methods) + ' |',
           '|---' * (4 + len(methods)) + '|']
  for (triplet, teacher, obs), row in best.items():
    t = study.teacher(teacher, triplet)
    entries = []
    for m in methods:
      cell = row.get((m, budget))
      entries.append(f'{cell.format()}, offline {cell.offline_episodes}' if cell else '–')
    lines.append(f'| {triplet} | {teacher} | {obs} | '
                 f'{pct(t["success_rate"]) if t else "–"} | ' + ' | '.join(entries) + ' |')
  return '\n'.join(lines)


def table_cells(study) -> str:
  lines = ['| sweep | method | triplet | teacher | obs | budget | offline | proportion | '
           'final success [95 %] | seeds |', '|---' * 10 + '|']
  for c in sorted(study.cells, key=study_results.table_order):
    lo, hi = c.interval()
    sweep = c.sweep + ''.join(f' {k}={v}' for k, v in c.overrides)
    lines.append(f'| {sweep} | {c.method} | {c.triplet} | {c.teacher} | {c.obs} | {c.budget} '
                 f'| {c.offline_episodes} | {c.proportion:.2f} | {pct(c.mean)} '
                 f'[{pct(lo)}, {pct(hi)}] | {c.n_seeds} |')
  return '\n'.join(lines)


def _settings_notes(study) -> list:
  """What differs from the paper's settings, read from the runs' configs."""
  index = run_files.read_json(os.path.join(study.workdir, study_results.STUDY_FILE))
  configs = [r['config'] for r in index['runs']]
  notes = []
  steps = sorted({c['episode_steps'] for c in configs})
  if steps != [specs.EPISODE_STEPS]:
    notes.append(f'Episodes are {steps} steps long (the task\'s is {specs.EPISODE_STEPS}): '
                 'shorter episodes make stacking harder or impossible; compare with care.')
  else:
    notes.append(f'Full {specs.EPISODE_STEPS}-step episodes.')
  grads = sorted({c['grad_steps'] for c in configs})
  notes.append(f'Offline-only methods train {grads} gradient steps (the paper: 1 000 000).')
  rates = sorted({c.get('env_steps_per_grad_step', 5) for c in configs
                  if c['offline_episodes'] != c['budget']})
  if rates:
    notes.append(f'Online runs take one gradient step per {rates} env steps (the paper: 5).')
  emas = sorted({c.get('policy_ema', 0.0) for c in configs} - {0.0})
  if emas:
    notes.append(f'Evaluations score a Polyak-averaged copy of the policy (decay {emas}); '
                 'each run\'s eval.json also has the trained policy\'s (`eval_raw`).')
  finals = sorted({c['final_eval_episodes'] for c in configs})
  notes.append(f'Final evaluation: {finals} episodes per run with the deterministic action, '
               'on the teacher\'s evaluation seeds (the paper: 200).')
  return notes


def write_report(workdir: str, output: Optional[str] = None,
                 episodes_per_hour: float = recommend_lib.PAPER_EPISODES_PER_HOUR,
                 budgets: Optional[Sequence[int]] = None) -> str:
  study = study_results.load_study(workdir)
  grid = study.select('grid')
  studied = sorted({c.budget for c in grid})
  unknown = sorted(set(budgets or ()) - set(studied))
  if unknown:  # Checked before anything is written, like every bad input.
    raise ValueError(f'No finished runs at budget {unknown}; the study has budgets {studied}.')
  budgets = list(budgets) if budgets else studied
  output = output or os.path.join(workdir, 'report')
  os.makedirs(output, exist_ok=True)
  figures = [figure_budget(study, output), figure_proportion(study, output),
             figure_curves(study, output), *figure_sweeps(study, output)]
  lines = [f'# Study `{study.name}`', '', study.description.strip(), '',
           f'Results of `{os.path.abspath(workdir)}`: {len(study.cells)} configurations '
           f'from {sum(c.n_seeds for c in study.cells)} finished runs.']
  if study.missing:
    lines.append(f'**{len(study.missing)} runs are not finished and are left out:** '
                 + ', '.join(study.missing) + '.')
  if study.restarted:
    lines.append(f'{len(study.restarted)} runs were resumed after a crash, a stop or a lost '
                 'Ray worker (each resume ingests the episodes logged since its checkpoint): '
                 + ', '.join(f'{name} ({resumes} resumes'
                             + (f', {tries} Ray attempts)' if tries > 1 else ')')
                             for name, (resumes, tries) in sorted(study.restarted.items()))
                 + '.')
  lines += ['', 'Intervals are 95 %: Wilson over evaluation episodes for one seed, a '
            'bootstrap over seeds and evaluation episodes for several. "n" is the number '
            'of seeds.', '', *[f'- {n}' for n in _settings_notes(study)], '',
            '## Split recommendation', '']
  recommendations = [recommend_lib.recommend_group(study, cells, budget, episodes_per_hour)
                     for budget in budgets
                     for cells in recommend_lib.group_cells(study, None, None, None).values()
                     if any(c.budget == budget for c in cells)]
  lines += ['\n\n'.join(recommend_lib.format_recommendation(r) for r in recommendations)
            or 'No finished runs in the main grid.', '']
  findings = findings_lib.study_findings(study)
  lines += ['## The paper\'s findings, checked', '', findings_lib.format_findings(findings), '']
  diagnostics = diagnostics_lib.study_diagnostics(study)
  lines += ['## Why, from the training logs', '',
            diagnostics_lib.format_diagnostics(diagnostics, findings), '']
  titles = {'fig3_success_vs_budget.png': 'Fig. 3 equivalent: success vs budget (each '
                                          'method at its best offline proportion)',
            'fig4_success_vs_offline_proportion.png': 'Fig. 4 equivalent: success vs '
                                                      'offline proportion of the budget',
            'fig5_learning_curves.png': 'Fig. 5 equivalent: learning curves (evaluation '
                                        'success vs episodes spent; band: 95 % interval)'}
  lines += ['## Figures', '']
  for name in (f for f in figures if f):
    title = titles.get(name, f'Sweep {name[len("fig5_sweep_"):-4]}: learning curves per '
                             'override value')
    lines += [f'### {title}', '', f'![{title}]({name})', '']
  lines += ['## Table I equivalent: teacher success', '',
            f'Source: {study.teacher_source}.', '', table_teachers(study), '']
  for budget in budgets:
    lines += [f'## Table III-style: budget {budget} (best offline proportion per method)',
              '', table_best(study, budget), '']
  lines += ['## Every configuration', '', table_cells(study), '',
            f'The same numbers, per seed, are in `{export.RESULTS_FILE}` beside this file.', '']
  export.write_results(os.path.join(output, export.RESULTS_FILE), study, recommendations,
                       findings, diagnostics)
  path = os.path.join(output, 'report.md')
  with open(path, 'w') as f:
    f.write('\n'.join(lines))
  return path


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('workdir', help='a study folder (python -m learners.study --workdir)')
  parser.add_argument('--output', default=None, help='default: <workdir>/report')
  parser.add_argument('--episodes_per_hour', type=float,
                      default=recommend_lib.PAPER_EPISODES_PER_HOUR,
                      help='robot throughput for the recommender (default: the paper\'s '
                           '1000 episodes per ~24 h)')
  parser.add_argument('--budget', type=int, action='append', default=None,
                      help='recommend for this budget (repeatable; default: every budget)')
  args = parser.parse_args(argv)
  if args.episodes_per_hour <= 0:
    parser.error('--episodes_per_hour must be > 0')
  try:
    path = write_report(args.workdir, args.output, args.episodes_per_hour, args.budget)
  except (FileNotFoundError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'report: {os.path.abspath(path)}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
