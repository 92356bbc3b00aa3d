"""The RGB-stacking task as a `dm_env.Environment`: stack red on blue."""

import atexit
import dataclasses
import weakref

import dm_env
import mujoco
import numpy as np

from envs import scene
from envs import specs
from envs.triplets import Triplet, get_triplet

REWARD_TYPES = specs.REWARD_TYPES
DROP_HEIGHT = 0.12
SETTLE_SECONDS = 0.6
MIN_OBJECT_SEPARATION = 0.08
OBJECT_SPAWN_LOW = np.array([0.5, -0.1])
OBJECT_SPAWN_HIGH = np.array([0.7, 0.1])
GRIPPER_START_NOISE = 0.03

# Success conditions of RGB-stacking (DESIGN.md).
STACK_XY_TOLERANCE = 0.05
STACK_MIN_HEIGHT = 0.02


@dataclasses.dataclass(frozen=True)
class Contacts:
  red_blue: bool
  red_ground: bool
  red_gripper: bool
  red_pads: int  # how many of the two finger pads touch red


class StackingEnv(dm_env.Environment):
  """Put the red object on the blue one with a Cartesian parallel-jaw gripper.

  Episodes have a fixed length (`episode_steps` at 20 Hz) and never terminate:
  the last step is a truncation (discount 1), as in RGB-stacking.
  """

  def __init__(self, triplet='triplet1', obs_mode: str = 'state', seed: int = 0,
               reward: str = 'sparse', episode_steps: int = specs.EPISODE_STEPS,
               image_size: int = specs.DEFAULT_IMAGE_SIZE):
    self.triplet: Triplet = get_triplet(triplet)
    self.obs_mode = specs.check_obs_mode(obs_mode)
    if reward not in REWARD_TYPES:
      raise ValueError(f'Unknown reward {reward!r}; valid choices: {", ".join(REWARD_TYPES)}.')
    if episode_steps < 1:
      raise ValueError(f'episode_steps must be >= 1, got {episode_steps}.')
    if image_size < 8:
      raise ValueError(f'image_size must be >= 8 pixels, got {image_size}.')
    self.reward_type = reward
    self.episode_steps = int(episode_steps)
    self.image_size = int(image_size)
    self.model, self.index = scene.build_model(self.triplet)
    self.data = mujoco.MjData(self.model)
    self._renderer = None
    _LIVE_ENVS.add(self)
    self._observation_spec = specs.observation_spec(obs_mode, image_size)
    self._rng = np.random.default_rng(seed)
    self._t = 0
    self._needs_reset = True
    self._geom_role = _geom_roles(self.model, self.index)

  # --- dm_env API -----------------------------------------------------------

  def reseed(self, seed: int) -> None:
    """The next `reset()` starts the episode determined by `seed` alone."""
    self._rng = np.random.default_rng(seed)

  def reset(self) -> dm_env.TimeStep:
    self._t = 0
    self._needs_reset = False
    self._initialise_episode()
    return dm_env.restart(self._observation())

  def step(self, action) -> dm_env.TimeStep:
    if self._needs_reset:
      return self.reset()
    self._apply(self._check_action(action))
    mujoco.mj_step(self.model, self.data, nstep=scene.SUBSTEPS)
    self._t += 1
    observation = self._observation()
    reward = np.float32(self._reward())
    if self._t >= self.episode_steps:
      self._needs_reset = True
      return dm_env.truncation(reward, observation, discount=np.float32(1.0))
    return dm_env.transition(reward, observation, discount=np.float32(1.0))

  def observation_spec(self):
    return self._observation_spec

  def action_spec(self):
    return specs.action_spec()

  def reward_spec(self):
    return specs.reward_spec()

  def discount_spec(self):
    return specs.discount_spec()

  def close(self):
    if self._renderer is not None:
      self._renderer.close()
      self._renderer = None

  # --- task -----------------------------------------------------------------

  @property
  def success(self) -> bool:
    """The RGB-stacking success condition, evaluated on the current state."""
    red, blue = self._object_pos(0), self._object_pos(2)
    if not (np.linalg.norm(red[:2] - blue[:2]) < STACK_XY_TOLERANCE
            and red[2] > blue[2] + STACK_MIN_HEIGHT):
      return False  # the cheap geometric test first: contacts cost more
    c = self.contacts()
    return c.red_blue and not c.red_ground and not c.red_gripper

  def contacts(self) -> Contacts:
    ncon = self.data.ncon
    role1 = self._geom_role[self.data.contact.geom1[:ncon]]
    role2 = self._geom_role[self.data.contact.geom2[:ncon]]
    red_with = np.concatenate([role2[role1 == _RED], role1[role2 == _RED]])
    return Contacts(
        red_blue=bool(np.any(red_with == _BLUE)),
        red_ground=bool(np.any(red_with == _GROUND)),
        red_gripper=bool(np.any(red_with >= _GRIPPER)),
        red_pads=int(np.any(red_with == _PAD_LEFT)) + int(np.any(red_with == _PAD_RIGHT)))

  def _reward(self) -> float:
    success = self.success
    if self.reward_type == 'sparse' or success:
      return float(success)
    return shaped_reward(self)

  # --- internals ------------------------------------------------------------

  def _check_action(self, action) -> np.ndarray:
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (specs.ACTION_DIM,):
      raise ValueError(f'Action must have shape ({specs.ACTION_DIM},) '
                       f'({", ".join(specs.ACTION_NAMES)}), got {action.shape}.')
    if not np.all(np.isfinite(action)):
      raise ValueError(f'Action has NaN or Inf entries: {action}. Actions must be finite; '
                       'check the policy that produced it.')
    # The spec is bounded: out-of-range (but finite) commands saturate, as on a robot.
    return np.clip(action, -1.0, 1.0)

  def _apply(self, action: np.ndarray) -> None:
    ctrl = self.data.ctrl
    opening = scene.FINGER_MAX_OPENING * (1.0 - action[4]) / 2.0
    ctrl[0] = ctrl[1] = opening
    ctrl[2:5] = action[:3] * specs.MAX_LINEAR_SPEED
    ctrl[5] = action[3] * specs.MAX_YAW_SPEED

  def _initialise_episode(self) -> None:
    rng = self._rng
    model, data, idx = self.model, self.data, self.index
    mujoco.mj_resetData(model, data)
    data.qpos[idx.gripper_qpos[:3]] = rng.uniform(-GRIPPER_START_NOISE, GRIPPER_START_NOISE, 3)
    data.qpos[idx.gripper_qpos[3]] = rng.uniform(-np.pi / 4, np.pi / 4)
    data.qpos[idx.finger_qpos] = scene.FINGER_MAX_OPENING
    positions = []
    while len(positions) < specs.NUM_OBJECTS:
      xy = rng.uniform(OBJECT_SPAWN_LOW, OBJECT_SPAWN_HIGH)
      if all(np.linalg.norm(xy - p) >= MIN_OBJECT_SEPARATION for p in positions):
        positions.append(xy)
    for k, xy in enumerate(positions):
      yaw = rng.uniform(-np.pi, np.pi)
      adr = idx.object_qpos[k]
      base_quat = model.body_quat[idx.object_body[k]]  # the prop's rest orientation
      yaw_quat = np.array([np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])
      quat = np.empty(4)
      mujoco.mju_mulQuat(quat, yaw_quat, base_quat)
      data.qpos[adr:adr + 3] = (xy[0], xy[1], DROP_HEIGHT)
      data.qpos[adr + 3:adr + 7] = quat
    data.ctrl[:] = 0.0
    data.ctrl[0] = data.ctrl[1] = scene.FINGER_MAX_OPENING
    mujoco.mj_forward(model, data)
    mujoco.mj_step(model, data, nstep=int(SETTLE_SECONDS / scene.PHYSICS_TIMESTEP))

  def _object_pos(self, k: int) -> np.ndarray:
    return self.data.xpos[self.index.object_body[k]]

  def _observation(self) -> dict:
    data, idx = self.data, self.index
    q = data.qpos[idx.gripper_qpos]
    qd = data.qvel[idx.gripper_qvel]
    tcp = scene.GRIPPER_HOME + q[:3]
    opening = data.qpos[idx.finger_qpos].sum()
    proprio = np.array([tcp[0], tcp[1], tcp[2], np.sin(q[3]), np.cos(q[3]), opening,
                        qd[0], qd[1], qd[2], qd[3]], dtype=np.float32)
    poses = np.concatenate([
        np.concatenate([data.xpos[b], data.xquat[b]]) for b in idx.object_body
    ]).astype(np.float32)
    obs = {'proprio': proprio, 'object_poses': poses}
    if self.obs_mode == 'vision':
      obs.update(self.render_cameras())
    return obs

  def render_cameras(self, size: int = None) -> dict:
    size = size or self.image_size
    if self._renderer is None or self._renderer.height != size:
      if self._renderer is not None:
        self._renderer.close()
      self._renderer = mujoco.Renderer(self.model, size, size)
    images = {}
    for name in specs.CAMERA_NAMES:
      self._renderer.update_scene(self.data, camera=name)
      images[name] = self._renderer.render().copy()
    return images


