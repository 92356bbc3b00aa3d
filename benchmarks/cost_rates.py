"""Per-step costs measured in a finished study's runs, against the dry run's cost model.

  python benchmarks/cost_rates.py runs/demo            # one JSON line per figure
  python benchmarks/cost_rates.py runs/demo --write    # refit learners/study/cost_rates.json

Reads each run's `summary.json` (the loop's own timers: learner, actor,
evaluation, the online phase; and the launcher process's age, for the start-up)
and prints, per unit the cost model prices, the median measured seconds, the
model's value and their ratio; then, per run kind, the model's seconds for each
run over its measured life (`run_seconds`).  `--write` puts
the measured medians into the rates file `learners.study.cost` reads, keeping
the old value for any unit no run measured (the output says which).  The
machine's load while the study ran is in the figures: fit from a study run
the way you will run the next one (e.g. `--workers 2` on 2 cores).
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from learners import methods as methods_lib  # pylint: disable=g-import-not-at-top
from learners.study import cost, grid  # pylint: disable=g-import-not-at-top
from learners.training import workdir as run_files  # pylint: disable=g-import-not-at-top


def _finished_state_runs(study_dir: str):
  """(config, summary) of each finished state run; the model prices vision as a factor."""
  for run_dir in sorted(glob.glob(os.path.join(study_dir, 'runs', '*'))):
    summary_path = os.path.join(run_dir, run_files.SUMMARY_FILE)
    if not os.path.exists(summary_path):
      continue
    config = run_files.read_json(os.path.join(run_dir, 'config.json'))
    if config['obs'] == 'state':
      yield config, run_files.read_json(summary_path)


def samples(study_dir: str) -> dict:
  """{unit: [seconds per unit, one per run]} from the study's finished runs."""
  out = {}
  for config, summary in _finished_state_runs(study_dir):
    timing, ledger = summary['timing'], summary['ledger']
    weighting = methods_lib.get_method(config['method']).weighting
    if ledger['grad_steps'] and not ledger['env_steps']:
      out.setdefault(f'offline_grad_step.{weighting}', []).append(
          (timing['learner_s'] + timing.get('data_wait_s', 0.0)) / ledger['grad_steps'])
    online = _online_phase(config, timing, ledger)
    if online is not None:
      grad_step, overlap, actor_bound = online
      out.setdefault(f'online_grad_step.{weighting}', []).append(grad_step)
      out.setdefault('online_overlap', []).append(overlap)
      if actor_bound:
        out.setdefault('actor_env_step', []).append(timing['actor_s'] / ledger['env_steps'])
    if timing.get('eval_s') and ledger['eval_episodes']:
      eval_steps = ledger['eval_episodes'] * config['episode_steps']
      out.setdefault('eval_env_step', []).append(timing['eval_s'] / eval_steps)
      accounted = sum(timing.get(k, 0.0) for k in ('learner_s', 'data_wait_s', 'actor_s',
                                                   'actor_wait_s', 'eval_s'))
      # The process's whole life (imports, set-up, tracing, checkpoints) less the
      # priced units.  Not the ledger's wall time: its clock starts after start-up.
      # A resumed run's process saw only its last segment, and an online run's
      # learner thread overlaps its actor (their timers add up to more than the
      # wall): only offline runs that went straight through price it.
      if 'process_s' in timing and not ledger.get('resumes') and not ledger['env_steps']:
        out.setdefault('run_overhead', []).append(max(0.0, timing['process_s'] - accounted))
  return out


