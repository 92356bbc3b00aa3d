r"""Report of a study: Markdown + PNG figures, the paper's figures and tables.

  python -m learners.study.report runs/laptop [runs/laptop_seeds ...] \
      [--output runs/laptop/report] [--episodes_per_hour 41.7] [--budget 10000]

Writes `report.md`, `results.json` (every number of it, for scripts: see
learners.study.export) and `fig*.png` under --output (default: <study>/report):

  * Figs. 3, 4 and 5 and the offline runs' learning curves (learners.study.figures);
  * Table I (teacher success), a Table III-style table per budget, every cell;
  * the split recommender (learners.study.recommend) for each budget, or --budget,
    with the teacher as the baseline option ("run the teacher");
  * the paper's findings (a)-(e) checked on the main grid (learners.study.findings);
  * why, from each cell's training logs (learners.study.diagnostics).

Every number carries its 95 % interval and its seed count (learners.study.results
has the interval math).  Unfinished runs are listed, not guessed.
"""

import argparse
import os
import sys
from typing import Optional, Sequence, Union

from envs import specs
from learners.study import diagnostics as diagnostics_lib
from learners.study import export
from learners.study import figures
from learners.study import findings as findings_lib
from learners.study import pool
from learners.study import recommend as recommend_lib
from learners.study import results as study_results
from learners.study import teacher_data
from learners.study.results import pct
from learners.training import workdir as run_files

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
  for pair in figures.pairs(cells):
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
           'final success [95 %] | seeds | minus the teacher, paired [95 %] |',
           '|---' * 11 + '|']
  for c in sorted(study.cells, key=study_results.table_order):
    lo, hi = c.interval()
    sweep = c.sweep + ''.join(f' {k}={v}' for k, v in c.overrides)
    paired = study.versus_teacher(c)
    lines.append(f'| {sweep} | {c.method} | {c.triplet} | {c.teacher} | {c.obs} | {c.budget} '
                 f'| {c.offline_episodes} | {c.proportion:.2f} | {pct(c.mean)} '
                 f'[{pct(lo)}, {pct(hi)}] | {c.n_seeds} | '
                 f'{paired.format() if paired else "– (no per-start outcomes)"} |')
  return '\n'.join(lines)


def _settings_notes(study) -> list:
  """What differs from the paper's settings, read from the runs' configs."""
  configs = [r['config'] for workdir in study.workdirs
             for r in run_files.read_json(os.path.join(workdir, study_results.STUDY_FILE))['runs']]
  notes = []
  steps = sorted({c['episode_steps'] for c in configs})
  if steps != [specs.EPISODE_STEPS]:
    notes.append(f'Episodes are {steps} steps long (the task\'s is {specs.EPISODE_STEPS}): '
                 'shorter episodes make stacking harder or impossible; compare with care.')
  else:
    notes.append(f'Full {specs.EPISODE_STEPS}-step episodes.')
  grads = sorted({c['grad_steps'] for c in configs})
  notes.append(f'Offline-only methods train {grads} gradient steps (the paper: 1 000 000).')
  rates = sorted({(c.get('grad_steps_per_update', 1), c.get('env_steps_per_grad_step', 5))
                  for c in configs if c['offline_episodes'] != c['budget']})
  if rates:
    notes.append('Online runs take ' + ' or '.join(f'{k} gradient step{"s" * (k > 1)} per {n} '
                                                   'env steps' for k, n in rates)
                 + ' (the paper: 1 per 5).')
  emas = sorted({c.get('policy_ema', 0.0) for c in configs} - {0.0})
  if emas:
    notes.append(f'Evaluations score a Polyak-averaged copy of the policy (decay {emas}); '
                 'each run\'s eval.json also has the trained policy\'s (`eval_raw`).')
  finals = sorted({c['final_eval_episodes'] for c in configs})
  scored = sorted({n for cell in study.cells for n in cell.episodes})
  notes.append(f'Final evaluation: {scored} episodes per run with the deterministic action, '
               'on the teacher\'s evaluation seeds (the paper: 200)' + (
                   '.' if scored == finals else
                   f'; the runs scored {finals} when they finished, and python -m '
                   'learners.study.more_starts scored their last checkpoints on the next '
                   'starts, as it did the teacher\'s.'))
  return notes


