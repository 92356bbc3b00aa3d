"""Student evaluation: the deterministic (mode) action in a separate env.

Episodes use `envs.evaluate.eval_seed`, the seeds every teacher is evaluated
on, so student and teacher numbers are comparable.  Evaluation episodes are
counted in the ledger but are not part of the budget.  Always the sparse
(success) reward, whatever the method trains on.

Each result keeps its per-start outcomes (`outcomes`, one '1'/'0' per episode
from `first_index` on): the teacher's evaluation has them for the same starts,
so a study can compare a student with its teacher start by start
(learners.study.results.paired_difference), a far sharper test than two
overlapping intervals when both succeed on the same easy starts.
"""

import dataclasses
from typing import Optional

import numpy as np

from envs import evaluate as envs_evaluate
from envs import policy as policy_lib
from envs import rollout as rollout_lib
from envs import specs
from envs import stacking


@dataclasses.dataclass(frozen=True)
class EvalResult:
  episodes: int
  successes: int
  success_rate: float
  ci95: tuple
  mean_return: float
  grad_step: int
  first_index: int = 0  # Evaluation start of outcomes[0] (envs.evaluate.eval_seed).
  outcomes: str = ''  # '1' success / '0' failure per start, in order.

  def as_dict(self) -> dict:
    out = dataclasses.asdict(self)
    out['ci95'] = list(self.ci95)
    return out


class Evaluator:
  """Owns its env (never the actors'), so evaluation cannot disturb collection."""

  def __init__(self, triplet: str, obs_mode: str, episode_steps: int = specs.EPISODE_STEPS,
               image_size: int = specs.DEFAULT_IMAGE_SIZE):
    self._triplet = triplet
    self._env = stacking.make_env(triplet, obs_mode=obs_mode, episode_steps=episode_steps,
                                  image_size=image_size, reward='sparse')

  def run(self, policy: policy_lib.Policy, episodes: int, grad_step: int,
          first_index: int = 0) -> EvalResult:
    if episodes < 1:
      raise ValueError(f'episodes must be >= 1, got {episodes}.')
    outcomes, returns = [], []
    for i in range(first_index, first_index + episodes):
      traj = rollout_lib.rollout(self._env, policy, 'deterministic',
                                 envs_evaluate.eval_seed(self._triplet, i))
      outcomes.append(bool(traj.success))
      returns.append(traj.episode_return)
    wins = sum(outcomes)
    return EvalResult(episodes=episodes, successes=wins, success_rate=wins / episodes,
                      ci95=envs_evaluate.wilson_interval(wins, episodes),
                      mean_return=float(np.mean(returns)), grad_step=grad_step,
                      first_index=first_index,
                      outcomes=envs_evaluate.encode_outcomes(outcomes))

  def close(self) -> None:
    self._env.close()


def single_threaded_tf() -> None:
  """One TF thread per op and process: the initializer of evaluation worker pools.

  A small policy network gains nothing from TF's default pools (a thread per core
  in each op); one process per core with them took 1.46 s per triplet-2 episode, on
  2 cores, against 0.70-0.76 s in the study's runs, which use one thread per op.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)


def format_result(result: EvalResult, label: Optional[str] = None) -> str:
  lo, hi = result.ci95
  prefix = f'{label}: ' if label else ''
  return (f'{prefix}success {100 * result.success_rate:.1f}% [{100 * lo:.1f}, '
          f'{100 * hi:.1f}] over {result.episodes} episodes at grad step {result.grad_step}')
