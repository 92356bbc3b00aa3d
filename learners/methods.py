"""Every method of the study as one row of data (the paper's Table II).

Eq. (3):  max_theta  E_{s ~ D, a ~ pi_prior} [ w(s, a) log pi_theta(a|s) ].
A method picks the data D (via `offline_fraction`: the share of each batch drawn
from the teacher dataset, the rest from the replay), the prior that proposes the
actions a, and the weighting w.  "How does R-CRR differ from CRR?" is answered by
reading their two rows side by side; a new method is a new row (or a
`dataclasses.replace` of an existing one handed straight to the `Learner`).

Priors (each is (1 - beta) * base + beta * pi_teacher; sampled per (state, sample)):
  behavior  pi_b: the batch action itself (dataset or replay), one sample per state.
  target    pi_k: the target policy network.
  teacher   pi_teacher only (beta is ignored, effectively 1).
Weightings:
  none       w = 1 (likelihood of the prior's actions: BC, DAgger).
  advantage  w = min(exp(A / eta), weight_clip), A = Q(s, a) - mean_m Q(s, a'_m),
             a'_m ~ pi_theta (CRR "exp" variant).
  softmax    w = exp(Q / eta - Z), Z = log mean_n exp(Q(s, a_n) / eta): a softmax
             across the prior samples of each state, fixed eta (R-CRR).
  mpo        as softmax but eta is a learned dual keeping KL(pi_imp || pi_prior) <= epsilon,
             plus MPO's decoupled per-dimension mean/stddev trust regions (MPO, R-MPO).
Q is the mean of the target critic's return distribution.  Each weighting is a
short function of one signature in `weightings.py`; the learner looks it up by
the row's `weighting`.

Facts about a method live on its row: its `key` ('r_crr', the CLI spelling),
its `kind` (offline / mixed / online), its offline pre-training steps, and
`with_overrides` for the paper's beta and batch-ratio sweeps.
"""

import dataclasses
from typing import Mapping, Optional, Union

from envs import specs as env_specs
from learners import schedules

Schedule = Union[schedules.Constant, schedules.Linear, schedules.Piecewise]

PRIORS = ('behavior', 'target', 'teacher')
WEIGHTINGS = ('none', 'advantage', 'softmax', 'mpo')
TEACHER_ACTIONS = ('sample', 'mean')
REWARDS = env_specs.REWARD_TYPES  # the reward the critic learns from


def method_key(name: str) -> str:
  """'R-CRR' and 'r-crr' -> 'r_crr'."""
  return name.lower().replace('-', '_')


