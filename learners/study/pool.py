"""One study over several study folders: a follow-up's seeds join the cells they repeat.

A question rarely ends with one spec: a study finds a lead, a follow-up adds seeds to
the cells that decide it, another adds a budget.  `load_studies` reads their folders
as one `results.Study`, so the report, its findings and the recommender judge every
seed together instead of a hand-written pooling script:

  python -m learners.study.report /tmp/main/study /tmp/seeds/study --output report/

Two runs are seeds of one cell when every setting that changes what a run trains
(`learners.training.config.IDENTITY_FIELDS`) is the same, except the seed and how
long it is evaluated.  Runs of one cell whose training settings differ across the
folders (100 k gradient steps here, 140 k there) stay apart: each difference becomes
one of the cell's overrides, as a sweep's would.  A seed found twice (a rerun scored on
more starts) is kept once, the run evaluated on the most starts.  The folders must
share their teachers' evaluation starts, checked start by start.
"""

import os
from typing import Sequence

from learners.study import results as study_results
from learners.training import config as config_lib
from learners.training import workdir as run_files

# How long a run is evaluated changes what is measured of it, not what it trains.
EVALUATION_FIELDS = ('seed', 'eval_every', 'eval_episodes', 'final_eval_episodes')
_PER_SEED = ('successes', 'episodes', 'seeds', 'curves', 'run_dirs', 'grad_steps', 'outcomes')


def _training(run_dir: str) -> dict:
  config = run_files.read_json(os.path.join(run_dir, run_files.CONFIG_FILE))
  return {k: config.get(k) for k in config_lib.IDENTITY_FIELDS if k not in EVALUATION_FIELDS}


def _seeds(study: study_results.Study):
  """(cell, index, training settings) for each finished seed of a study."""
  for cell in study.cells:
    for i, run_dir in enumerate(cell.run_dirs):
      yield cell, i, _training(run_dir)


def _pool_cells(studies: Sequence[study_results.Study]) -> tuple:
  """(cells, kept): the seeds regrouped by cell and training settings; `kept` names
  each seed found twice and the run kept for it."""
  seeds = [s for study in studies for s in _seeds(study)]
  varying = {}  # Per base key: the training settings whose values differ among its seeds.
  for cell, _, training in seeds:
    for k, v in training.items():
      varying.setdefault(cell.key, {}).setdefault(k, set()).add(repr(v))
  cells, kept = {}, []
  for cell, i, training in seeds:
    extra = {k: training[k] for k, values in varying[cell.key].items() if len(values) > 1}
    overrides = tuple(sorted(dict(cell.overrides, **extra).items()))
    key = (cell.sweep, overrides, *cell.key[2:])
    pooled = cells.setdefault(key, study_results.Cell(*key))
    seed = cell.seeds[i]
    if seed in pooled.seeds:  # The same run again: keep the one scored on more starts.
      j = pooled.seeds.index(seed)
      old, new = pooled.run_dirs[j], cell.run_dirs[i]
      if cell.episodes[i] > pooled.episodes[j]:
        for field in _PER_SEED:
          getattr(pooled, field)[j] = getattr(cell, field)[i]
      kept.append(f'seed {seed} of {cell.method} at {cell.budget} is in {old} and {new}: '
                  f'kept {pooled.run_dirs[j]} ({pooled.episodes[j]} evaluation episodes)')
      continue
    for field in _PER_SEED:
      getattr(pooled, field).append(getattr(cell, field)[i])
  return list(cells.values()), kept


def _pool_teachers(studies: Sequence[study_results.Study]) -> list:
  """Per (teacher, triplet), the evaluation over the most starts, which every folder's
  must agree with (`results.longest_evaluation`): the runs were scored on the same starts."""
  by_key = {}
  for study in studies:
    for cell in study.teachers:
      by_key.setdefault((cell['teacher'], cell['triplet']), []).append((study.workdir, cell))
  return [study_results.longest_evaluation(evaluations) for evaluations in by_key.values()]


def load_studies(workdirs: Sequence[str]) -> study_results.Study:
  """The study folders as one `Study` (one folder: `results.load_study`'s)."""
  if len(set(map(os.path.abspath, workdirs))) != len(workdirs):
    raise ValueError(f'a study folder is named twice: {list(workdirs)}')
  studies = [study_results.load_study(w) for w in workdirs]
  if len(studies) == 1:
    return studies[0]
  cells, kept = _pool_cells(studies)
  name = ' + '.join(s.name for s in studies)
  return study_results.Study(
      name=name, workdir=studies[0].workdir, cells=cells,
      missing=[f'{m} ({s.workdir})' for s in studies for m in s.missing],
      teachers=_pool_teachers(studies),
      teacher_source='; '.join(sorted({s.teacher_source for s in studies})),
      description='\n\n'.join(f'`{s.name}`: {s.description.strip()}' for s in studies),
      restarted={k: v for s in studies for k, v in s.restarted.items()},
      workdirs=tuple(s.workdir for s in studies), duplicates=kept)