# EGL contexts must be freed before the interpreter tears EGL down, or exit
# prints a spurious EGLError traceback.
_LIVE_ENVS = weakref.WeakSet()


@atexit.register
def _close_all():
  for env in list(_LIVE_ENVS):
    env.close()


# Contact roles of geoms; every gripper role is >= _GRIPPER.
_OTHER, _RED, _BLUE, _GROUND, _GRIPPER, _PAD_LEFT, _PAD_RIGHT = range(7)


def _geom_roles(model: mujoco.MjModel, index: scene.SceneIndex) -> np.ndarray:
  roles = np.full(model.ngeom, _OTHER, dtype=np.int8)
  roles[index.gripper_geoms] = _GRIPPER
  roles[model.geom('pad_left').id] = _PAD_LEFT
  roles[model.geom('pad_right').id] = _PAD_RIGHT
  roles[index.ground_geoms] = _GROUND
  roles[index.object_geoms[0]] = _RED
  roles[index.object_geoms[2]] = _BLUE
  return roles


def shaped_reward(env: StackingEnv) -> float:
  """Staged reach / grasp / lift / place reward in [0, 1) for MPO (success gives 1)."""
  tcp = scene.GRIPPER_HOME + env.data.qpos[env.index.gripper_qpos[:3]]
  red, blue = env._object_pos(0), env._object_pos(2)  # pylint: disable=protected-access
  c = env.contacts()
  w = specs.SHAPED_REWARD
  reach = 1.0 - np.tanh(w.distance_scale * np.linalg.norm(tcp - red))
  grasped = c.red_pads == 2
  lifted = grasped and not c.red_ground
  lift = np.clip((red[2] - blue[2]) / w.lift_height, 0.0, 1.0) if lifted else 0.0
  place = ((1.0 - np.tanh(w.distance_scale * np.linalg.norm(red[:2] - blue[:2])))
           if lifted else 0.0)
  return float(w.reach * reach + w.grasp * grasped + w.lift * lift + w.place * place)


def make_env(triplet='triplet1', obs_mode: str = 'state', seed: int = 0,
             reward: str = 'sparse', episode_steps: int = specs.EPISODE_STEPS,
             image_size: int = specs.DEFAULT_IMAGE_SIZE) -> StackingEnv:
  return StackingEnv(triplet, obs_mode, seed, reward, episode_steps, image_size)
