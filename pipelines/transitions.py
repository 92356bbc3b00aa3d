"""RLDS episodes -> n-step transitions, the one converter every learner uses.

Each episode's steps are batched whole (`rlds.transformations.batch`) and the
transitions are cut from that batch with tensor slicing, which is several
times faster than per-step Python-style pipelines.

Output format (one element per transition, unbatched; all float32 but the
observation's own dtypes):

  observation       dict, the observation at step t (all logged keys)
  action            [5] action taken at step t
  reward            n-step discounted reward  sum_{k<m} gamma^k (prod_{j<k} d_{t+j}) r_{t+k}
  discount          bootstrap factor  gamma^m prod_{k<m} d_{t+k}   (0 if the episode terminated inside the window)
  next_observation  dict, the observation at step t+m

with m = min(n, T-1-t), T the number of RLDS steps (the last step only carries
the final observation).  A learner's target is `reward + discount * V(next)`.

RLDS alignment (as envlogger writes it): step t holds observation t, action
t, and the reward r_t and discount d_t that action t earned.  Near the end of
an episode the window shrinks to the steps left: a *truncated* episode
(last step not terminal, d=1) bootstraps from its final observation; a
*terminated* one (last step `is_terminal`) gets discount 0.  Termination wins
over truncation: a terminal last step zeroes the discount even if the logged
d_{T-2} says otherwise.
"""

from typing import Optional

import rlds
import tensorflow as tf

from pipelines import relabel

# Upper bound on steps per episode; episodes are batched whole.
_MAX_EPISODE_STEPS = 1 << 16


def episode_transitions(steps: dict, n_step: int, gamma: float,
                        critic_reward: str = 'sparse') -> dict:
  """n-step transitions of one whole episode given as batched RLDS steps.

  `critic_reward` 'shaped' sums `relabel.shaped_rewards` instead of the logged
  reward (a variant; the paper's critics see the sparse one).
  """
  if n_step < 1:
    raise ValueError(f'n_step must be >= 1, got {n_step}.')
  relabel.check_critic_reward(critic_reward)
  num = tf.shape(steps['reward'])[0] - 1  # transitions: steps with an action
  logged = relabel.shaped_rewards(steps) if critic_reward == 'shaped' else steps['reward']
  reward = tf.cast(logged[:-1], tf.float32)
  terminal_next = tf.cast(steps['is_terminal'][1:], tf.float32)
  env_discount = tf.cast(steps['discount'][:-1], tf.float32) * (
      1.0 - terminal_next)
  pad = tf.zeros([n_step], tf.float32)
  reward_p = tf.concat([reward, pad], 0)
  discount_p = tf.concat([env_discount, pad], 0)
  t = tf.range(num)
  ret = tf.zeros([num], tf.float32)
  coef = tf.ones([num], tf.float32)
  for j in range(n_step):  # n is small and static: unrolled
    valid = t + j < num
    ret += tf.where(valid, coef * reward_p[j:j + num], 0.0)
    coef = tf.where(valid, coef * gamma * discount_p[j:j + num], coef)
  horizon = tf.minimum(n_step, num - t)
  next_index = t + horizon
  observation = tf.nest.map_structure(lambda x: x[:-1], steps['observation'])
  next_observation = tf.nest.map_structure(
      lambda x: tf.gather(x, next_index), steps['observation'])
  return dict(observation=observation, action=steps['action'][:-1],
              reward=ret, discount=coef, next_observation=next_observation)


def _whole_episode(episode: dict) -> tf.data.Dataset:
  return rlds.transformations.batch(episode[rlds.STEPS],
                                    size=_MAX_EPISODE_STEPS)


def transitions(episodes: tf.data.Dataset, n_step: int = 1,
                gamma: float = 0.99, deterministic: bool = True,
                critic_reward: str = 'sparse') -> tf.data.Dataset:
  """A dataset of RLDS episodes as a dataset of n-step transitions.

  Args:
    episodes: RLDS episodes (e.g. `load_teacher_dataset(...)`).
    n_step: number of rewards summed before bootstrapping.
    gamma: discount per step.
    deterministic: keep episode order (needed for reproducible streams).
    critic_reward: 'sparse' (the logged reward) or 'shaped' (`relabel`).

  Returns:
    Unbatched transitions in the format of this module's docstring.
  """
  def convert(steps):
    tf.debugging.assert_equal(steps['is_first'][0], True,
                              message='episode split: longer than 65536 steps?')
    return episode_transitions(steps, n_step, gamma, critic_reward)

  batched = episodes.interleave(
      _whole_episode, cycle_length=4, num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=deterministic)
  return (batched.map(convert, num_parallel_calls=tf.data.AUTOTUNE,
                      deterministic=deterministic)
          .unbatch())


def batched_transitions(episodes: tf.data.Dataset, batch_size: int,
                        n_step: int = 1, gamma: float = 0.99,
                        shuffle_buffer: int = 0, seed: Optional[int] = None,
                        repeat: bool = False) -> tf.data.Dataset:
  """Transitions, optionally shuffled, in fixed-size batches for a learner."""
  ds = transitions(episodes, n_step, gamma)
  if repeat:
    ds = ds.repeat()
  if shuffle_buffer:
    ds = ds.shuffle(shuffle_buffer, seed=seed)
  return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
