"""The "lite" RGB-stacking scene: a Cartesian parallel-jaw gripper over a basket.

Built with dm_control's MJCF library from the official RGB-object meshes, then
compiled once into a raw `mujoco.MjModel`: the env steps and renders through
the MuJoCo bindings directly, which is what makes tens of thousands of episodes
affordable on a laptop.
"""

import dataclasses

import mujoco
import numpy as np
from dm_control import mjcf
from dm_robotics.manipulation.props.rgb_objects import rgb_object

from envs import specs
from envs.triplets import Triplet

PHYSICS_TIMESTEP = 0.002  # 5 ms steps let grasped objects slip (FIELD-NOTES).
SUBSTEPS = round(1.0 / (specs.CONTROL_HZ * PHYSICS_TIMESTEP))

BASKET_CENTER = np.array([0.6, 0.0])
BASKET_HALF_SIZE = np.array([0.2, 0.2])
WALL_HEIGHT = 0.05
GRIPPER_HOME = specs.GRIPPER_HOME
# Slide ranges around home keep the gripper inside the cell.
GRIPPER_RANGE = np.array([[-0.25, 0.25], [-0.25, 0.25], [-0.25, 0.12]])
FINGER_MAX_OPENING = specs.FINGER_MAX_OPENING
OBJECT_NAMES = ('red', 'green', 'blue')
ACTUATOR_ORDER = ('finger_left', 'finger_right', 'vx', 'vy', 'vz', 'vyaw')
COLORS = {'red': (1, 0, 0, 1), 'green': (0, 1, 0, 1), 'blue': (0, 0, 1, 1)}


@dataclasses.dataclass(frozen=True)
class SceneIndex:
  """Addresses into the compiled model, resolved once."""
  gripper_qpos: np.ndarray   # x, y, z, yaw
  gripper_qvel: np.ndarray
  finger_qpos: np.ndarray    # left, right opening
  object_qpos: tuple          # per object: slice start of its free joint
  object_qvel: tuple
  object_body: tuple
  object_geoms: tuple         # per object: collision geom ids
  gripper_geoms: np.ndarray
  ground_geoms: np.ndarray
  tcp_site: int


def _cheap_visuals(root: mjcf.RootElement) -> None:
  # Shadows, reflections, skybox and multisampling dominate CPU render time
  # at 64x64 (FIELD-NOTES: ~50 -> ~2600 renders/s when turned off).
  root.visual.quality.shadowsize = 0
  root.visual.quality.offsamples = 0
  root.visual.map.znear = 0.01
  getattr(root.visual, 'global').offwidth = 256
  getattr(root.visual, 'global').offheight = 256


def _add_gripper(root: mjcf.RootElement) -> None:
  gripper = root.worldbody.add('body', name='gripper', pos=GRIPPER_HOME, gravcomp=1)
  for axis_name, axis, rng in zip('xyz', np.eye(3), GRIPPER_RANGE):
    gripper.add('joint', name=f'slide_{axis_name}', type='slide', axis=axis,
                range=rng, limited=True, damping=5, armature=0.1)
  gripper.add('joint', name='yaw', type='hinge', axis=(0, 0, 1), damping=0.05,
              armature=0.005, limited=False)
  gripper.add('site', name='tcp', pos=(0, 0, 0), size=(0.005,), rgba=(1, 1, 0, 0))
  # The tcp (gripper origin) sits at the bottom of the pads.
  gripper.add('geom', name='palm', type='box', size=(0.02, 0.06, 0.01),
              pos=(0, 0, 0.055), mass=0.3, rgba=(0.3, 0.3, 0.3, 1))
  gripper.add('geom', name='wrist', type='cylinder', size=(0.015, 0.05),
              pos=(0, 0, 0.115), mass=0.1, rgba=(0.5, 0.5, 0.5, 1),
              contype=0, conaffinity=0)
  for side, sign in (('left', 1), ('right', -1)):
    finger = gripper.add('body', name=f'finger_{side}', gravcomp=1)
    finger.add('joint', name=f'finger_{side}', type='slide', axis=(0, sign, 0),
               range=(0, FINGER_MAX_OPENING), limited=True, damping=40, armature=0.01)
    finger.add('geom', name=f'pad_{side}', type='box', size=(0.011, 0.005, 0.022),
               pos=(0, sign * 0.005, 0.022), mass=0.05, friction=(1.5, 0.01, 0.001),
               rgba=(0.8, 0.8, 0.8, 1), condim=4)
    root.actuator.add('position', name=f'finger_{side}', joint=f'finger_{side}',
                      kp=400, ctrlrange=(0, FINGER_MAX_OPENING), forcerange=(-12, 12))
  root.contact.add('exclude', body1='finger_left', body2='finger_right')
  for axis_name in 'xyz':
    root.actuator.add('velocity', name=f'v{axis_name}', joint=f'slide_{axis_name}', kv=40,
                      ctrlrange=(-specs.MAX_LINEAR_SPEED, specs.MAX_LINEAR_SPEED),
                      forcerange=(-40, 40))
  root.actuator.add('velocity', name='vyaw', joint='yaw', kv=0.5,
                    ctrlrange=(-specs.MAX_YAW_SPEED, specs.MAX_YAW_SPEED),
                    forcerange=(-2, 2))


