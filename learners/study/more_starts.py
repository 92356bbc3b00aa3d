r"""More evaluation starts for a finished study: each final evaluation and each
teacher evaluation extended, start by start, to `--episodes` starts.

  python -m learners.study.more_starts runs/laptop_triplet2_a --episodes 1000 --workers 2
  python -m learners.study.report runs/laptop_triplet2_a     # the same report, 1 000 starts

Where students and their teacher agree on most starts, the paired interval of a
student minus its teacher is set by the number of shared starts, not by the seeds
(docs/results/laptop_triplet2_a: seed sd 2 points, interval ±7.6 points over
200 starts).  Re-training for a longer evaluation would re-spend the whole
budget; this scores the policies already trained on the starts after the ones
they were scored on:

  * a finished run: its last checkpoint (the one its final evaluation scored),
    the deterministic action of its evaluation policy, on starts
    `episodes .. --episodes - 1` of `envs.evaluate.eval_seed`;
  * a teacher cell of `teachers.json`: `envs.evaluate.evaluate` on the same starts.

Before any new start, the first `--check` recorded starts are played again and must
give the recorded outcomes exactly (evaluation is deterministic); otherwise the
checkpoint or the teacher is not what was scored and that run or cell is left
unchanged.  Each extension is written by an atomic rename (a run's `summary.json`
last), keeps `extended_from` (the episodes its training run scored), and is
skipped once done, so a stopped extension resumes run by run.  It holds the
study's lock: no study runner can write the folder meanwhile.  Evaluation
episodes are not part of any budget; the runs' ledgers keep what training spent.
"""

import argparse
import multiprocessing
import os
import sys
from typing import Optional, Sequence

from tqdm import tqdm

from learners.study import outcomes as outcomes_lib
from learners.study import results as study_results
from learners.training import workdir as run_files

CHECK_STARTS = 10


def merged(recorded: dict, more: dict) -> dict:
  """`recorded` (an evaluation from start 0) followed by `more` (from its end)."""
  n, m = recorded['episodes'], more['episodes']
  out = dict(recorded)
  outcomes = recorded['outcomes'] + more['outcomes']
  wins = outcomes.count('1')
  from envs import evaluate as envs_evaluate  # pylint: disable=g-import-not-at-top
  out.update(episodes=n + m, successes=wins, success_rate=wins / (n + m),
             ci95=list(envs_evaluate.wilson_interval(wins, n + m)), outcomes=outcomes,
             mean_return=(recorded['mean_return'] * n + more['mean_return'] * m) / (n + m),
             extended_from=recorded.get('extended_from', n))
  return out


def pending_runs(workdir: str, episodes: int) -> list:
  """Finished runs whose final evaluation has outcomes from start 0 and fewer starts."""
  out = []
  for run_dir, final in outcomes_lib.finished_runs(workdir):
    if final.get('first_index', 0) != 0 or not final.get('outcomes'):
      raise ValueError(f'{run_dir}: its final evaluation has no per-start outcomes from '
                       'start 0; run python -m learners.study.outcomes on the study first.')
    if final['episodes'] < episodes:
      out.append(run_dir)
  return out


def score_run(task: tuple) -> tuple:
  """(run_dir, replayed check outcomes, EvalResult on the new starts or None)."""
  run_dir, episodes, check = task
  with outcomes_lib.scored_policy(run_dir) as (final, evaluator, policy):
    check = min(check, final['episodes'])
    replay = evaluator.run(policy, check, final['grad_step']).outcomes if check else ''
    if replay != final['outcomes'][:check]:
      return run_dir, replay, None
    return run_dir, replay, evaluator.run(policy, episodes - final['episodes'],
                                          final['grad_step'], first_index=final['episodes'])


def write_run(run_dir: str, more: dict) -> dict:
  # eval.json's entry is rewritten from summary.json's record: a stop between the two
  # writes left it extended already, and a rerun must not extend it twice.
  final = run_files.read_json(os.path.join(run_dir, run_files.SUMMARY_FILE))['final_eval']
  final = merged(final, more)
  outcomes_lib.write_final_eval(run_dir, final)
  return final


