"""Resume from the episode log: complete episodes are trained on, never thrown away.

On a real robot an episode costs minutes, so the RLDS episode log under a
run's workdir is the source of truth of what the robot did, not the last
checkpoint.  At the start of the online phase of a resumed run (or of a run
restarted after a kill before its first checkpoint):

  * every complete logged episode the ledger has not counted is read back,
    cut into n-step transitions by the converter the actors use, inserted
    into the replay and counted as online budget, in log order;
  * after each one, the grad steps its env steps call for are taken
    (catch-up), so the number of updates per env step is as if the run had
    never stopped;
  * if the learner checkpoint's replay checkpoint is gone (a kill during a
    checkpoint: Reverb keeps only its newest one, written before the learner
    checkpoint commits), the replay is first rebuilt from the episodes the
    ledger counted, and checked against the ledger's insert count.

An episode's index (hence its place in the budget) is recovered from its seed,
a function of (run seed, index) only.  An episode cut off mid-way is not in the
log; `pipelines.episode_log.cut_off_episodes` counts those.
"""

from typing import Iterator

import tensorflow as tf
import tensorflow_datasets as tfds

from learners.training import actors as actors_lib
from learners.training import config as config_lib
from learners.training import replay as replay_lib
from pipelines import transitions as transitions_lib

_MAX_EPISODE_STEPS = 1 << 16


def index_of_seed(triplet: str, seed: int, online_budget: int) -> dict:
  """{episode seed: online episode index} of a run's online episodes."""
  return {actors_lib.student_episode_seed(triplet, seed, i): i for i in range(online_budget)}


def logged_episodes(segments, index_of: dict) -> Iterator[tuple[int, dict]]:
  """(index, RLDS episode) of each first copy of an episode in the log, in log order.

  Steps stay an undecoded nested dataset until asked for.
  """
  seen = set()
  for segment in segments:
    episodes = tfds.builder_from_directory(segment).as_dataset(split='train',
                                                              shuffle_files=False)
    for episode in episodes:
      seed = int(episode['episode_seed'])
      if seed not in index_of:
        raise config_lib.TrainingError(
            f'{segment} holds an episode with seed {seed}, which is none of this run\'s '
            f'{len(index_of)} online episodes: the episode log of another run?')
      index = index_of[seed]
      # Runs written before logs were ingested collected a discarded episode again.
      if index not in seen:
        seen.add(index)
        yield index, episode


def episode_items(episode: dict, n_step: int, gamma: float,
                  critic_reward: str = 'sparse') -> dict:
  """The n-step transitions of a logged episode, as numpy (what its actor inserted)."""
  steps = next(iter(episode['steps'].batch(_MAX_EPISODE_STEPS)))
  items = transitions_lib.episode_transitions(steps, n_step, gamma, critic_reward)
  return tf.nest.map_structure(lambda t: t.numpy(), items)


def _rebuild_replay(run, writer: replay_lib.TransitionWriter, index_of: dict) -> None:
  ledger, config = run.ledger, run.config
  inserted = 0
  for index, episode in logged_episodes(run.parts.log_segments, index_of):
    if ledger.is_counted(index):
      inserted += writer.insert(
          episode_items(episode, config.n_step, config.gamma, config.critic_reward))
  if inserted != ledger.replay_inserts:
    raise config_lib.TrainingError(
        f'Rebuilding the replay from the episode log gave {inserted} transitions, the '
        f'ledger counts {ledger.replay_inserts}: the log under {config.workdir} misses '
        'episodes the checkpoint counted. Refusing to resume.')
  run.log(f'Rebuilt the replay from the episode log: {inserted} transitions of '
          f'{ledger.online_episodes} counted episodes.')


def ingest(run) -> int:
  """Counts and trains on the complete logged episodes not counted yet; returns how many."""
  parts, ledger, config = run.parts, run.ledger, run.config
  if not parts.log_segments:
    return 0
  index_of = index_of_seed(config.triplet, config.seed, ledger.online_budget)
  writer = replay_lib.TransitionWriter(parts.replay.address, config.replay_timeout_ms)
  ingested = 0
  due = ledger.grad_steps
  try:
    if parts.rebuild_replay:
      _rebuild_replay(run, writer, index_of)
    for index, episode in logged_episodes(parts.log_segments, index_of):
      if ledger.is_counted(index):
        continue
      items = episode_items(episode, config.n_step, config.gamma, config.critic_reward)
      steps = int(items['action'].shape[0])
      result = actors_lib.EpisodeResult(
          index=index, seed=int(episode['episode_seed']), steps=steps,
          success=bool(episode['success']),
          episode_return=float(episode['episode_return']), items=writer.insert(items))
      due = run.account_episode(result, due)
      run.grad_steps_until(due)
      ingested += 1
  finally:
    writer.close()
  if ingested:
    run.log(f'Ingested {ingested} complete episodes logged after the last checkpoint '
            f'(now {ledger.spent}/{ledger.budget} episodes spent, {ledger.grad_steps} '
            'grad steps).')
  return ingested

