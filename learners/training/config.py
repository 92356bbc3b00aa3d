"""A run's config and every check that needs no work (no TensorFlow here).

Each `RunConfig` field is tagged once, in its metadata, as either

  * identity: it changes what the run computes or reports (method, data,
    sizes, seeds, evaluation), so `--resume` refuses a different value and the
    study runner names a run by a hash of these; or
  * operational: where and how the run executes (paths, timeouts, checkpoint
    cadence, logging), free to change between a run and its resume.

`IDENTITY_FIELDS` / `OPERATIONAL_FIELDS` derive from the tags; nothing else
lists fields.  The launcher's `--help` text lives in the same metadata.
"""

import dataclasses
import os
from typing import Any, Optional, get_args

from envs import policy as policy_lib
from envs import specs
from envs import teachers as teachers_lib
from envs import triplets as triplets_lib
from learners import methods as methods_lib
from learners.training import ledger as ledger_lib
from learners.training import workdir as workdir_lib


class TrainingError(RuntimeError):
  """A run stopped: NaN/Inf metric, replay or actor failure. Names the checkpoint."""


class Stopped(TrainingError):
  """SIGTERM/SIGINT: the run wrote a final checkpoint and stopped; `--resume` continues."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum

  @property
  def exit_code(self) -> int:
    return 128 + self.signum  # The shell's convention: 143 for SIGTERM, 130 for SIGINT.


ACTOR_ENGINES = ('processes', 'ray')
OFFLINE_FILTERS = ('all', 'successful')


def _identity(default: Any, help: Optional[str] = None):  # pylint: disable=redefined-builtin
  return dataclasses.field(default=default, metadata=dict(identity=True, help=help))


def _operational(default: Any, help: Optional[str] = None):  # pylint: disable=redefined-builtin
  return dataclasses.field(default=default, metadata=dict(identity=False, help=help))


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Every knob of a run; `config.json` in the workdir is this, resolved."""
  method: str = _identity('R-CRR', ', '.join(methods_lib.METHOD_KEYS))
  triplet: str = _identity('triplet1')
  teacher: str = _identity('generalization')
  obs: str = _identity('state')
  budget: Optional[int] = _identity(
      None, 'episodes on the target task: offline_episodes + online episodes '
      '(offline-only methods: omit, or = offline_episodes)')
  offline_episodes: int = _identity(0, 'teacher dataset size (0 for online-only methods)')
  workdir: str = _operational('runs/default')
  data_dir: str = _operational('~/tensorflow_datasets', 'TFDS data dir of the teacher datasets')
  build_dataset: bool = _operational(
      True, 'build a missing teacher dataset with the Beam job instead of failing')
  build_workers: int = _operational(2)
  grad_steps: int = _identity(1_000_000, 'gradient steps of offline-only methods')
  offline_pretrain_steps: Optional[int] = _identity(
      None, 'offline-only steps before collection (default: from the method schedule, '
      'AWAC 500000)')
  env_steps_per_grad_step: int = _identity(5, 'fixed update rate of online methods')
  grad_steps_per_update: int = _identity(
      1, 'gradient steps each update of online methods runs (every env_steps_per_grad_step '
      'env steps); > 1 trains more than once per env step, e.g. to give an online run an '
      'offline run\'s gradient steps at a small budget')
  num_actors: int = _identity(
      1, '1: synchronous loop in this process; N > 1: N actor processes feeding the '
      'Reverb server over gRPC (docs/launch.md)')
  # Where the actors run changes no result (the same episodes, the same
  # update rule), so it is not part of a run's identity.
  actor_engine: str = _operational(
      'processes', "num_actors > 1: 'processes' (spawned on this machine) or 'ray' (Ray "
      'actors on any node of a cluster; docs/launch.md)')
  ray_address: Optional[str] = _operational(
      None, "actor_engine ray: the cluster (HOST:PORT or 'auto'); default: $RAY_ADDRESS, else "
      'a local cluster on this machine')
  max_actor_restarts: int = _operational(
      3, 'actor_engine ray: dead actors replaced (each gives its episode back) before the '
      'run fails')
  variable_update_period: int = _identity(
      100, "env steps between an actor's fetches of the policy weights (num_actors > 1)")
  batch_size: int = _identity(64)
  # Offline phases, and the learner of several actors, run up to this many grad
  # steps per compiled learner call (Acme's num_sgd_steps_per_step); the same
  # weights as one step per call (a test checks), only faster, so it is not part
  # of a run's identity.  The single-actor loop's calls take 1: more measured
  # slower there (docs/launch.md, "Speed").
  grad_steps_per_call: int = _operational(
      50, 'grad steps per learner call in offline phases and with num_actors > 1 '
      '(speed only; the single-actor loop: 1)')
  eval_every: int = _identity(50_000, 'grad steps between evaluations (0: only the final one)')
  eval_episodes: int = _identity(20)
  final_eval_episodes: int = _identity(200)
  seed: int = _identity(0)
  episode_steps: int = _identity(specs.EPISODE_STEPS)
  image_size: int = _identity(specs.DEFAULT_IMAGE_SIZE)
  # See learners.learner_config.LearnerConfig.policy_ema and docs/results/ablations.md.
  policy_ema: float = _identity(
      0.0, 'decay of the Polyak-averaged policy copy that evaluation uses (0: the trained '
      'policy); periodic evaluations then also report the trained policy as eval_raw')
  n_step: int = _identity(1)
  gamma: float = _identity(0.99)
  # A variant, not the paper's: its critics all learn from the sparse reward, on
  # which CRR's advantages are flat along the neural teacher's failed episodes.
  # Shaped, they stay as flat: CRR at 500 on triplet 2 ends at 48.7 % against
  # 44.7 % sparse, 3 seeds each (docs/results/ablations.md, "A shaped critic reward").
  critic_reward: str = _identity(
      'sparse', "reward the critic learns from: 'sparse' (the logged stacking reward) or "
      "'shaped' (a staged reach/lift/place reward relabelled from the logged observations, "
      'pipelines/relabel.py)')
  min_replay_size: int = _identity(1_000)
  max_replay_size: int = _identity(1_000_000)
  replay_timeout_ms: int = _operational(120_000)
  network_size: int = _identity(256)
  # A Gaussian policy fit by likelihood can raise its stddev on the data points it
  # cannot fit and drop it near zero elsewhere; the mean's gradient at a point is
  # scaled by 1/stddev^2, so the hard points stop counting.  On mode-action teacher
  # data BC's stddev is ~1 on the first steps of an episode and 0.002 later
  # (docs/results/ablations.md).  A floor bounds that ratio.
  policy_min_stddev: float = _identity(
      1e-3, 'lower bound of the policy\'s stddev (the likelihood losses weight a point\'s '
      'action error by 1/stddev^2)')
  # The paper's sweeps (Fig. 5): replace the method row's teacher share of the
  # prior and its share of dataset items per batch by constants; None keeps the row's.
  beta: Optional[float] = _identity(
      None, "teacher share of the prior, a constant replacing the method row's (beta sweep)")
  offline_fraction: Optional[float] = _identity(
      None, "share of dataset items per batch, a constant replacing the method row's "
      '(batch ratio sweep)')
  eta: Optional[float] = _identity(
      None, "temperature of CRR-style (advantage) and R-CRR-style (softmax) rows, a constant "
      "replacing the row's (temperature sweep)")
  checkpoint_every_s: float = _operational(300.0)
  checkpoint_every_episodes: int = _operational(0, '0: time-based checkpoints only')
  log_every: int = _operational(100, 'grad steps between metric summaries')
  resume: bool = _operational(False, 'continue the run whose checkpoints are in --workdir')
  progress: bool = _operational(True, 'tqdm progress bars')
  # TensorFlow's thread pools in the launcher's process.  The nets are small
  # (batch 64, 256 units), so running independent ops side by side beats
  # splitting each op across cores (measured: docs/learners.md, "Speed").
  intra_op_threads: int = _operational(1, 'TF threads inside one op (0: TF default)')
  inter_op_threads: int = _operational(2, 'TF ops run side by side (0: TF default)')
  # Speed only: the number of grad steps is the same; online runs already
  # differ run to run through Reverb's unseeded sampler (learners/training/overlap.py).
  overlap_learner: bool = _operational(
      True, 'num_actors 1: run the grad steps on their own thread while the env steps')
  # Changes the offline item order, so a resume must keep it.
  offline_shuffle: int = _identity(10_000)
  # Filtered BC ("%BC", Chen et al. 2021) is the plain baseline for what
  # CRR's critic is meant to do: keep the teacher's good episodes, drop the rest.
  offline_filter: str = _identity(
      'all', "teacher episodes the learner trains on: 'all', or 'successful' (only those "
      'whose success flag is set: BC on them is filtered BC); the budget still counts every '
      'offline episode, the robot ran them all')
  # The paper's simulated datasets sample the teacher's actions; its real-robot
  # ones take the mode, "such as for evaluation" (Sec. V-D).  Sampled is the
  # default: on triplet 3, CRR and BC trained on mode-action data stack in 0 of
  # 100 (3 seeds each), against 13.7 / 16.0 % on sampled data, unless
  # `policy_min_stddev` is raised (docs/results/ablations.md).
  teacher_policy_mode: str = _identity(
      policy_lib.DEFAULT_TEACHER_POLICY_MODE,
      "how the teacher acted while collecting the offline dataset: 'stochastic' (sampled "
      "actions) or 'deterministic' (its mode action, as when the teacher is evaluated)")

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  def identity(self) -> dict:
    return {name: getattr(self, name) for name in IDENTITY_FIELDS}