def extend_teachers(workdir: str, episodes: int, workers: int, check: int, log=print) -> int:
  """Extends teachers.json's cells; returns how many did not replay their record."""
  path = os.path.join(workdir, study_results.TEACHERS_FILE)
  if not os.path.exists(path):
    return 0
  data = run_files.read_json(path)
  mismatches = 0
  for cell in data['cells']:
    have = cell['episodes']
    if have >= episodes:
      continue
    if not cell.get('outcomes'):
      raise ValueError(f'{path}: teacher {cell["teacher"]} on {cell["triplet"]} has no '
                       'per-start outcomes; run python -m learners.study.outcomes first.')
    check_n = min(check, have)
    again = outcomes_lib.evaluate_teacher(cell, check_n, workers)
    if again['outcomes'] != cell['outcomes'][:check_n]:
      mismatches += 1
      log(f'teacher {cell["teacher"]} on {cell["triplet"]}: its first {check_n} starts give '
          f'{again["outcomes"]}, teachers.json has {cell["outcomes"][:check_n]}: left as it '
          'is (were the teacher, the env or episode_steps changed since?).')
      continue
    cell.update(merged(cell, outcomes_lib.evaluate_teacher(cell, episodes - have, workers,
                                                           start=have)))
    run_files.write_json_atomic(path, data)
    log(f'teacher {cell["teacher"]} on {cell["triplet"]}: {cell["successes"]}/'
        f'{cell["episodes"]} ({have} recorded + {episodes - have} new starts).')
  return mismatches


def extend(workdir: str, episodes: int, workers: int = 1, check: int = CHECK_STARTS,
           dry_run: bool = False, log=print) -> int:
  """Returns the number of runs and teacher cells that did not replay their record."""
  study_results.require_study(workdir)
  runs = pending_runs(workdir, episodes)  # Bad input is refused before the lock file.
  log(f'{len(runs)} finished runs in {workdir} to extend to {episodes} evaluation starts.')
  if dry_run:
    for run_dir in runs:
      log(f'  {os.path.basename(run_dir)}')
    return 0
  with run_files.exclusive(workdir, 0.0):  # No study runner writes the folder meanwhile.
    return (extend_teachers(workdir, episodes, workers, check, log)
            + extend_runs(runs, episodes, workers, check, log))


def extend_runs(runs: list, episodes: int, workers: int, check: int, log=print) -> int:
  """Extends each run folder of `runs`; returns how many did not replay their record."""
  from learners.training import evaluation  # pylint: disable=g-import-not-at-top
  mismatches = 0
  tasks = [(run_dir, episodes, check) for run_dir in runs]
  with multiprocessing.get_context('spawn').Pool(
      max(1, workers), initializer=evaluation.single_threaded_tf) as pool:
    for run_dir, replay, result in tqdm(pool.imap(score_run, tasks), total=len(tasks),
                                        desc='extending', unit='run', disable=None):
      name = os.path.basename(run_dir)
      if result is None:
        mismatches += 1
        log(f'{name}: its first {len(replay)} starts give {replay}, not the recorded ones: '
            'left as it is (its checkpoint is not the policy scored).')
        continue
      final = write_run(run_dir, result.as_dict())
      log(f'{name}: {final["successes"]}/{final["episodes"]} ({result.successes}/'
          f'{result.episodes} on the new starts).')
  return mismatches


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('workdir', help='a study folder (python -m learners.study --workdir)')
  parser.add_argument('--episodes', type=int, required=True,
                      help='evaluation starts per run and per teacher afterwards')
  parser.add_argument('--workers', type=int, default=1, help='evaluation processes')
  parser.add_argument('--check', type=int, default=CHECK_STARTS,
                      help='recorded starts replayed first, which must match')
  parser.add_argument('--dry_run', action='store_true', help='list the runs, change nothing')
  args = parser.parse_args(argv)
  if args.workers < 1 or args.episodes < 1 or args.check < 0:
    parser.error('--workers and --episodes must be >= 1, --check >= 0')
  try:
    mismatches = extend(args.workdir, args.episodes, args.workers, args.check, args.dry_run)
  except (FileNotFoundError, FileExistsError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  if mismatches:
    print(f'error: {mismatches} run(s) or teacher cell(s) did not replay their recorded '
          'outcomes (listed above); their files are unchanged.', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
