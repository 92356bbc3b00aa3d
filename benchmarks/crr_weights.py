"""Does CRR's weighting favour the teacher episodes that end stacked?

  python benchmarks/crr_weights.py RUN_DIR [--episodes 500] [--samples 4]

Restores a CRR run (any run with the `advantage` weighting) at its latest
checkpoint and scores every transition of its own teacher dataset as the
policy loss does: A = Q(s, a) - mean_m Q(s, a'_m) with M = `--samples` draws
a'_m of the trained policy, and w = min(exp(A / eta), clip) at the run's eta.
(The loss scores with the target critic; this uses the online one, which the
target trails by at most `target_update_period` steps.)  Offline CRR can only
beat its teacher by weighting the data towards better behaviour than the
teacher's average, and the one label of "better" a dataset holds is whether
the episode ended stacked.  So this prints one JSON line: the share of the
transitions that come from succeeded episodes, unweighted (what BC trains on)
and weighted (what CRR trains on); the mean weight and advantage on either
side; the share of either side's transitions that the filter all but drops
(w < 0.1) or boosts (w > 2); the mean advantage over each eighth of the
episodes on either side, and the median step at which the succeeded ones first
stack (where in an episode the critic tells them apart); the share of
succeeded-episode transitions among the top 10 % of weights; and the AUC of
an episode's mean advantage as a score for its success (0.5: the critic does
not tell them apart).  The policy draws are seeded by the episode index, so a
rerun prints the same line.  State runs only.
"""

import argparse
import json
import os
import sys
from typing import Optional

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from envs import specs  # pylint: disable=g-import-not-at-top
from learners import losses  # pylint: disable=g-import-not-at-top
from learners.training import recovery  # pylint: disable=g-import-not-at-top
from learners.training import setup  # pylint: disable=g-import-not-at-top
from pipelines import teacher_dataset  # pylint: disable=g-import-not-at-top


def episode_weights(learner, observation: dict, action: np.ndarray, samples: int,
                    eta: float, clip: float, rng: np.random.Generator):
  """(w, A) [T] of one episode's transitions, as CRR's `advantage` weighting."""
  dist = learner.distribution(observation)
  drawn = np.stack([dist.sample(rng) for _ in range(samples)])  # [M, T, A]
  value = np.mean([learner.q_values(observation, a) for a in drawn], axis=0)
  weights, adv = losses.crr_weights(learner.q_values(observation, action), value, eta, clip)
  return np.asarray(weights), np.asarray(adv)


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
  """P(score of a positive > score of a negative), ties half (Mann-Whitney)."""
  pos, neg = scores[positive], scores[~positive]
  if not pos.size or not neg.size:
    return float('nan')
  greater = (pos[:, None] > neg[None, :]).mean()
  ties = (pos[:, None] == neg[None, :]).mean()
  return float(greater + 0.5 * ties)


def by_eighth(advantages: list, success: np.ndarray, flag: bool) -> Optional[list]:
  """Mean advantage over each eighth of the episodes that end `flag` (succeeded or
  not): where in an episode the critic tells the outcomes apart."""
  parts = min(8, min(len(a) for a in advantages))  # Fewer for episodes under 8 steps.
  rows = [[part.mean() for part in np.array_split(a, parts)]
          for a, s in zip(advantages, success) if s == flag]
  return [round(float(x), 4) for x in np.mean(rows, axis=0)] if rows else None


def summarise(weights: list, advantages: list, success: np.ndarray,
              first_stacked: Optional[list] = None) -> dict:
  """The JSON line's figures from per-episode weights/advantages and success flags
  (and each episode's first rewarded step, None where it never stacks)."""
  won = np.concatenate([np.full(len(w), s) for w, s in zip(weights, success)])
  stacked = [t for t, s in zip(first_stacked or [], success) if s and t is not None]
  w, adv = np.concatenate(weights), np.concatenate(advantages)
  top = w >= np.quantile(w, 0.9)
  side = lambda x, flag: round(float(x[won == flag].mean()), 4) if np.any(won == flag) else None
  return {
      'episodes': len(weights), 'succeeded_episodes': int(success.sum()),
      'transitions': int(w.size),
      'succeeded_share_unweighted': round(float(won.mean()), 4),
      'succeeded_share_weighted': round(float(w[won].sum() / w.sum()), 4),
      'succeeded_share_top10': round(float(won[top].mean()), 4),
      'mean_weight': {'succeeded': side(w, True), 'failed': side(w, False)},
      'mean_advantage': {'succeeded': side(adv, True), 'failed': side(adv, False)},
      # How much of each side the filter all but drops, and how much it boosts.
      'dropped_share': {'succeeded': side(w < 0.1, True), 'failed': side(w < 0.1, False)},
      'boosted_share': {'succeeded': side(w > 2.0, True), 'failed': side(w > 2.0, False)},
      'mean_advantage_by_eighth': {'succeeded': by_eighth(advantages, success, True),
                                   'failed': by_eighth(advantages, success, False)},
      'first_stacked_step_median': float(np.median(stacked)) if stacked else None,  # Succeeded.
      'weight_range': [round(float(w.min()), 3), round(float(w.max()), 3)],
      'episode_auc': round(auc(np.array([a.mean() for a in advantages]), success), 4),
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('run_dir')
  parser.add_argument('--episodes', type=int, default=500,
                      help='the first N episodes of the run\'s dataset')
  parser.add_argument('--samples', type=int, default=None,
                      help="policy draws per state (default: the run's advantage_samples)")
  args = parser.parse_args(argv)
  if args.episodes < 1 or (args.samples is not None and args.samples < 1):
    parser.error('--episodes and --samples must be >= 1')
  try:
    config, method, learner = setup.restore_run(args.run_dir)
  except setup.TrainingError as e:
    parser.error(str(e))
  if config.obs != 'state' or method.weighting != 'advantage':
    parser.error(f'crr_weights reads state runs of the advantage weighting; {args.run_dir} '
                 f'is {method.name} ({method.weighting}) on {config.obs}')
  samples = args.samples or method.advantage_samples
  eta = float(method.eta(learner.num_steps))
  keys = specs.STUDENT_KEYS[config.obs]
  try:  # The run's dataset as it is: a diagnostic builds nothing.
    episodes = teacher_dataset.load_teacher_dataset(setup.teacher_dataset_name(config),
                                                    os.path.expanduser(config.data_dir))
  except teacher_dataset.TeacherDatasetError as e:
    parser.error(str(e))
  weights, advantages, success, first_stacked = [], [], [], []
  for i, episode in enumerate(episodes.take(args.episodes)):
    items = recovery.episode_items(episode, n_step=1, gamma=config.gamma)
    w, adv = episode_weights(learner, {k: items['observation'][k] for k in keys},
                             items['action'], samples, eta, method.weight_clip,
                             np.random.default_rng(i))
    weights.append(w)
    advantages.append(adv)
    success.append(bool(episode['success']))
    rewarded = np.flatnonzero(items['reward'] > 0)  # Sparse: > 0 while stacked.
    first_stacked.append(int(rewarded[0]) if rewarded.size else None)
  print(json.dumps({'figure': 'crr_weights', 'run': os.path.basename(args.run_dir.rstrip('/')),
                    'method': method.name, 'grad_step': learner.num_steps, 'eta': eta,
                    'samples': samples,
                    **summarise(weights, advantages, np.asarray(success), first_stacked)}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
