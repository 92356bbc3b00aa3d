"""The parts of one run, each from a small named builder (used by `loop.train`).

Order matters only where it says so: the workdir is checked before any work,
the learner is restored before the ledger is trusted, the episode log is
repaired and its cut-off episodes counted before any actor writes to it (its
complete episodes are ingested by `recovery` when the online phase starts),
and the offline stream starts at the item the restored ledger says it reached.
"""

import dataclasses
import os
from typing import Callable, Optional

import tensorflow as tf

from envs import teachers as teachers_lib
from learners import checkpointing
from learners import learner as learner_lib
from learners import methods as methods_lib
from learners import networks
from learners.training import actors as actors_lib
from learners.training import config as config_lib
from learners.training import distributed
from learners.training import evaluation
from learners.training import ledger as ledger_lib
from learners.training import mixer as mixer_lib
from learners.training import replay as replay_lib
from learners.training import workdir as workdir_lib
from pipelines import episode_log

TrainingError = config_lib.TrainingError


@dataclasses.dataclass
class Parts:
  """Everything a run's loops drive; `None` where the method does not need it."""
  method: methods_lib.Method
  pretrain_steps: int
  resuming: bool
  learner: learner_lib.Learner
  ledger: ledger_lib.Ledger
  mixer: mixer_lib.Mixer
  evaluator: evaluation.Evaluator
  replay: Optional[replay_lib.ReplayServer] = None
  actor: Optional[actors_lib.Actor] = None  # The synchronous loop's actor.
  pool: Optional[distributed.ActorPool] = None  # num_actors > 1 (or a RayActorPool).
  # Episode log segments of earlier processes of this run (`recovery.ingest`).
  log_segments: list = dataclasses.field(default_factory=list)
  # The replay checkpoint of the learner's checkpoint is gone: rebuild it from the log.
  rebuild_replay: bool = False


# --- workdir, dataset, teacher, learner ---------------------------------------


def prepare_workdir(config: config_lib.RunConfig) -> bool:
  """Checks (`config.check_workdir`), then creates the workdir; True if the run resumes."""
  resuming = config_lib.check_workdir(config)
  os.makedirs(config.workdir, exist_ok=True)
  return resuming


def teacher_dataset_name(config: config_lib.RunConfig) -> str:
  from pipelines import teacher_config  # pylint: disable=g-import-not-at-top
  return teacher_config.config_name(config.triplet, config.teacher, config.obs,
                                    config.offline_episodes,
                                    policy_mode=config.teacher_policy_mode,
                                    episode_steps=config.episode_steps,
                                    image_size=config.image_size)


def load_or_build_dataset(config: config_lib.RunConfig, log=print) -> tf.data.Dataset:
  """The nested teacher dataset of size `offline_episodes` (built if missing)."""
  from pipelines import build_teacher_datasets  # pylint: disable=g-import-not-at-top
  from pipelines import teacher_dataset  # pylint: disable=g-import-not-at-top
  data_dir = os.path.expanduser(config.data_dir)
  name = teacher_dataset_name(config)
  try:
    return teacher_dataset.load_teacher_dataset(name, data_dir)
  except teacher_dataset.TeacherDatasetError as e:
    if not config.build_dataset:
      raise
    log(f'Teacher dataset {name} is not usable in {data_dir}:\n  {e}\nBuilding it now '
        f'with the Beam job ({config.build_workers} workers); this simulates '
        f'{config.offline_episodes} teacher episodes.')
  job = build_teacher_datasets.JobConfig(
      triplets=[config.triplet], teachers=[config.teacher], obs_modes=[config.obs],
      sizes=[config.offline_episodes], data_dir=data_dir,
      policy_mode=config.teacher_policy_mode, episode_steps=config.episode_steps,
      image_size=config.image_size, overwrite=True)
  build_teacher_datasets.run(job, build_teacher_datasets.local_beam_options(
      [], config.build_workers))
  return teacher_dataset.load_teacher_dataset(name, data_dir)


def record_dataset(config: config_lib.RunConfig) -> None:
  """Writes the teacher dataset's manifest (each shard's sha256) into the workdir.

  The config names a dataset, not its bytes: two runs of one config on datasets
  built on different machines can then be told apart, or shown to share data.
  A resume on other bytes than the run started with is refused: the offline
  stream would silently change under it.
  """
  from pipelines import teacher_dataset  # pylint: disable=g-import-not-at-top
  name = teacher_dataset_name(config)
  manifest = teacher_dataset.read_manifest(name, os.path.expanduser(config.data_dir))
  path = os.path.join(config.workdir, workdir_lib.DATASET_FILE)
  if not os.path.exists(path):
    workdir_lib.write_json_atomic(path, manifest)
  elif workdir_lib.read_json(path) != manifest:
    raise TrainingError(
        f'Teacher dataset {name} in {config.data_dir} is not the one this run started '
        f'on: its manifest differs from {path} (shard sha256s). Put the original '
        'dataset back (same seed and config rebuild the same bytes) or start a new '
        'workdir.')


