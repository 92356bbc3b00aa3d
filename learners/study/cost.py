"""What a study costs before it runs: env steps, grad steps, hours (`--dry_run`)."""

import dataclasses
import json
import os
from typing import Any, Mapping, Sequence

from learners import methods as methods_lib
from learners.study import results
from learners.study.grid import Run, dataset_groups, run_state
from learners.study.spec import StudySpec

# Seconds per unit of work, per worker, state obs: fitted to the run summaries
# of a finished study by `benchmarks/cost_rates.py` (the file says which study).
# Vision is scaled by _VISION_FACTOR, and the estimate says so.
RATES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cost_rates.json')
with open(RATES_FILE) as _f:
  COST_S = json.load(_f)['rates']
_VISION_FACTOR = 10.0


@dataclasses.dataclass
class Cost:
  runs: int = 0
  episodes: int = 0  # Budget episodes (robot time), datasets counted once per group.
  online_episodes: int = 0
  eval_episodes: int = 0
  env_steps: int = 0  # Student + evaluation + teacher dataset steps.
  grad_steps: int = 0
  seconds: float = 0.0

  def hours(self, workers: int) -> float:
    return self.seconds / 3600 / max(1, workers)


def pretrain_steps(config: Mapping[str, Any]) -> int:
  """Dataset-only grad steps an online run makes before its online phase."""
  if config['offline_pretrain_steps'] is not None:
    return int(config['offline_pretrain_steps'])
  return methods_lib.get_method(config['method']).pretrain_steps


def _grad_steps(config: Mapping[str, Any], kind: str) -> tuple[int, int]:
  """(grad steps on the dataset alone, grad steps during the online phase)."""
  if kind == 'offline':
    return int(config['grad_steps']), 0
  online_steps = (config['budget'] - config['offline_episodes']) * config['episode_steps']
  return pretrain_steps(config), (online_steps // config['env_steps_per_grad_step']
                                  * config.get('grad_steps_per_update', 1))


def run_cost(run: Run) -> Cost:
  """Estimated work of one run (ignores the min replay size warm-up).

  In the online phase the learner thread overlaps the actor, so the phase takes
  about as long as the slower of the two, times `online_overlap` (their hand-offs;
  fitted by benchmarks/cost_rates.py), not their sum.
  """
  c = run.config
  row = methods_lib.get_method(c['method'])
  kind, weighting = row.kind, row.weighting
  factor = _VISION_FACTOR if c['obs'] == 'vision' else 1.0
  offline_grads, online_grads = _grad_steps(c, kind)
  grads = offline_grads + online_grads
  online = 0 if kind == 'offline' else c['budget'] - c['offline_episodes']
  evals = (grads // c['eval_every'] * c['eval_episodes'] if c['eval_every'] else 0)
  evals += c['final_eval_episodes']
  online_phase = COST_S['online_overlap'] * max(
      online * c['episode_steps'] * COST_S['actor_env_step'],
      online_grads * COST_S['online_grad_step'][weighting]) if online else 0.0
  seconds = (COST_S['run_overhead'] + factor * (
      online_phase + evals * c['episode_steps'] * COST_S['eval_env_step']
      + offline_grads * COST_S['offline_grad_step'][weighting]))
  return Cost(runs=1, episodes=c['budget'], online_episodes=online, eval_episodes=evals,
              env_steps=(online + evals) * c['episode_steps'], grad_steps=grads,
              seconds=seconds)


def study_cost(spec: StudySpec, runs: Sequence[Run]) -> tuple[Cost, Cost]:
  """(runs' cost, teacher datasets' + teacher evaluation cost)."""
  total = Cost()
  for run in runs:
    for field in dataclasses.fields(Cost):
      setattr(total, field.name, getattr(total, field.name) + getattr(run_cost(run), field.name))
  data = Cost()
  for group, sizes in dataset_groups(runs).items():
    factor = _VISION_FACTOR if group.obs == 'vision' else 1.0
    data.episodes += max(sizes)
    data.env_steps += max(sizes) * group.episode_steps
    data.seconds += (factor * max(sizes) * group.episode_steps * COST_S['teacher_env_step']
                     + 30)
  pairs = {(r.config['triplet'], r.config['teacher'], r.config['episode_steps']) for r in runs}
  for _, _, steps in pairs:
    data.eval_episodes += spec.teacher_eval_episodes
    data.env_steps += spec.teacher_eval_episodes * steps
    data.seconds += spec.teacher_eval_episodes * steps * COST_S['eval_env_step']
  return total, data


def format_dry_run(spec: StudySpec, runs: Sequence[Run], workers: int, workdir: str) -> str:
  lines = [f'study {spec.name}: {len(runs)} runs in {workdir}']
  for run in runs:
    cost = run_cost(run)
    state = run_state(os.path.join(workdir, results.RUNS_DIR, run.name), run.settings)
    extra = ' '.join(f'{k}={v}' for k, v in run.overrides.items())
    lines.append(f'  [{state:8}] {run.name}  {cost.grad_steps} grad steps, '
                 f'{cost.online_episodes} online eps, ~{cost.seconds / 60:.1f} min'
                 + (f'  ({run.sweep}: {extra})' if run.sweep != 'grid' else ''))
  for group, sizes in dataset_groups(runs).items():
    lines.append(f'  dataset {group.triplet}/{group.teacher}/{group.obs}/{group.policy_mode} '
                 f'steps={group.episode_steps}: sizes {sizes} '
                 f'(one Beam job simulates {max(sizes)} episodes)')
  total, data = study_cost(spec, runs)
  vision = any(r.config['obs'] == 'vision' for r in runs)
  lines.append(
      f'cost: {total.runs} runs, {total.online_episodes:,} online + {data.episodes:,} teacher '
      f'dataset episodes simulated, {total.eval_episodes + data.eval_episodes:,} evaluation '
      f'episodes, {total.env_steps + data.env_steps:,} env steps, {total.grad_steps:,} '
      f'grad steps')
  lines.append(
      f'estimated time: {total.seconds / 3600 + data.seconds / 3600:.2f} h of one core-worker'
      f' -> ~{total.hours(workers) + data.seconds / 3600 / max(1, workers):.2f} h with '
      f'--workers {workers} (per-step costs measured on 2 shared cores, state obs'
      + (f'; vision estimated as {_VISION_FACTOR:g}x state' if vision else '') + ')')
  return '\n'.join(lines)
