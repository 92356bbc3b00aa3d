"""The teacher data behind a study's offline cells, from each dataset's own card.

A student that clones its data learns the policy that collected it: the
teacher's stochastic policy, not the deterministic mode the teacher is
evaluated with, and the two succeed at different rates (the laptop study: 14.6 %
of 500 dataset episodes end stacked, the deterministic teacher 21.5 %).  The
report sets the data's rate beside the teacher's and the students'.

The numbers are the Beam job's data card (`metadata.json` of the TFDS dataset:
success = the stacking condition holds at the last step, the evaluations' test).
"""

import os
from typing import Sequence

from learners.study import results as study_results
from learners.study.results import pct
from learners.training import workdir as run_files
from pipelines import rlds_spec
from pipelines import teacher_config

CARD_FILE = 'metadata.json'


def _card_path(config: dict) -> tuple[str, str]:
  """(dataset name, path of its card) of the teacher dataset a run trained on."""
  name = teacher_config.config_name(config['triplet'], config['teacher'], config['obs'],
                                    config['offline_episodes'],
                                    episode_steps=config['episode_steps'],
                                    image_size=config['image_size'])
  return name, os.path.join(os.path.expanduser(config['data_dir']), rlds_spec.DATASET_NAME,
                            name, rlds_spec.VERSION, CARD_FILE)


def dataset_cards(study: study_results.Study) -> list:
  """One row per teacher dataset the study's finished runs trained on, whose card is found.

  Each run's `config.json` names its data dir; a dataset moved or deleted since
  is left out.
  """
  cards = {}
  for cell in study.cells:
    if not cell.offline_episodes:
      continue
    for run_dir in cell.run_dirs:
      config_path = os.path.join(run_dir, run_files.CONFIG_FILE)
      if not os.path.exists(config_path):
        continue
      name, path = _card_path(run_files.read_json(config_path))
      if name in cards or not os.path.exists(path):
        continue
      card = run_files.read_json(path)
      cards[name] = {'dataset': name, 'triplet': cell.triplet, 'teacher': cell.teacher,
                     'obs': cell.obs, 'episodes': int(card['size']),
                     'policy_mode': card['policy_mode'],
                     'success_rate': float(card['success_rate']),
                     'mean_return': float(card['mean_return'])}
  return sorted(cards.values(), key=lambda c: (c['triplet'], c['teacher'], c['obs'],
                                               c['episodes']))


def format_cards(cards: Sequence[dict]) -> str:
  if not cards:
    return 'No teacher dataset card found (moved or deleted since the runs?).'
  lines = ['The datasets the offline cells trained on, from their cards: collected with '
           'the teacher\'s *stochastic* policy, so their success rate, not the '
           'deterministic teacher\'s above, is what cloning them aims at. The datasets '
           'are nested: the first k episodes of the largest are the k-episode one.', '',
           '| dataset | episodes | policy | episodes ending stacked | mean return |',
           '|---|---|---|---|---|']
  for c in cards:
    lines.append(f'| {c["dataset"]} | {c["episodes"]} | {c["policy_mode"]} | '
                 f'{pct(c["success_rate"])} ({round(c["success_rate"] * c["episodes"])}) | '
                 f'{c["mean_return"]:.1f} |')
  return '\n'.join(lines)