@dataclasses.dataclass(frozen=True)
class Method:
  """One row of Table II plus the hyper-parameters its weighting needs."""
  name: str
  data: str  # Human-readable D, as in the paper's table.
  offline_fraction: Schedule  # 1 = dataset only, 0 = replay only.
  prior: str
  beta: Schedule = schedules.Constant(0.0)  # Teacher share of the prior mixture.
  weighting: str = 'none'
  num_prior_samples: int = 1
  eta: Schedule = schedules.Constant(1.0)  # Temperature (mpo: initial value).
  weight_clip: float = 20.0  # CRR's clip of exp(A / eta).
  advantage_samples: int = 4  # m policy samples estimating E_pi[Q] for A.
  epsilon: float = 0.1  # MPO: KL(pi_imp || pi_prior) bound.
  epsilon_mean: float = 1e-3  # MPO: per-dimension KL bound on the mean.
  epsilon_stddev: float = 1e-6  # MPO: per-dimension KL bound on the stddev.
  # DAgger & co. regress on sampled teacher actions (Eq. (3) with a ~ pi_teacher),
  # so the student learns the teacher's spread too; 'mean' clones the mode.
  teacher_action: str = 'sample'
  reward: str = 'sparse'  # Which env reward the collector logs (MPO: shaped).

  def __post_init__(self):
    for field, allowed in (('prior', PRIORS), ('weighting', WEIGHTINGS),
                           ('teacher_action', TEACHER_ACTIONS), ('reward', REWARDS)):
      if getattr(self, field) not in allowed:
        raise ValueError(f'Method {self.name!r}: {field}={getattr(self, field)!r}; '
                         f'valid choices: {", ".join(allowed)}.')
    if self.num_prior_samples < 1:
      raise ValueError(f'Method {self.name!r}: num_prior_samples must be >= 1.')
    if self.weighting in ('softmax', 'mpo') and self.num_prior_samples < 2:
      raise ValueError(f'Method {self.name!r}: weighting {self.weighting!r} normalises '
                       'across prior samples and needs num_prior_samples >= 2.')

  @property
  def uses_teacher(self) -> bool:
    return self.prior == 'teacher' or self.beta != schedules.Constant(0.0)

  @property
  def uses_critic(self) -> bool:
    return self.weighting != 'none'

  @property
  def uses_duals(self) -> bool:
    """MPO's KL-constrained temperature and trust region (learned Lagrange multipliers)."""
    return self.weighting == 'mpo'

  @property
  def key(self) -> str:
    """The command-line spelling: 'R-CRR' -> 'r_crr'."""
    return method_key(self.name)

  @property
  def kind(self) -> str:
    """'offline' (dataset only), 'online' (replay only) or 'mixed'."""
    if self.offline_fraction == _DATASET:
      return 'offline'
    if self.offline_fraction == _REPLAY:
      return 'online'
    return 'mixed'

  @property
  def is_online(self) -> bool:
    """Collects student episodes (spends online budget)."""
    return self.kind != 'offline'

  @property
  def pretrain_steps(self) -> int:
    """Dataset-only steps before it first wants replay items (AWAC: 500 k)."""
    schedule = self.offline_fraction
    if isinstance(schedule, schedules.Piecewise):
      steps = 0
      for step, value in schedule.knots:
        if value < 1.0:
          break
        steps = step
      return steps
    if isinstance(schedule, schedules.Linear) and schedule.start >= 1.0:
      return schedule.begin_step
    return 0

  def with_overrides(self, beta: Optional[float] = None,
                     offline_fraction: Optional[float] = None,
                     eta: Optional[float] = None) -> 'Method':
    """This row with a run's `beta` / `offline_fraction` / `eta` replaced by constants."""
    changes = {}
    if eta is not None:
      if self.weighting not in ('advantage', 'softmax'):
        raise ValueError(f'{self.name} has no fixed temperature to set (weighting '
                         f'{self.weighting!r}); eta applies to CRR-style and R-CRR-style rows.')
      if not eta > 0:
        raise ValueError(f'eta must be > 0, got {eta}.')
      changes['eta'] = schedules.Constant(float(eta))
    if beta is not None:
      if not 0.0 <= beta <= 1.0:
        raise ValueError(f'beta must be in [0, 1], got {beta}.')
      if self.prior == 'teacher':
        raise ValueError(f'{self.name} samples its prior from the teacher only; beta mixes '
                         'the teacher into a behavior or target prior (e.g. R-CRR, R-MPO).')
      changes['beta'] = schedules.Constant(float(beta))
    if offline_fraction is not None:
      if not self.is_online:
        raise ValueError(f'{self.name} is offline-only: every batch item is from the '
                         'dataset, so offline_fraction cannot be changed.')
      if not 0.0 <= offline_fraction < 1.0:
        raise ValueError(f'offline_fraction of an online method must be in [0, 1), got '
                         f'{offline_fraction} (1 would make it offline-only).')
      changes['offline_fraction'] = schedules.Constant(float(offline_fraction))
    return dataclasses.replace(self, **changes) if changes else self


_AWAC_OFFLINE = schedules.piecewise((0, 1.0), (500_000, 1.0), (1_100_000, 0.2))
_AWAC_ETA = schedules.Linear(start=1.0, end=0.1, begin_step=400_000, end_step=500_000)
_DATASET = schedules.Constant(1.0)
_REPLAY = schedules.Constant(0.0)
_HALF = schedules.Constant(0.5)  # Paper default for mixed methods.

# Table II.  Columns beyond the paper's (samples, eta, ...) are our defaults.
METHOD_TABLE = (
    Method('BC', 'dataset', _DATASET, prior='behavior'),
    Method('CRR', 'dataset', _DATASET, prior='behavior', weighting='advantage'),
    Method('CRR-mixed', 'dataset + replay', _HALF, prior='behavior',
           weighting='advantage'),
    Method('AWAC', 'dataset -> dataset + replay', _AWAC_OFFLINE, prior='behavior',
           weighting='advantage', eta=_AWAC_ETA),
    Method('DAgger', 'replay', _REPLAY, prior='teacher'),
    Method('DAgger-mixed', 'dataset + replay', _HALF, prior='teacher'),
    Method('MPO', 'replay', _REPLAY, prior='target', weighting='mpo',
           num_prior_samples=20, reward='shaped'),
    Method('R-MPO', 'dataset + replay', _HALF, prior='target',
           beta=schedules.Constant(0.1), weighting='mpo', num_prior_samples=20),
    Method('R-CRR', 'dataset + replay', _HALF, prior='behavior',
           beta=schedules.Constant(0.75), weighting='softmax', num_prior_samples=8),
    Method('R-CRR-target', 'dataset + replay', _HALF, prior='target',
           beta=schedules.Constant(0.75), weighting='softmax', num_prior_samples=20),
)

METHODS: Mapping[str, Method] = {m.name: m for m in METHOD_TABLE}
METHOD_KEYS = tuple(m.key for m in METHOD_TABLE)


def get_method(name_or_method: Union[str, Method]) -> Method:
  """A row by any spelling ('R-CRR', 'r_crr', 'r-crr'); a user-built `Method` as is."""
  if isinstance(name_or_method, Method):
    return name_or_method
  by_key = {m.key: m for m in METHOD_TABLE}
  key = method_key(str(name_or_method))
  if key not in by_key:
    raise ValueError(f'Unknown method {name_or_method!r}; valid: {", ".join(METHOD_KEYS)} '
                     f'(or {", ".join(METHODS)}).')
  return by_key[key]