def write_report(workdirs: Union[str, Sequence[str]], output: Optional[str] = None,
                 episodes_per_hour: float = recommend_lib.PAPER_EPISODES_PER_HOUR,
                 budgets: Optional[Sequence[int]] = None) -> str:
  """The report of one study folder, or of several pooled (learners.study.pool)."""
  workdirs = [workdirs] if isinstance(workdirs, str) else list(workdirs)
  study = pool.load_studies(workdirs)
  grid = study.select('grid')
  studied = sorted({c.budget for c in grid})
  unknown = sorted(set(budgets or ()) - set(studied))
  if unknown:  # Checked before anything is written, like every bad input.
    raise ValueError(f'No finished runs at budget {unknown}; the study has budgets {studied}.')
  budgets = list(budgets) if budgets else studied
  output = output or os.path.join(workdirs[0], 'report')
  os.makedirs(output, exist_ok=True)
  drawn = [figures.figure_budget(study, output), figures.figure_proportion(study, output),
           figures.figure_curves(study, output), figures.figure_offline_curves(study, output),
           *figures.figure_sweeps(study, output)]
  lines = [f'# Study `{study.name}`', '', study.description.strip(), '',
           f'Results of {", ".join(f"`{os.path.abspath(w)}`" for w in workdirs)}: '
           f'{len(study.cells)} configurations from {sum(c.n_seeds for c in study.cells)} '
           'finished runs' + (', seeds of one configuration pooled across the folders.'
                              if len(workdirs) > 1 else '.')]
  if study.duplicates:
    lines.append('Seeds found in two folders, kept once (the longer evaluation): '
                 + '; '.join(study.duplicates) + '.')
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
            'of seeds. Every policy is evaluated on the same starts, so comparisons with '
            'the teacher and between cells are paired start by start where the runs kept '
            'per-start outcomes (a bootstrap over the shared starts and the seeds).', '',
            *[f'- {n}' for n in _settings_notes(study)], '',
            '## Split recommendation', '']
  recommendations = [recommend_lib.recommend_group(study, cells, budget, episodes_per_hour)
                     for budget in budgets
                     for cells in recommend_lib.group_cells(study, None, None, None).values()
                     if any(c.budget == budget for c in cells)]
  lines += ['\n\n'.join(recommend_lib.format_recommendation(r) for r in recommendations)
            or 'No finished runs in the main grid.', '']
  variants = recommend_lib.variants_above_teacher(study)
  if variants:
    lines += [recommend_lib.format_variants_above(variants), '']
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
                                        'success vs episodes spent; band: 95 % interval)',
            'fig_offline_learning_curves.png': 'Offline runs: evaluation success vs '
                                               'gradient steps (has it plateaued?)'}
  lines += ['## Figures', '']
  for name in (f for f in drawn if f):
    title = titles.get(name, f'Sweep {name[len("fig5_sweep_"):-4]}: learning curves per '
                             'override value')
    lines += [f'### {title}', '', f'![{title}]({name})', '']
  cards = teacher_data.dataset_cards(study)
  lines += ['## Table I equivalent: teacher success', '',
            f'Source: {study.teacher_source}.', '', table_teachers(study), '',
            '### The teacher data', '', teacher_data.format_cards(cards), '']
  for budget in budgets:
    lines += [f'## Table III-style: budget {budget} (best offline proportion per method)',
              '', table_best(study, budget), '']
  lines += ['## Every configuration', '', table_cells(study), '',
            f'The same numbers, per seed, are in `{export.RESULTS_FILE}` beside this file.', '']
  export.write_results(os.path.join(output, export.RESULTS_FILE), study, recommendations,
                       findings, diagnostics, cards)
  path = os.path.join(output, 'report.md')
  with open(path, 'w') as f:
    f.write('\n'.join(lines))
  return path


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('workdir', nargs='+',
                      help='a study folder (python -m learners.study --workdir); several '
                           'are reported as one, a follow-up\'s seeds joining the cells '
                           'they repeat (learners.study.pool)')
  parser.add_argument('--output', default=None, help='default: <first workdir>/report')
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