def _tagged(identity: bool) -> tuple:
  return tuple(f.name for f in dataclasses.fields(RunConfig)
               if f.metadata.get('identity') is identity)


IDENTITY_FIELDS = _tagged(True)
OPERATIONAL_FIELDS = _tagged(False)


def resolve_method(config: RunConfig) -> methods_lib.Method:
  """The method row of a run, with its beta / offline_fraction overrides."""
  return methods_lib.get_method(config.method).with_overrides(
      config.beta, config.offline_fraction, config.eta)


def pretrain_steps(config: RunConfig, method: methods_lib.Method) -> int:
  if config.offline_pretrain_steps is not None:
    return config.offline_pretrain_steps
  return method.pretrain_steps


def _check_types(config: RunConfig) -> None:
  """A config file's value of the wrong type (`batch_size: big`) is named, not a traceback."""
  for field in dataclasses.fields(RunConfig):
    value, args = getattr(config, field.name), get_args(field.type)
    if value is None and type(None) in args:
      continue  # Optional and unset.
    kind = next((a for a in args if a is not type(None)), field.type)
    # YAML reads `gamma: 1` as an int, which is fine; bool is an int to Python,
    # but `batch_size: true` is a mistake.
    accepted = (int, float) if kind is float else kind
    if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
      raise ValueError(f'{field.name} must be {"a number" if kind is float else kind.__name__}, '
                       f'got {value!r}.')


