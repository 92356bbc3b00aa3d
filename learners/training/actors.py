"""The actor: the student in the env, logged by envlogger, transitions into Reverb.

Each online episode is
  * acted with sampled (stochastic) student actions, from a seed that depends
    only on (run seed, episode index), so the initial states of a run are
    reproducible and a resumed run continues the same sequence;
  * logged to RLDS by `pipelines.episode_log.StudentEpisodeLog` (same spec as the
    teacher datasets);
  * cut into n-step transitions by `pipelines.transitions.episode_transitions`,
    the converter the offline stream uses, so online and offline items are
    identical in format; and inserted into Reverb when the episode ends.

The actor advances one env step per `step()` call, so the synchronous loop can
interleave env steps and gradient steps at a fixed ratio.
"""

import dataclasses
from typing import Callable, List, Mapping, Optional

import dm_env
import numpy as np
import tensorflow as tf

from envs import policy as policy_lib
from envs import rollout as rollout_lib
from envs import specs
from learners.training import replay
from pipelines import episode_log
from pipelines import transitions as transitions_lib

STUDENT_SEED_TAG = 'student'


def student_episode_seed(triplet: str, seed: int, index: int) -> int:
  """Seed of online episode `index` of a run: never equal to eval or teacher seeds."""
  return rollout_lib.episode_seed(triplet, f'{STUDENT_SEED_TAG}-{seed}', index)


class StudentPolicy:
  """A `envs.policy.Policy` view of a learner's policy for one (unbatched) observation."""
  name = 'student'

  def __init__(self, distribution_fn: Callable[[Mapping[str, np.ndarray]],
                                               policy_lib.GaussianAction]):
    self._distribution_fn = distribution_fn

  def distribution(self, observation: Mapping[str, np.ndarray]) -> policy_lib.GaussianAction:
    return policy_lib.call_unbatched(self._distribution_fn, observation)


def stack_steps(steps: List[dict]) -> dict:
  """A list of RLDS step dicts -> one dict of arrays with a leading time axis."""
  return tf.nest.map_structure(lambda *xs: np.stack(xs), *steps)


def episode_items(timesteps: List[dm_env.TimeStep], actions: List[np.ndarray],
                  obs_spec: Mapping, n_step: int, gamma: float,
                  critic_reward: str = 'sparse') -> dict:
  """n-step transitions of one episode, exactly as the offline stream makes them."""
  steps = stack_steps(episode_log.rlds_steps(timesteps, actions, obs_spec))
  tensors = tf.nest.map_structure(tf.convert_to_tensor, steps)
  items = transitions_lib.episode_transitions(tensors, n_step, gamma, critic_reward)
  return tf.nest.map_structure(lambda t: t.numpy(), items)


@dataclasses.dataclass
class EpisodeResult:
  index: int
  seed: int
  steps: int
  success: bool
  episode_return: float
  items: int  # Transitions inserted into replay.


@dataclasses.dataclass(frozen=True)
class ActorConfig:
  triplet: str = 'triplet1'
  obs_mode: str = 'state'
  reward: str = 'sparse'
  episode_steps: int = specs.EPISODE_STEPS
  image_size: int = specs.DEFAULT_IMAGE_SIZE
  n_step: int = 1
  gamma: float = 0.99
  critic_reward: str = 'sparse'  # pipelines.relabel
  seed: int = 0
  method: str = ''
  teacher: str = ''
  run_id: str = ''


class Actor:
  """Steps the student in its own env; owns the env, the episode log and a writer."""

  def __init__(self, config: ActorConfig, policy: policy_lib.Policy, log_root: str,
               writer: replay.TransitionWriter, env_factory=None, repair_log: bool = True):
    from envs import stacking  # pylint: disable=g-import-not-at-top
    self.config = config
    self._policy = policy
    self._writer = writer
    make = env_factory or stacking.make_env
    self._env = make(config.triplet, obs_mode=config.obs_mode, seed=config.seed,
                     reward=config.reward, episode_steps=config.episode_steps,
                     image_size=config.image_size)
    self._obs_spec = specs.observation_spec(config.obs_mode, config.image_size)
    self._log = episode_log.StudentEpisodeLog(
        self._env, log_root, obs_mode=config.obs_mode, triplet=config.triplet,
        method=config.method, run_id=config.run_id, teacher=config.teacher,
        image_size=config.image_size, repair=repair_log)
    # Without an episode index from the learner, episodes 0, 1, 2, ... in turn.
    self._next_index = 0
    self._timestep: Optional[dm_env.TimeStep] = None
    self._timesteps: List[dm_env.TimeStep] = []
    self._actions: List[np.ndarray] = []
    self._episode_seed = 0
    self._episode_index = 0
    self._rng = None

  @property
  def log_segment(self) -> str:
    return self._log.segment

  @property
  def previous_log_segments(self) -> list:
    return self._log.previous_segments

  @property
  def in_episode(self) -> bool:
    return self._timestep is not None

  def step(self, learner_step: int,
           episode_index: Optional[int] = None) -> Optional[EpisodeResult]:
    """One env step (a reset first if needed); the result when an episode ends.

    `episode_index` (read at a reset only) names the episode to begin, as an
    actor process does with the token the learner handed it; None takes the
    next one of this actor's own sequence.
    """
    if self._timestep is None:
      self._begin(learner_step, episode_index)
    action = policy_lib.action_of(self._policy.distribution(self._timestep.observation),
                                  'stochastic', self._rng)
    self._timestep = self._log.step(action)
    self._timesteps.append(self._timestep)
    self._actions.append(action)
    if not self._timestep.last():
      return None
    return self._finish()

  def run_episode(self, learner_step: int) -> EpisodeResult:
    while True:
      result = self.step(learner_step)
      if result is not None:
        return result

  def _begin(self, learner_step: int, episode_index: Optional[int] = None) -> None:
    self._episode_index = self._next_index if episode_index is None else episode_index
    self._next_index = self._episode_index + 1
    self._episode_seed = student_episode_seed(self.config.triplet, self.config.seed,
                                              self._episode_index)
    self._rng = np.random.default_rng([self._episode_seed, 1])
    self._timestep = self._log.reset(episode_seed=self._episode_seed,
                                     learner_step=learner_step, policy_mode='stochastic')
    self._timesteps = [self._timestep]
    self._actions = []

  def _finish(self) -> EpisodeResult:
    items = episode_items(self._timesteps, self._actions, self._obs_spec,
                          self.config.n_step, self.config.gamma, self.config.critic_reward)
    inserted = self._writer.insert(items)
    result = EpisodeResult(
        index=self._episode_index, seed=self._episode_seed, steps=len(self._actions),
        success=bool(self._env.success),
        episode_return=float(sum(float(ts.reward) for ts in self._timesteps[1:])),
        items=inserted)
    self._timestep = None
    self._timesteps, self._actions = [], []
    return result

  def close(self) -> None:
    self._log.close()
    self._writer.close()
    self._env.close()