def filter_offline(config: config_lib.RunConfig, episodes: tf.data.Dataset,
                   log=print) -> tuple[tf.data.Dataset, int]:
  """The teacher episodes the learner trains on (`offline_filter`), and how many."""
  if config.offline_filter == 'all':
    return episodes, config.offline_episodes
  kept = episodes.filter(lambda episode: episode['success'])
  # One pass at start-up: the offline stream's epoch (and resume) arithmetic needs
  # the exact number of kept episodes.
  count = sum(1 for flag in episodes.map(lambda episode: episode['success'])
              .as_numpy_iterator() if flag)
  if not count:
    raise TrainingError(f'offline_filter successful: none of the {config.offline_episodes} '
                        f'teacher episodes of {teacher_dataset_name(config)} succeeded, so '
                        'there is nothing to train on. Use a larger dataset or '
                        '--offline_filter all.')
  log(f'offline_filter successful: training on the {count} successful teacher episodes of '
      f'{config.offline_episodes} (the budget counts all {config.offline_episodes}).')
  return kept, count


def network_config(config: config_lib.RunConfig) -> networks.NetworkConfig:
  return networks.NetworkConfig(encoder_size=config.network_size,
                                policy_torso=(config.network_size,),
                                critic_torso=(config.network_size,),
                                min_stddev=config.policy_min_stddev)


def make_learner(config: config_lib.RunConfig,
                 method: methods_lib.Method) -> learner_lib.Learner:
  teacher = (teachers_lib.make_teacher(config.teacher, config.triplet)
             if method.uses_teacher else None)
  try:
    return learner_lib.Learner(
        method, learner_lib.LearnerConfig(obs_mode=config.obs, image_size=config.image_size,
                                          nets=network_config(config), seed=config.seed,
                                          policy_ema=config.policy_ema),
        teacher=teacher, workdir=config.workdir)
  except checkpointing.CheckpointError as e:  # Its state file is read at construction.
    raise TrainingError(str(e)) from e


# --- ledger and resume ----------------------------------------------------------


def restore_run(run_dir: str):
  """(config, method, learner) of a run workdir, the learner at its latest checkpoint.

  For the tools that read a trained run (q_tracking, benchmarks/action_gap.py,
  benchmarks/q_select.py); a TrainingError names what is missing.
  """
  config_path = os.path.join(run_dir, workdir_lib.CONFIG_FILE)
  if not os.path.exists(config_path):
    raise TrainingError(f'{config_path} does not exist: is {run_dir} a run workdir?')
  config = config_lib.saved_config(run_dir)
  method = config_lib.resolve_method(config)
  learner = make_learner(config, method)
  if not learner.restore():
    raise TrainingError(f'no learner checkpoint in {run_dir}.')
  return config, method, learner


def restore_ledger(config: config_lib.RunConfig, online_budget: int,
                   learner: learner_lib.Learner, resuming: bool,
                   log=print) -> tuple[ledger_lib.Ledger, Optional[str]]:
  """A fresh ledger, or the one of the learner's checkpoint; and its replay checkpoint."""
  ledger = ledger_lib.Ledger(budget=config.offline_episodes + online_budget,
                             offline_episodes=config.offline_episodes)
  replay_checkpoint = None
  if resuming:
    try:
      restored = learner.restore()
    except checkpointing.CheckpointError as e:
      raise TrainingError(str(e)) from e
    if not restored:
      raise TrainingError(f'No learner checkpoint to resume in {config.workdir}.')
    step = learner.num_steps
    try:
      state = workdir_lib.read_state(config.workdir, step)
    except ValueError as e:  # json's errors are ValueErrors.
      raise TrainingError(f'State snapshot {workdir_lib.state_path(config.workdir, step)} '
                          f'of learner checkpoint {step} is unreadable ({e}); refusing to '
                          'resume.') from e
    if state is None:
      raise TrainingError(f'Learner checkpoint at step {step} has no state snapshot '
                          f'{workdir_lib.state_path(config.workdir, step)}; the checkpoint '
                          'is incomplete.')
    ledger = ledger_lib.Ledger(**state['ledger'])
    ledger.resumes += 1
    replay_checkpoint = state.get('replay_checkpoint')
    log(f'Resuming {config.workdir} at grad step {step}: '
        f'{ledger.spent}/{ledger.budget} episodes spent.')
  if ledger.grad_steps != learner.num_steps:
    raise TrainingError(f'Ledger grad steps {ledger.grad_steps} != learner steps '
                        f'{learner.num_steps}.')
  return ledger, replay_checkpoint


