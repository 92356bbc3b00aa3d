r"""Per-start outcomes for a study finished before evaluations kept them.

  python -m learners.study.outcomes runs/laptop [--workers 2] [--dry_run]

Paired comparisons (learners.study.results.paired_difference) need each final
evaluation's and the teacher evaluation's success start by start; runs written
before those were kept have counts only.  This re-runs the evaluation that
produced each count, from what is on disk:

  * a finished run: its last checkpoint (the one its final evaluation scored,
    written just before it), the deterministic action of its evaluation policy
    on the same `final_eval_episodes` evaluation starts;
  * a teacher cell of `teachers.json`: `envs.evaluate.evaluate` again.

Evaluation is deterministic, so the re-run must give the recorded count; only
then are the outcomes written into the run's `summary.json` (and the `final`
entry of its `eval.json`) or into `teachers.json`, each by an atomic rename.  A
count that differs is reported and nothing of that run is changed: its
checkpoint is not the policy its count came from.  Runs and cells that already
have outcomes are skipped, so a stopped backfill resumes where it stopped.
"""

import argparse
import contextlib
import multiprocessing
import os
import sys
from typing import Iterator, Optional, Sequence

from tqdm import tqdm

from envs import specs
from learners.study import results as study_results
from learners.training import workdir as run_files


def finished_runs(workdir: str) -> list:
  """(run folder, its final evaluation) of each run of study.json with a summary.json."""
  index = run_files.read_json(os.path.join(workdir, study_results.STUDY_FILE))
  out = []
  for run in index['runs']:
    run_dir = os.path.join(workdir, study_results.RUNS_DIR, run['name'])
    path = os.path.join(run_dir, run_files.SUMMARY_FILE)
    if os.path.exists(path):
      out.append((run_dir, run_files.read_json(path)['final_eval']))
  return out


def pending_runs(workdir: str) -> list:
  """Run folders with a summary.json whose final evaluation lacks outcomes."""
  return [run_dir for run_dir, final in finished_runs(workdir) if not final.get('outcomes')]


@contextlib.contextmanager
def scored_policy(run_dir: str) -> Iterator[tuple]:
  """(final evaluation, Evaluator, policy) of a finished run: its last checkpoint, the
  one its final evaluation scored, in the env that evaluation used (closed after)."""
  from learners.training import actors as actors_lib  # pylint: disable=g-import-not-at-top
  from learners.training import evaluation  # pylint: disable=g-import-not-at-top
  from learners.training import setup  # pylint: disable=g-import-not-at-top
  final = run_files.read_json(os.path.join(run_dir, run_files.SUMMARY_FILE))['final_eval']
  config, _, learner = setup.restore_run(run_dir)
  evaluator = evaluation.Evaluator(config.triplet, config.obs, config.episode_steps,
                                   config.image_size)
  try:
    yield final, evaluator, actors_lib.StudentPolicy(learner.eval_distribution)
  finally:
    evaluator.close()


def reevaluate_run(run_dir: str) -> tuple:
  """(run_dir, recorded successes, re-run EvalResult) of a finished run."""
  with scored_policy(run_dir) as (final, evaluator, policy):
    result = evaluator.run(policy, final['episodes'], final['grad_step'])
  return run_dir, final['successes'], result


def write_final_eval(run_dir: str, final: dict) -> None:
  """`final` as the run's final evaluation: summary.json's and eval.json's last 'final'."""
  summary_path = os.path.join(run_dir, run_files.SUMMARY_FILE)
  summary = run_files.read_json(summary_path)
  summary['final_eval'] = final
  evals_path = os.path.join(run_dir, run_files.EVAL_FILE)
  if os.path.exists(evals_path):
    evals = run_files.read_json(evals_path)
    finals = [e for e in evals if e.get('label') == 'final']
    if finals:
      finals[-1].update(final)
      run_files.write_json_atomic(evals_path, evals)
  # summary.json last: what it says marks the run as done by the tool that wrote it.
  run_files.write_json_atomic(summary_path, summary)


