"""Critic rewards relabelled from logged observations: the shaped critic variant.

The paper trains every critic on the sparse stacking reward (only MPO gets the
env's shaped one).  On the neural teacher's data that critic ranks nothing: CRR's
advantages are flat along the failed episodes (docs/results/ablations.md, "Does
CRR's weighting favour the episodes that end stacked?").  `critic_reward
shaped` asks whether a dense staged reward gives the critic something to rank.
Measured there ("A shaped critic reward"): on triplet 2 it does not; offline CRR
at 500 episodes ends at 48.7 % against 44.7 % (3 seeds each, intervals
overlapping) with the filter as flat as before.

The env's `shaped_reward` reads MuJoCo contacts, which no dataset stores, so this
is its observation-only twin with the same stages and weights: reach red,
"lifted" (red above its starting height with the gripper at it, in place of
"both pads touch red"), lift red over blue, place it over blue.  Every logged
episode, offline or online, holds what it needs (`proprio`, `object_poses`), so
teacher datasets are relabelled as they are read, without a rebuild.  A step
whose sparse reward is 1 (stacked) keeps 1, as in the env.

Against the env's "grasped and off the ground" on 2 400 steps of the neural
teacher on triplet 2 (sampled actions), "lifted" agrees in 90.7 % of steps: 161
lifted-only steps, 63 grasped-only ones.
"""

import tensorflow as tf

from envs import specs

CRITIC_REWARDS = specs.REWARD_TYPES  # the logged reward, or the shaped one relabelled

# Layouts of envs.specs: proprio[0:3] is the gripper's xyz; object_poses holds
# (red, green, blue) x (xyz, quaternion).
_TCP = slice(0, 3)
_RED = slice(0, 3)
_BLUE = slice(14, 17)
LIFT_MIN = 0.01  # m above red's first logged height
HELD_RADIUS = 0.05  # m from the gripper to red's centre (grasped, 5-95 %: 3-14 mm)


def check_critic_reward(name: str) -> str:
  if name not in CRITIC_REWARDS:
    raise ValueError(f'Unknown critic_reward {name!r}; valid: {", ".join(CRITIC_REWARDS)}.')
  return name


def staged_progress(proprio: tf.Tensor, object_poses: tf.Tensor,
                    red_start_z: tf.Tensor) -> tf.Tensor:
  """Staged reward in [0, 0.9] of observations with a leading time axis."""
  proprio = tf.cast(proprio, tf.float32)
  poses = tf.cast(object_poses, tf.float32)
  w = specs.SHAPED_REWARD
  tcp, red, blue = proprio[:, _TCP], poses[:, _RED], poses[:, _BLUE]
  to_red = tf.norm(tcp - red, axis=-1)
  reach = 1.0 - tf.tanh(w.distance_scale * to_red)
  lifted = tf.cast((red[:, 2] - red_start_z > LIFT_MIN) & (to_red < HELD_RADIUS), tf.float32)
  lift = lifted * tf.clip_by_value((red[:, 2] - blue[:, 2]) / w.lift_height, 0.0, 1.0)
  place = lifted * (1.0 - tf.tanh(
      w.distance_scale * tf.norm(red[:, :2] - blue[:, :2], axis=-1)))
  return w.reach * reach + w.grasp * lifted + w.lift * lift + w.place * place


def shaped_rewards(steps: dict) -> tf.Tensor:
  """Rewards of one batched RLDS episode, relabelled: r_t from observation t+1.

  RLDS step t holds the reward that action t earned, i.e. the reward of the
  state it led to; the last step carries no action and gets 0.
  """
  observation = steps['observation']
  proprio, poses = observation['proprio'], observation['object_poses']
  progress = staged_progress(proprio[1:], poses[1:], tf.cast(poses[0, 2], tf.float32))
  sparse = tf.cast(steps['reward'][:-1], tf.float32)
  reward = tf.where(sparse >= 1.0, sparse, progress)
  return tf.concat([reward, tf.zeros([1], tf.float32)], 0)