# --- replay and actors ----------------------------------------------------------


def make_replay(config: config_lib.RunConfig, learner: learner_lib.Learner,
                replay_checkpoint: Optional[str]) -> replay_lib.ReplayServer:
  workdir_lib.prune_replay_checkpoints(config.workdir, keep=replay_checkpoint)
  extra_tables = ()
  if config.num_actors > 1:
    extra_tables = (distributed.variables_table(
        distributed.variables_signature(learner.policy.variables)),)
  return replay_lib.ReplayServer(
      replay_lib.ReplayConfig(max_size=config.max_replay_size, min_size=config.min_replay_size,
                              rate_limiter='min_size', timeout_ms=config.replay_timeout_ms),
      config.obs, config.image_size, burst=config.episode_steps,
      checkpoint_dir=os.path.join(config.workdir, workdir_lib.REPLAY_DIR),
      extra_tables=extra_tables)


def actor_config(config: config_lib.RunConfig,
                 method: methods_lib.Method) -> actors_lib.ActorConfig:
  return actors_lib.ActorConfig(
      triplet=config.triplet, obs_mode=config.obs, reward=method.reward,
      episode_steps=config.episode_steps, image_size=config.image_size,
      n_step=config.n_step, gamma=config.gamma, critic_reward=config.critic_reward,
      seed=config.seed, method=method.key,
      teacher=config.teacher if method.uses_teacher else '',
      run_id=os.path.basename(os.path.abspath(config.workdir)))


def make_actors(config: config_lib.RunConfig, method: methods_lib.Method,
                replay: replay_lib.ReplayServer, learner: learner_lib.Learner, log=print):
  """(synchronous actor or None, actor pool or None, log segments of earlier segments)."""
  log_root = os.path.join(config.workdir, workdir_lib.EPISODE_LOG_DIR)
  if config.num_actors == 1:
    writer = replay_lib.TransitionWriter(replay.address, config.replay_timeout_ms)
    actor = actors_lib.Actor(
        actor_config(config, method), actors_lib.StudentPolicy(learner.actor_distribution),
        log_root, writer)
    return actor, None, actor.previous_log_segments
  # Repaired and counted here, before any actor process writes to the log.
  previous_segments = episode_log.recover_segments(log_root)
  pool_config = distributed.PoolConfig(
      num_actors=config.num_actors, actor=actor_config(config, method),
      address=replay.address, log_root=log_root, nets=network_config(config),
      timeout_ms=config.replay_timeout_ms,
      variable_update_period=config.variable_update_period)
  if config.actor_engine == 'ray':
    from learners.training import ray_actors  # pylint: disable=g-import-not-at-top
    pool = ray_actors.RayActorPool(pool_config, config.ray_address,
                                   config.max_actor_restarts, log)
  else:
    pool = distributed.ActorPool(pool_config, log)
  return None, pool, previous_segments


def count_cut_off_episodes(config: config_lib.RunConfig, ledger: ledger_lib.Ledger,
                           log=print) -> None:
  """Episodes a crash or stop cut off mid-way: spent, but not in the log."""
  cut_off = episode_log.cut_off_episodes(
      os.path.join(config.workdir, workdir_lib.EPISODE_LOG_DIR))
  ledger.discarded_episodes = len(cut_off)
  if cut_off:
    log(f'{len(cut_off)} online episodes were cut off mid-way by a crash or stop (in '
        + ', '.join(os.path.basename(s) for s, _ in cut_off)
        + '); they are not in the log and are not counted in the budget.')


def replay_checkpoint_missing(config: config_lib.RunConfig,
                              replay_checkpoint: Optional[str]) -> bool:
  """Whether the learner checkpoint's replay checkpoint is gone from disk."""
  if not replay_checkpoint:
    return False
  name = os.path.basename(os.path.normpath(replay_checkpoint))
  return not os.path.isdir(os.path.join(config.workdir, workdir_lib.REPLAY_DIR, name))