def _add_basket(root: mjcf.RootElement) -> None:
  root.worldbody.add('geom', name='ground', type='plane', size=(1, 1, 0.1),
                     rgba=(0.55, 0.5, 0.45, 1))
  cx, cy = BASKET_CENTER
  hx, hy = BASKET_HALF_SIZE
  t = 0.01
  walls = {
      'wall_front': ((cx + hx + t, cy, WALL_HEIGHT / 2), (t, hy + 2 * t, WALL_HEIGHT / 2)),
      'wall_back': ((cx - hx - t, cy, WALL_HEIGHT / 2), (t, hy + 2 * t, WALL_HEIGHT / 2)),
      'wall_left': ((cx, cy + hy + t, WALL_HEIGHT / 2), (hx, t, WALL_HEIGHT / 2)),
      'wall_right': ((cx, cy - hy - t, WALL_HEIGHT / 2), (hx, t, WALL_HEIGHT / 2)),
  }
  for name, (pos, size) in walls.items():
    root.worldbody.add('geom', name=name, type='box', pos=pos, size=size,
                       rgba=(0.35, 0.35, 0.4, 1))


def _add_cameras(root: mjcf.RootElement) -> None:
  # Two basket cameras facing the robot from the front-left and front-right.
  target = root.worldbody.add('body', name='camera_target',
                              pos=(BASKET_CENTER[0], BASKET_CENTER[1], 0.03))
  del target
  for name, y in zip(specs.CAMERA_NAMES, (0.3, -0.3)):
    root.worldbody.add('camera', name=name, pos=(0.95, y, 0.3), mode='targetbody',
                       target='camera_target', fovy=55)
  root.worldbody.add('light', name='light', pos=(0.6, 0, 1.5), dir=(0, 0, -1),
                     directional=True, castshadow=False, diffuse=(0.8, 0.8, 0.8))


def build_model(triplet: Triplet) -> tuple[mujoco.MjModel, SceneIndex]:
  root = mjcf.RootElement(model='rgb_stacking_lite')
  root.option.timestep = PHYSICS_TIMESTEP
  root.option.cone = 'elliptic'
  # Elliptic cones with impratio > 1 keep pinched objects from slipping
  # (FIELD-NOTES); 5 holds the grasps as 10 did (Table I within noise) and
  # steps 14 % faster (env 1.1.0).
  root.option.impratio = 5
  root.compiler.angle = 'radian'
  _cheap_visuals(root)
  _add_basket(root)
  _add_gripper(root)
  _add_cameras(root)
  for name, obj_id in zip(OBJECT_NAMES, triplet.ids):
    # `color` matters for ids like s0, which are red, green or blue by role.
    prop = rgb_object.RgbObjectProp(obj_id=obj_id, name=name, color=COLORS[name])
    frame = root.attach(prop.mjcf_model)
    frame.add('freejoint', name=f'{name}_joint')
  xml = root.to_xml_string()
  model = mujoco.MjModel.from_xml_string(xml, root.get_assets())
  return model, _index(model)


def _index(model: mujoco.MjModel) -> SceneIndex:
  def jnt(name):
    return model.joint(name)

  gripper_joints = [jnt(n) for n in ('slide_x', 'slide_y', 'slide_z', 'yaw')]
  finger_joints = [jnt(n) for n in ('finger_left', 'finger_right')]
  obj_joints = [jnt(f'{n}/{n}_joint/') for n in OBJECT_NAMES]
  bodies = [model.body(f'{n}/').id for n in OBJECT_NAMES]
  object_geoms = tuple(
      np.array([g for g in range(model.ngeom)
                if model.geom_bodyid[g] == b and model.geom_contype[g]], dtype=int)
      for b in bodies)
  gripper_bodies = {model.body(n).id for n in ('gripper', 'finger_left', 'finger_right')}
  gripper_geoms = np.array(
      [g for g in range(model.ngeom) if model.geom_bodyid[g] in gripper_bodies], dtype=int)
  # StackingEnv writes ctrl by position; fail loudly if the layout drifts.
  actuators = tuple(model.actuator(i).name for i in range(model.nu))
  assert actuators == ACTUATOR_ORDER, actuators
  return SceneIndex(
      gripper_qpos=np.array([j.qposadr[0] for j in gripper_joints]),
      gripper_qvel=np.array([j.dofadr[0] for j in gripper_joints]),
      finger_qpos=np.array([j.qposadr[0] for j in finger_joints]),
      object_qpos=tuple(int(j.qposadr[0]) for j in obj_joints),
      object_qvel=tuple(int(j.dofadr[0]) for j in obj_joints),
      object_body=tuple(bodies),
      object_geoms=object_geoms,
      gripper_geoms=gripper_geoms,
      ground_geoms=np.array([model.geom('ground').id]),
      tcp_site=model.site('tcp').id,
  )
