"""The report's figures (learners.study.report): the paper's Figs. 3, 4 and 5.

  * Fig. 3: success vs budget per method at its best offline proportion: each
    seed a small dot, the mean a marker with its 95 % interval; the teacher's
    95 % interval a grey band around a dashed line at its success, in every
    figure (methods are shifted by ~1 % of the x range so that equal results
    stay visible; Fig. 4 likewise);
  * Fig. 4: success vs offline proportion of the budget, one panel per budget;
  * Fig. 5: learning curves (evaluation success vs episodes spent) of the online
    runs, and one figure per sweep of the spec (e.g. batch size), its runs side by side;
  * offline learning curves: evaluation success vs gradient steps of the
    offline-only runs, to show whether they reached their plateau.

Each function draws one PNG into a folder and returns its file name (None when
the study has nothing to draw).
"""

import collections
import os
from typing import Optional

import matplotlib

matplotlib.use('Agg')  # Files only; no display on servers and CI.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from learners.study import results as study_results  # pylint: disable=g-import-not-at-top
from learners.study.results import pct  # pylint: disable=g-import-not-at-top

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


def pairs(cells) -> list:
  """The (triplet, teacher, obs) groups of `cells`, sorted."""
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
  groups = pairs(cells)
  if not groups:
    return None
  fig, axes = _grid_axes(1, len(groups))
  for ax, (triplet, teacher, obs) in zip(axes[0], groups):
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
  groups = pairs(cells)
  budgets = sorted({c.budget for c in cells})
  fig, axes = _grid_axes(len(groups), len(budgets))
  panels = [(ax, pair, budget, [c for c in cells if (c.triplet, c.teacher, c.obs) == pair
                                and c.budget == budget])
            for row, pair in zip(axes, groups) for ax, budget in zip(row, budgets)]
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
      # Two cells of one method and proportion (overrides apart) are both drawn.
      points = sorted((c for c in here if c.method == method),
                      key=lambda c: (c.proportion, c.overrides))
      _seeds_and_means(ax, [c.proportion + _jitter(i, len(methods), 1.0) for c in points],
                       points, 1.0, label=method)
    _teacher_band(ax, study, triplet, teacher)
    ax.set(title=f'{triplet}, {teacher}, budget {budget}', xlabel='offline proportion',
           ylabel='success (%)', xlim=(-0.05, 1.05), ylim=(-3, 103))
    ax.legend(fontsize=7)
  return _save(fig, directory, 'fig4_success_vs_offline_proportion.png')


def _mean_curve(cell, x: str = 'spent'):
  """(x, success, (lo, hi)) pooled over seeds at common eval points; x is an
  eval.json field: 'spent' (episodes) or 'grad_step'."""
  by_step = collections.defaultdict(list)
  for evals in cell.curves:
    for e in evals:
      # The reported policy only: with policy_ema a run also logs 'eval_raw'.
      if e['label'] in ('eval', 'final'):
        by_step[(e['grad_step'], e['label'])].append(e)
  for step, _ in [k for k in by_step if k[1] == 'final']:
    by_step.pop((step, 'eval'), None)  # The final evaluation of that step has more episodes.
  points = []
  for (_, _), entries in sorted(by_step.items()):
    if len(entries) != cell.n_seeds:
      continue  # An eval point only some seeds reached (unequal lengths).
    wins = sum(e['successes'] for e in entries)
    n = sum(e['episodes'] for e in entries)
    points.append((float(np.mean([e[x] for e in entries])), wins / n,
                   study_results.wilson_interval(wins, n)))
  return sorted(points)


def _plot_curve(ax, cell, label, x: str = 'spent'):
  points = _mean_curve(cell, x)
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


def figure_offline_curves(study, directory: str) -> Optional[str]:
  """Offline-only runs of the main grid: success vs gradient steps, per budget.

  Their episodes spent never change, so Fig. 5 cannot show them; this shows
  whether they trained long enough (a plateau) or were cut off still climbing.
  """
  cells = [c for c in study.select('grid') if c.offline_episodes == c.budget]
  if not cells:
    return None
  fig, panels = _budget_panels(cells)
  for ax, (triplet, teacher, _), budget, here in panels:
    for cell in sorted(here, key=lambda c: c.method):
      _plot_curve(ax, cell, cell.method, x='grad_step')
    _teacher_band(ax, study, triplet, teacher)
    ax.set_title(f'{triplet}, {teacher}, budget {budget}, offline', fontsize=8)
    ax.set(xlabel='gradient steps', ylabel='eval success (%)', ylim=(-3, 103))
    ax.legend(fontsize=6)
  return _save(fig, directory, 'fig_offline_learning_curves.png')


def figure_sweeps(study, directory: str) -> list:
  """One figure per sweep: its runs' curves, one line per override value."""
  names = []
  for sweep in sorted({c.sweep for c in study.cells} - {'grid'}):
    cells = study.select(sweep)
    panels = sorted({(c.method, c.triplet, c.teacher, c.obs, c.budget, c.offline_episodes)
                     for c in cells})
    fig, axes = _grid_axes(1, len(panels))
    for ax, panel in zip(axes[0], panels):
      here = [c for c in cells
              if (c.method, c.triplet, c.teacher, c.obs, c.budget, c.offline_episodes) == panel]
      grid = study.grid_counterpart(here)
      if grid is not None:
        _plot_curve(ax, grid, f'main grid (row default): final {pct(grid.mean)}')
      for cell in here:
        label = ', '.join(f'{k}={v}' for k, v in cell.overrides) or 'default'
        _plot_curve(ax, cell, f'{label}: final {pct(cell.mean)}')
      _teacher_band(ax, study, panel[1], panel[2])
      ax.set(title=f'{sweep}: {panel[0]}, budget {panel[4]}, offline {panel[5]}',
             xlabel='episodes spent', ylabel='eval success (%)', ylim=(-3, 103))
      ax.legend(fontsize=6)
    names.append(_save(fig, directory, f'fig5_sweep_{sweep}.png'))
  return names