def _online_phase(config: dict, timing: dict, ledger: dict):
  """(learner s per online grad step, phase wall / its slower thread, actor the slower?).

  The learner thread overlaps the actor, so the online phase lasts about as long
  as the slower of the two (1.04-1.30x it in the three studies measured), not
  their sum.  The actor's timer prices its env step only where the actor is the
  slower thread: beside a busier learner it runs stretched (8.3 ms per step in
  the laptop study, 3.6 ms in the demo's actor-bound runs), and that stretch is
  hidden in the learner's time.  The phase's wall (`online_s`) holds the periodic
  evaluations made in it, taken out here: they are spread over the grad steps,
  so it holds the online steps' share.  None for offline runs and resumed ones
  (their timers saw segments, not one straight run).
  """
  if (not ledger['env_steps'] or not ledger['grad_steps'] or 'online_s' not in timing
      or ledger.get('resumes')):
    return None
  share = 1.0 - cost.pretrain_steps(config) / ledger['grad_steps']
  if share <= 0 or not timing.get('actor_s'):
    return None
  periodic = max(0, ledger['eval_episodes'] - config['final_eval_episodes'])
  periodic_eval_s = (timing.get('eval_s', 0.0) * periodic / max(1, ledger['eval_episodes'])
                     * share)
  learner_s = timing['learner_s'] * share
  slower = max(timing['actor_s'], learner_s)
  return (timing['learner_s'] / ledger['grad_steps'],
          (timing['online_s'] - periodic_eval_s) / slower, timing['actor_s'] >= learner_s)


def model_over_measured(study_dir: str) -> dict:
  """{run kind: [the dry run's seconds / the process's life]}, runs that went straight through.

  Priced with the rates file as it is, so run it again after `--write` to see the fit.
  """
  out = {}
  for config, summary in _finished_state_runs(study_dir):
    process_s = summary['timing'].get('process_s')
    if not process_s or summary['ledger'].get('resumes'):
      continue
    config.pop('workdir', None)
    kind = methods_lib.get_method(config['method']).kind
    if kind == 'offline':
      config['budget'] = config['offline_episodes']
    run = grid.Run(settings=config, sweep='measured', overrides={})
    out.setdefault(kind, []).append(cost.run_cost(run).seconds / process_s)
  return out


def _get(rates: dict, unit: str) -> float:
  head, _, tail = unit.partition('.')
  return rates[head][tail] if tail else rates[head]


def _set(rates: dict, unit: str, value: float) -> None:
  head, _, tail = unit.partition('.')
  if tail:
    rates[head][tail] = value
  else:
    rates[head] = value


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('study_dir')
  parser.add_argument('--write', action='store_true', help=f'refit {cost.RATES_FILE}')
  args = parser.parse_args(argv)
  measured = samples(args.study_dir)
  if not measured:
    print(f'error: no finished state runs under {args.study_dir}/runs', file=sys.stderr)
    return 2
  with open(cost.RATES_FILE) as f:
    doc = json.load(f)
  for unit, values in sorted(measured.items()):
    median = statistics.median(values)
    print(json.dumps({'figure': 'seconds_per_unit', 'unit': unit, 'runs': len(values),
                      'measured_median': round(median, 6), 'model': _get(doc['rates'], unit),
                      'measured_over_model': round(median / _get(doc['rates'], unit), 2)}))
    _set(doc['rates'], unit, round(median, 6))
    doc['measured'][unit] = {'runs': len(values), 'median': round(median, 6)}
  for kind, ratios in sorted(model_over_measured(args.study_dir).items()):
    print(json.dumps({'figure': 'run_seconds', 'kind': kind, 'runs': len(ratios),
                      'model_over_measured_median': round(statistics.median(ratios), 2),
                      'min': round(min(ratios), 2), 'max': round(max(ratios), 2)}))
  kept = [u for u in ('actor_env_step', 'eval_env_step', 'online_overlap', 'run_overhead',
                      'teacher_env_step')
          + tuple(f'{unit}.{w}' for unit in ('offline_grad_step', 'online_grad_step')
                  for w in doc['rates'][unit]) if u not in measured]
  print(json.dumps({'figure': 'units_not_measured', 'kept_model_value': kept}))
  if args.write:
    commit = subprocess.run(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD'],
                            capture_output=True, text=True, check=False).stdout.strip()
    doc['source'] = (f'python benchmarks/cost_rates.py {args.study_dir} --write '
                     f'(runs of commit {commit or "?"}); units not measured kept: '
                     f'{", ".join(kept) or "none"}')
    run_files.write_json_atomic(cost.RATES_FILE, doc)
    print(f'wrote {cost.RATES_FILE}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