def _check_names(config: RunConfig, uses_dataset: bool) -> None:
  """Triplet, teacher and obs mode, before a workdir or dataset is named after them."""
  triplets_lib.get_triplet(config.triplet)
  if uses_dataset and config.triplet not in triplets_lib.TRIPLET_NAMES:
    raise ValueError(f'Teacher datasets exist for {", ".join(triplets_lib.TRIPLET_NAMES)} only; '
                     f'got triplet {config.triplet!r}.')
  if config.teacher not in teachers_lib.TEACHER_NAMES and not os.path.isdir(config.teacher):
    raise ValueError(f'Unknown teacher {config.teacher!r}; valid: '
                     f'{", ".join(teachers_lib.TEACHER_NAMES)}, or a SavedModel directory.')
  specs.check_obs_mode(config.obs)


def check_config(config: RunConfig) -> tuple[methods_lib.Method, int]:
  """All checks that need no work; returns the method and its online budget."""
  _check_types(config)
  method = resolve_method(config)
  online = method.is_online
  online_budget = ledger_lib.check_budget(config.budget, config.offline_episodes, online)
  uses_dataset = online and method.offline_fraction(0) > 0 or not online
  if method.kind == 'online' and config.offline_episodes:
    raise ledger_lib.BudgetError(
        f'{method.name} learns from replay only; its {config.offline_episodes} '
        'offline episodes would spend budget without being used. Pass --offline_episodes 0.')
  if uses_dataset and config.offline_episodes == 0:
    raise ledger_lib.BudgetError(f'{method.name} samples the teacher dataset; pass '
                                 '--offline_episodes > 0.')
  _check_names(config, uses_dataset)
  for name in ('batch_size', 'env_steps_per_grad_step', 'grad_steps_per_update',
               'episode_steps', 'num_actors',
               'n_step', 'min_replay_size', 'variable_update_period', 'grad_steps_per_call',
               'log_every', 'final_eval_episodes'):
    if getattr(config, name) < 1:
      raise ValueError(f'{name} must be >= 1, got {getattr(config, name)}.')
  if config.offline_filter not in OFFLINE_FILTERS:
    raise ValueError(f'Unknown offline_filter {config.offline_filter!r}; valid: '
                     f'{", ".join(OFFLINE_FILTERS)}.')
  if config.offline_filter != 'all' and not uses_dataset:
    raise ValueError(f'offline_filter {config.offline_filter!r} filters the teacher dataset, '
                     f'which {method.name} does not sample.')
  if config.critic_reward not in methods_lib.REWARDS:
    raise ValueError(f'Unknown critic_reward {config.critic_reward!r}; valid: '
                     f'{", ".join(methods_lib.REWARDS)}.')
  if config.critic_reward != 'sparse' and not method.uses_critic:
    raise ValueError(f'critic_reward {config.critic_reward!r} relabels the critic\'s reward; '
                     f'{method.name} has no critic.')
  if config.teacher_policy_mode not in policy_lib.POLICY_MODES:
    raise ValueError(f'Unknown teacher_policy_mode {config.teacher_policy_mode!r}; valid: '
                     f'{", ".join(policy_lib.POLICY_MODES)}.')
  if config.teacher_policy_mode != policy_lib.DEFAULT_TEACHER_POLICY_MODE and not uses_dataset:
    raise ValueError(f'teacher_policy_mode {config.teacher_policy_mode!r} picks the teacher '
                     f'dataset, which {method.name} does not sample.')
  if config.actor_engine not in ACTOR_ENGINES:
    raise ValueError(f'Unknown actor_engine {config.actor_engine!r}; valid: '
                     f'{", ".join(ACTOR_ENGINES)}.')
  if config.actor_engine == 'ray' and config.num_actors < 2:
    raise ValueError('actor_engine ray places actors on a cluster: it needs num_actors >= 2 '
                     '(num_actors 1 is the synchronous loop in this process).')
  if not config.policy_min_stddev > 0:
    raise ValueError(f'policy_min_stddev must be > 0, got {config.policy_min_stddev}.')
  for name in ('grad_steps', 'eval_every', 'checkpoint_every_episodes', 'max_actor_restarts'):
    if getattr(config, name) < 0:
      raise ValueError(f'{name} must be >= 0, got {getattr(config, name)}.')
  for name in ('intra_op_threads', 'inter_op_threads'):
    if getattr(config, name) < 0:
      raise ValueError(f'{name} must be >= 0 (0: TensorFlow\'s default), got '
                       f'{getattr(config, name)}.')
  return method, online_budget


