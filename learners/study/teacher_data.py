"""The teacher data behind a study's offline cells, from each dataset's own card.

A student that clones its data learns the policy that collected it: the
teacher's stochastic policy, not the deterministic mode the teacher is
evaluated with, and the two succeed at different rates (the laptop study: 14.6 %
of 500 dataset episodes end stacked, the deterministic teacher 21.5 %).  The
report sets the data's rate beside the teacher's and the students'.

The numbers are the Beam job's data card (`pipelines.teacher_dataset.read_card`:
success = the stacking condition holds at the last step, the evaluations' test).
"""

import os
from typing import Sequence

from learners.study import results as study_results
from learners.study.results import pct
from learners.training import workdir as run_files


def dataset_cards(study: study_results.Study) -> list:
  """One row per teacher dataset the study's finished runs trained on, whose card is found.

  Each run's `config.json` names its data dir; a dataset moved or deleted since
  is left out.
  """
  # TFDS only once a report asks for the cards: importing the study layer stays light.
  from pipelines import teacher_config  # pylint: disable=g-import-not-at-top
  from pipelines import teacher_dataset  # pylint: disable=g-import-not-at-top
  cards, tried = {}, set()
  for cell in study.cells:
    if not cell.offline_episodes:
      continue
    for run_dir in cell.run_dirs:
      config_path = os.path.join(run_dir, run_files.CONFIG_FILE)
      if not os.path.exists(config_path):
        continue
      config = run_files.read_json(config_path)
      name = teacher_config.config_name(config['triplet'], config['teacher'], config['obs'],
                                        config['offline_episodes'],
                                        # Runs from before the setting collected stochastically.
                                        policy_mode=config.get(
                                            'teacher_policy_mode',
                                            teacher_config.DEFAULT_POLICY_MODE),
                                        episode_steps=config['episode_steps'],
                                        image_size=config['image_size'])
      data_dir = os.path.expanduser(config['data_dir'])
      if (name, data_dir) in tried:
        continue
      tried.add((name, data_dir))
      try:
        card = teacher_dataset.read_card(name, data_dir)
      except teacher_dataset.TeacherDatasetError:
        continue
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
  lines = ['The datasets the offline cells trained on, from their cards. Their success '
           'rate, not the deterministic teacher\'s above, is what cloning them aims at; '
           'a *stochastic* dataset samples the teacher\'s actions, a *deterministic* one '
           'takes its mode, as the teacher\'s evaluation does (`teacher_policy_mode`). '
           'The datasets are nested: the first k episodes of the largest are the '
           'k-episode one.', '',
           '| dataset | episodes | policy | episodes ending stacked | mean return |',
           '|---|---|---|---|---|']
  for c in cards:
    lines.append(f'| {c["dataset"]} | {c["episodes"]} | {c["policy_mode"]} | '
                 f'{pct(c["success_rate"])} ({round(c["success_rate"] * c["episodes"])}) | '
                 f'{c["mean_return"]:.1f} |')
  return '\n'.join(lines)