def check_restored_replay(config: config_lib.RunConfig, replay: replay_lib.ReplayServer,
                          ledger: ledger_lib.Ledger, replay_checkpoint: Optional[str]) -> None:
  replay_size = replay.size()
  if replay_size != min(ledger.replay_inserts, config.max_replay_size):
    raise TrainingError(f'Restored replay checkpoint {replay_checkpoint} holds {replay_size} '
                        f'items, the learner checkpoint\'s ledger expects '
                        f'{ledger.replay_inserts}; refusing to resume from a mismatched pair.')


# --- the learner's input ----------------------------------------------------------


def make_mixer(config: config_lib.RunConfig, episodes: Optional[tf.data.Dataset],
               replay: Optional[replay_lib.ReplayServer], ledger: ledger_lib.Ledger,
               offline_fraction: Callable[[int], float],
               train_episodes: int) -> mixer_lib.Mixer:
  """Offline stream from the ledger's item on, online batches from the replay.

  `train_episodes`: how many of the teacher episodes `episodes` holds (after
  `offline_filter`).
  """
  online = None
  if replay is not None:
    # A generator: sampling starts only once the learner asks for replay items.
    online = mixer_lib.ItemBuffer(replay_lib.numpy_batches(
        replay.address, config.batch_size, config.replay_timeout_ms))
  offline = None
  if episodes is not None:
    start = ledger.offline_items
    expected = mixer_lib.offline_items_before(ledger.grad_steps, offline_fraction,
                                              config.batch_size)
    if start != expected:
      raise TrainingError(f'Ledger offline items {start} != {expected} implied by the '
                          'schedule at this step.')
    offline = mixer_lib.ItemBuffer(mixer_lib.offline_chunks(
        episodes, train_episodes * config.episode_steps, config.seed,
        start_item=start, config=mixer_lib.OfflineStreamConfig(
            n_step=config.n_step, gamma=config.gamma, critic_reward=config.critic_reward,
            item_shuffle=config.offline_shuffle)))
  return mixer_lib.Mixer(config.batch_size, offline_fraction, offline, online)


# --- all of it ----------------------------------------------------------------------


def build(config: config_lib.RunConfig, log=print) -> Parts:
  """Checks, then builds every part of the run (restoring them on a resume)."""
  method, online_budget = config_lib.check_config(config)
  pretrain_steps = config_lib.pretrain_steps(config, method)
  resuming = prepare_workdir(config)
  workdir_lib.write_json_atomic(
      os.path.join(config.workdir, workdir_lib.CONFIG_FILE),
      dict(config.to_json(), method_row=repr(method), pretrain_steps_resolved=pretrain_steps))
  episodes, train_episodes = None, 0
  if config.offline_episodes:
    episodes, train_episodes = filter_offline(config, load_or_build_dataset(config, log), log)
    record_dataset(config)
  learner = make_learner(config, method)
  ledger, replay_checkpoint = restore_ledger(config, online_budget, learner, resuming, log)

  def offline_fraction(step: int) -> float:
    # Before the online phase, batches are all offline (AWAC's pre-training).
    return 1.0 if step < pretrain_steps else method.offline_fraction(step)

  replay = actor = pool = None
  log_segments, rebuild_replay = [], False
  if method.is_online:
    rebuild_replay = resuming and replay_checkpoint_missing(config, replay_checkpoint)
    if rebuild_replay:
      log(f'Replay checkpoint {replay_checkpoint} of the learner checkpoint is gone (killed '
          'during a checkpoint?); the replay is rebuilt from the episode log.')
    replay = make_replay(config, learner, None if rebuild_replay else replay_checkpoint)
    actor, pool, log_segments = make_actors(config, method, replay, learner, log)
    # A resume, or a start killed before its first checkpoint.
    count_cut_off_episodes(config, ledger, log)
    if log_segments and not resuming:
      ledger.resumes += 1  # A restart that ingests a log is a resume without a checkpoint.
    if resuming and not rebuild_replay:
      check_restored_replay(config, replay, ledger, replay_checkpoint)
  mixer = make_mixer(config, episodes, replay, ledger, offline_fraction, train_episodes)
  evaluator = evaluation.Evaluator(config.triplet, config.obs, config.episode_steps,
                                   config.image_size)
  return Parts(method=method, pretrain_steps=pretrain_steps, resuming=resuming,
               learner=learner, ledger=ledger, mixer=mixer, evaluator=evaluator,
               replay=replay, actor=actor, pool=pool, log_segments=log_segments,
               rebuild_replay=rebuild_replay)
