"""The learner's settings (as Acme keeps an agent's config beside its learner)."""

import dataclasses

from envs import specs
from learners import networks


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
  obs_mode: str = 'state'
  image_size: int = specs.DEFAULT_IMAGE_SIZE
  nets: networks.NetworkConfig = networks.NetworkConfig()
  # d3rlpy's CRR defaults; 1e-4 (Acme's) fit the teacher data measurably worse
  # in the few thousand steps a laptop-sized study affords.
  policy_learning_rate: float = 3e-4
  critic_learning_rate: float = 3e-4
  dual_learning_rate: float = 1e-2
  max_gradient_norm: float = 40.0
  target_update: str = 'polyak'  # 'polyak' (every step, rate tau) or 'periodic'.
  tau: float = 0.005
  target_update_period: int = 100
  # Target-policy actions per next state for the TD target (distributions averaged).
  critic_target_samples: int = 1
  seed: int = 0
  # Also makes TF kernels deterministic (process-wide, cannot be undone).
  deterministic: bool = False
  use_tf_function: bool = True
  max_checkpoints_to_keep: int = 3
  # Decay of a Polyak-averaged (EMA) copy of the policy that evaluation uses;
  # 0 evaluates the trained policy itself.  The target policy is an average
  # too, but its rate `tau` also sets the TD target and the priors, so the
  # evaluated average gets its own.
  policy_ema: float = 0.0