def saved_config(workdir: str) -> RunConfig:
  """The RunConfig a run's `config.json` records, with `workdir` set to where it is now.

  A setting added after the run started was at its default all along; the
  resolved facts written beside the settings (`method_row`, ...) are dropped.
  """
  saved = workdir_lib.read_json(os.path.join(workdir, workdir_lib.CONFIG_FILE))
  fields = {f.name for f in dataclasses.fields(RunConfig)}
  return RunConfig(**dict({k: v for k, v in saved.items() if k in fields},
                                     workdir=workdir))


def check_workdir(config: RunConfig) -> bool:
  """Whether the run resumes; refuses a workdir another run owns.  Writes nothing."""
  workdir = config.workdir
  has_ckpt = workdir_lib.has_checkpoint_data(workdir)
  if has_ckpt and not config.resume:
    raise FileExistsError(
        f'{workdir} holds checkpoints of an earlier run; pass --resume to continue it, '
        'or choose a new --workdir. Refusing to re-initialise it.')
  config_path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  if has_ckpt and os.path.exists(config_path):
    saved = saved_config(workdir).identity()
    diffs = {k: (saved[k], v) for k, v in config.identity().items() if saved[k] != v}
    if diffs:
      raise ValueError(f'--resume with settings that differ from {config_path}: '
                       + ', '.join(f'{k}: saved {a!r}, now {b!r}' for k, (a, b) in diffs.items()))
  if not has_ckpt and os.path.isdir(workdir):
    stale = [p for p in (workdir_lib.STATE_DIR, workdir_lib.REPLAY_DIR,
                         workdir_lib.EPISODE_LOG_DIR)
             if os.path.exists(os.path.join(workdir, p))]
    if stale and not config.resume:
      raise FileExistsError(f'{workdir} holds {", ".join(stale)} from an earlier run but no '
                            'learner checkpoint; pass --resume to continue it (its logged '
                            'episodes are ingested), or choose a new --workdir.')
  return has_ckpt