def write_run_outcomes(run_dir: str, outcomes: str) -> None:
  final = run_files.read_json(os.path.join(run_dir, run_files.SUMMARY_FILE))['final_eval']
  write_final_eval(run_dir, dict(final, first_index=0, outcomes=outcomes))


def evaluate_teacher(cell: dict, episodes: int, workers: int, start: int = 0) -> dict:
  """A teacher cell of teachers.json evaluated again, as recorded, on `episodes` starts."""
  from envs import evaluate as envs_evaluate  # pylint: disable=g-import-not-at-top
  (again,) = envs_evaluate.evaluate([cell['teacher']], [cell['triplet']], episodes,
                                    cell.get('policy_mode', 'deterministic'), workers,
                                    cell.get('episode_steps', specs.EPISODE_STEPS),
                                    start=start)
  return again


def backfill_teachers(workdir: str, workers: int, log=print) -> int:
  """Outcomes for teachers.json's cells; returns how many counts disagreed."""
  path = os.path.join(workdir, study_results.TEACHERS_FILE)
  if not os.path.exists(path):
    return 0
  data = run_files.read_json(path)
  mismatches = 0
  for cell in data['cells']:
    if cell.get('outcomes'):
      continue
    again = evaluate_teacher(cell, cell['episodes'], workers)
    if again['successes'] != cell['successes']:
      mismatches += 1
      log(f'teacher {cell["teacher"]} on {cell["triplet"]}: re-run gives '
          f'{again["successes"]}/{cell["episodes"]}, teachers.json has {cell["successes"]}: '
          'left without outcomes (were the teacher, the env or episode_steps changed since?).')
      continue
    cell['outcomes'] = again['outcomes']
    log(f'teacher {cell["teacher"]} on {cell["triplet"]}: {cell["successes"]}/'
        f'{cell["episodes"]} again; outcomes written.')
    run_files.write_json_atomic(path, data)
  return mismatches


def backfill(workdir: str, workers: int = 1, dry_run: bool = False, log=print) -> int:
  """Returns the number of runs and teacher cells whose re-run count disagreed."""
  study_results.require_study(workdir)
  runs = pending_runs(workdir)
  log(f'{len(runs)} finished runs without per-start outcomes in {workdir}.')
  if dry_run:
    for run_dir in runs:
      log(f'  {os.path.basename(run_dir)}')
    return 0
  mismatches = backfill_teachers(workdir, workers, log)
  from learners.training import evaluation  # pylint: disable=g-import-not-at-top
  with multiprocessing.get_context('spawn').Pool(
      max(1, workers), initializer=evaluation.single_threaded_tf) as pool:
    for run_dir, recorded, result in tqdm(pool.imap_unordered(reevaluate_run, runs),
                                          total=len(runs), desc='re-evaluating', unit='run',
                                          disable=None):
      name = os.path.basename(run_dir)
      if result.successes != recorded:
        mismatches += 1
        log(f'{name}: re-run gives {result.successes}/{result.episodes}, summary.json has '
            f'{recorded}: left without outcomes (its checkpoint is not the policy scored).')
        continue
      write_run_outcomes(run_dir, result.outcomes)
      log(f'{name}: {recorded}/{result.episodes} again; outcomes written.')
  return mismatches


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('workdir', help='a study folder (python -m learners.study --workdir)')
  parser.add_argument('--workers', type=int, default=1, help='evaluation processes')
  parser.add_argument('--dry_run', action='store_true', help='list the runs, change nothing')
  args = parser.parse_args(argv)
  if args.workers < 1:
    parser.error('--workers must be >= 1')
  try:
    mismatches = backfill(args.workdir, args.workers, args.dry_run)
  except FileNotFoundError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  if mismatches:
    print(f'error: {mismatches} re-run count(s) differ from the recorded ones (listed above); '
          'their files are unchanged.', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
