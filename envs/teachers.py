"""Teachers: neural policies distilled from a scripted oracle, the oracles, and any SavedModel.

The built-in teachers `mastery` and `generalization` are networks shipped as
TF SavedModels under `envs/teacher_models/` (each with a `card.json`: recipe,
rebuild command, measured success), trained by DAgger from the scripted
`oracle` (`python -m learners.training.distill_teacher`), as the paper's and
the RGB-stacking benchmark's teachers are.  A network is a function a student
can represent; the scripted controller's action is a discontinuous function of
the state, which a Gaussian MLP student clones badly.

The scripted controllers stay selectable as teachers.  Each reads only the
privileged state (`proprio`, `object_poses`) of one observation; its phase
(approach, grasp, carry, place, retreat) is inferred from that state, never
remembered, so the same observation always gives the same action distribution
and any logged step can be relabelled.  Everything is vectorised over a
leading batch axis: learners relabel whole batches at once.  `oracle` knows
the object meshes (it grasps across the narrowest side of red's footprint and
lowers red until it rests on blue) and has no blind spot; `scripted-mastery`
and `scripted-generalization` are the teachers of env 1.x: the same controller
with a *blind spot*, a fraction of blue's orientations in which it misjudges
blue's centre, calibrated so deterministic success sat near Table I.  All add
Gaussian action noise in `stochastic` mode; evaluation uses the mean
(`deterministic`).
"""

import dataclasses
import functools
import os
from typing import Mapping

import mujoco
import numpy as np

from envs import scene
from envs import specs
from envs.policy import GaussianAction, call_unbatched
from envs.triplets import Triplet, get_triplet

NEURAL_TEACHERS = ('mastery', 'generalization')
ORACLE = 'oracle'
SCRIPTED_TEACHERS = (ORACLE, 'scripted-mastery', 'scripted-generalization')
TEACHER_NAMES = NEURAL_TEACHERS + SCRIPTED_TEACHERS
CARD_FILE = 'card.json'
_MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'teacher_models')

_NUM_YAW_CANDIDATES = 18
_BLIND_SECTORS = 5
_MISJUDGEMENT = 0.06


@dataclasses.dataclass(frozen=True)
class ScriptedTeacherConfig:
  """Knobs of the scripted controller (all distances in metres)."""
  stddev: float = 0.15      # action noise in stochastic mode (action units)
  # Fraction of blue orientations the teacher misjudges, per triplet name;
  # `default_blind_spot` for custom triplets.
  blind_spot: Mapping[str, float] = dataclasses.field(default_factory=dict)
  default_blind_spot: float = 0.2
  gain: float = 8.0         # proportional gain, 1/s
  xy_tolerance: float = 0.008
  yaw_tolerance: float = 0.12
  z_tolerance: float = 0.008
  hover: float = 0.06       # clearance above the objects while moving
  release_clearance: float = 0.006


TEACHER_CONFIGS = {
    # The privileged controller the neural teachers are distilled from.
    ORACLE: ScriptedTeacherConfig(stddev=0.15, default_blind_spot=0.0),
    # Blind-spot fractions calibrated so deterministic success landed near the
    # paper's Table I (env 1.x); docs/teachers.md has the measured table.
    'scripted-mastery': ScriptedTeacherConfig(stddev=0.15, default_blind_spot=0.2, blind_spot={
        'triplet1': 0.14, 'triplet2': 0.30, 'triplet3': 0.10, 'triplet4': 0.19,
        'triplet5': 0.08}),
    'scripted-generalization': ScriptedTeacherConfig(
        stddev=0.2, default_blind_spot=0.5, blind_spot={
            'triplet1': 0.53, 'triplet2': 0.47, 'triplet3': 0.66, 'triplet4': 0.13,
            'triplet5': 0.13}),
}


@functools.lru_cache(maxsize=None)
def object_vertices(triplet: Triplet) -> tuple:
  """Collision-mesh vertices of (red, green, blue) in each object's body frame."""
  model, index = scene.build_model(triplet)
  verts = []
  for geoms in index.object_geoms:
    pts = []
    for g in geoms:
      mesh = model.geom_dataid[g]
      v = model.mesh_vert[model.mesh_vertadr[mesh]:model.mesh_vertadr[mesh] + model.mesh_vertnum[mesh]]
      rot = np.empty(9)
      mujoco.mju_quat2Mat(rot, model.geom_quat[g])
      pts.append(v @ rot.reshape(3, 3).T + model.geom_pos[g])
    verts.append(np.concatenate(pts).astype(np.float64))
  return tuple(verts)


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
  """(B, 4) wxyz quaternions -> (B, 3, 3) rotation matrices."""
  q = q / np.linalg.norm(q, axis=-1, keepdims=True)
  w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
  return np.stack([
      np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
      np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
      np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
  ], axis=1)


def _world_vertices(local: np.ndarray, pose: np.ndarray) -> np.ndarray:
  """local (V, 3), pose (B, 7) -> (B, V, 3)."""
  rot = _quat_to_mat(pose[:, 3:])
  return np.einsum('bij,vj->bvi', rot, local) + pose[:, None, :3]


def _wrap(angle: np.ndarray) -> np.ndarray:
  return (angle + np.pi) % (2 * np.pi) - np.pi


def _on_batch(observation: Mapping[str, np.ndarray], dtype, fn) -> GaussianAction:
  """Calls fn(proprio, object_poses) -> (mean, stddev) on a batch, batching one observation."""
  proprio = np.asarray(observation['proprio'], dtype)
  poses = np.asarray(observation['object_poses'], dtype)
  if proprio.ndim == 1:
    return call_unbatched(lambda batch: _on_batch(batch, dtype, fn),
                          dict(proprio=proprio, object_poses=poses))
  mean, stddev = (np.asarray(x, np.float32) for x in fn(proprio, poses))
  return GaussianAction(mean, stddev)


class ScriptedTeacher:
  """A Markov grasp-lift-place controller; see the module docstring."""

  def __init__(self, name: str, triplet, config: ScriptedTeacherConfig = None):
    if name not in TEACHER_CONFIGS and config is None:
      raise ValueError(_unknown(name))
    self.name = name
    self.triplet = get_triplet(triplet)
    self.config = config or TEACHER_CONFIGS[name]
    self._red_local, _, self._blue_local = object_vertices(self.triplet)
    self._blind_spot = self.config.blind_spot.get(self.triplet.name, self.config.default_blind_spot)

  def distribution(self, observation: Mapping[str, np.ndarray]) -> GaussianAction:
    def gaussian(proprio, poses):
      mean = self._mean_action(proprio, poses)
      return mean, np.full_like(mean, self.config.stddev)
    return _on_batch(observation, np.float64, gaussian)

  # The controller, one vectorised pass over the batch.
  def _mean_action(self, proprio: np.ndarray, poses: np.ndarray) -> np.ndarray:
    cfg = self.config
    tcp = proprio[:, :3]
    yaw = np.arctan2(proprio[:, 3], proprio[:, 4])
    opening = proprio[:, 5]
    red_pose, blue_pose = poses[:, 0:7], poses[:, 14:21]
    red_v = _world_vertices(self._red_local, red_pose)
    blue_v = _world_vertices(self._blue_local, blue_pose)
    red_xy = red_v[..., :2].mean(1)
    blue_xy = blue_v[..., :2].mean(1) + self._blue_misjudgement(blue_pose)
    red_bottom, red_top = red_v[..., 2].min(1), red_v[..., 2].max(1)
    blue_top = blue_v[..., 2].max(1)

    grasp_yaw, grasp_width = self._grasp_yaw(red_v, red_xy, yaw)
    grasp_z = np.maximum(red_bottom + 0.012, red_top - 0.035)

    # Where is the episode?  Inferred from the state alone.
    xy_to_red = np.linalg.norm(tcp[:, :2] - red_xy, axis=1)
    near_red = (xy_to_red < 0.02) & (np.abs(tcp[:, 2] - grasp_z) < 0.03)
    # The pads stopped on the object: closed to about its width, not to zero.
    holding = near_red & (opening < grasp_width + 0.012) & (opening > 0.25 * grasp_width)
    red_xy_to_blue = np.linalg.norm(red_xy - blue_xy, axis=1)
    stacked = (red_xy_to_blue < 0.03) & (red_bottom > blue_top - 0.015) & ~holding
    carrying = holding

    target = tcp.copy()
    target_yaw = yaw.copy()
    gripper = np.full(len(tcp), -1.0)  # open

    # 1. Approach and grasp red.
    safe_z = np.maximum(red_top, blue_top) + cfg.hover
    aligned_xy = xy_to_red < cfg.xy_tolerance
    aligned_yaw = np.abs(_wrap(2 * (yaw - grasp_yaw))) / 2 < cfg.yaw_tolerance
    far = xy_to_red > 0.02
    approach = ~holding & ~stacked
    # Far away: go up first, then across, so the fingers sweep nothing over.
    rising = approach & far & (tcp[:, 2] < safe_z - 0.02)
    target[rising, 2] = safe_z[rising]
    across = approach & far & ~rising
    target[across, :2] = red_xy[across]
    target[across, 2] = safe_z[across]
    target_yaw[approach] = grasp_yaw[approach]
    descend = approach & ~far
    target[descend, :2] = red_xy[descend]
    target[descend, 2] = np.where(aligned_xy[descend] & aligned_yaw[descend],
                                  grasp_z[descend], tcp[descend, 2])
    at_grasp = descend & aligned_xy & (np.abs(tcp[:, 2] - grasp_z) < cfg.z_tolerance)
    closing = at_grasp | (descend & (opening < 2 * scene.FINGER_MAX_OPENING - 0.01)
                          & (np.abs(tcp[:, 2] - grasp_z) < cfg.z_tolerance))
    gripper[closing] = 1.0
    target[closing, 2] = grasp_z[closing]

    # 2. Carry red over blue and lower it until it rests on blue.
    tcp_to_red_bottom = tcp[:, 2] - red_bottom
    place_z = blue_top + cfg.release_clearance + tcp_to_red_bottom
    carry_z = blue_top + cfg.hover + tcp_to_red_bottom
    xy_to_blue = np.linalg.norm(red_xy - blue_xy, axis=1)
    over_blue = xy_to_blue < cfg.xy_tolerance
    gripper[carrying] = 1.0
    lift = carrying & ~over_blue & (red_bottom < blue_top + 0.02)
    target[lift, 2] = carry_z[lift] + 0.01
    move = carrying & ~over_blue & ~lift
    target[move, :2] = tcp[move, :2] + (blue_xy[move] - red_xy[move])
    target[move, 2] = carry_z[move]
    lower = carrying & over_blue
    target[lower, :2] = tcp[lower, :2] + (blue_xy[lower] - red_xy[lower])
    target[lower, 2] = place_z[lower]
    release = lower & (red_bottom < blue_top + cfg.release_clearance + 0.006)
    gripper[release] = -1.0

    # 3. Stacked: let go and back off upwards.
    target[stacked, 2] = red_top[stacked] + cfg.hover
    target[stacked, :2] = tcp[stacked, :2]

    velocity = cfg.gain * (target - tcp) / specs.MAX_LINEAR_SPEED
    yaw_rate = cfg.gain * _wrap(target_yaw - yaw) / specs.MAX_YAW_SPEED
    action = np.concatenate([velocity, yaw_rate[:, None], gripper[:, None]], axis=1)
    return np.clip(action, -1.0, 1.0)

  def _grasp_yaw(self, red_v, red_xy, yaw):
    """Gripper yaw putting the finger axis across the narrowest footprint side."""
    angles = np.linspace(0, np.pi, _NUM_YAW_CANDIDATES, endpoint=False)
    # Fingers close along the gripper's local y axis: (-sin psi, cos psi).
    axes = np.stack([-np.sin(angles), np.cos(angles)], -1)  # (K, 2)
    proj = np.einsum('bvi,ki->bkv', red_v[..., :2] - red_xy[:, None], axes)
    widths = proj.max(-1) - proj.min(-1)  # (B, K)
    # Prefer the candidate nearest the current yaw among near-equal widths
    # (square sections), else the target flips and the gripper dithers.
    turn = np.abs(_wrap(2 * (angles[None] - yaw[:, None]))) / 2
    k = np.argmin(widths + 0.01 * turn, axis=1)
    width = widths[np.arange(len(k)), k]
    # The gripper is symmetric under a half turn: pick the nearest equivalent.
    best = yaw + _wrap(2 * (angles[k] - yaw)) / 2
    return best, width

  def _blue_misjudgement(self, blue_pose: np.ndarray) -> np.ndarray:
    """Where the teacher wrongly believes blue's centre is, relative to the truth.

    Seen from `_BLIND_SECTORS` bands of orientations (a fraction `blind_spot`
    of all yaws), the teacher misjudges blue's centre by `_MISJUDGEMENT` along
    the object's x axis and places red beside it.  The error is a function of
    the observed state only (Markov), systematic (retries fail the same way),
    and learnable: a student that fits the successful placements elsewhere can
    do better than its teacher there.
    """
    rot = _quat_to_mat(blue_pose[:, 3:])
    x_axis = rot[:, :2, 0]
    heading = np.arctan2(x_axis[:, 1], x_axis[:, 0])
    sector = 2 * np.pi / _BLIND_SECTORS
    blind = np.mod(heading, sector) < self._blind_spot * sector
    direction = x_axis / np.maximum(np.linalg.norm(x_axis, axis=1, keepdims=True), 1e-6)
    return np.where(blind[:, None], _MISJUDGEMENT * direction, 0.0)


def shipped_model_path(name: str) -> str:
  """Where the shipped SavedModel of neural teacher `name` lives."""
  return os.path.join(_MODELS_DIR, name)


def rebuild_command(name: str) -> str:
  return f'python -m learners.training.distill_teacher --teacher {name}'


def _unknown(name: str) -> str:
  return (f'Unknown teacher {name!r}; valid choices: {", ".join(TEACHER_NAMES)}, '
          'or a path to a TF SavedModel policy.')


# What `distribution` must accept and return: (name, last dimension).
_INPUTS = (('proprio', specs.PROPRIO_DIM), ('object_poses', specs.OBJECT_POSES_DIM))
_OUTPUTS = (('mean', specs.ACTION_DIM), ('stddev', specs.ACTION_DIM))


class SavedModelTeacher:
  """A teacher loaded from a TF SavedModel: distribution(proprio, object_poses) -> (mean, stddev).

  `function` is the model's own `distribution` (a TF function): learners call
  it inside their compiled step, so relabelling a batch costs no numpy round trip.
  """

  def __init__(self, path: str, name: str = None, rebuild: str = None):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self.name = name or path
    self.path = path
    hint = (f' Rebuild it with: {rebuild}' if rebuild else
            ' A teacher is one of ' + ', '.join(TEACHER_NAMES) + ' or a SavedModel directory.')
    if not os.path.isdir(path):
      raise ValueError(f'No teacher SavedModel at {path!r}.{hint}')
    try:
      self._model = tf.saved_model.load(path)
    except (OSError, ValueError) as e:
      raise ValueError(f'Could not load a teacher SavedModel from {path!r}: {e}.{hint}') from e
    if not hasattr(self._model, 'distribution'):
      raise ValueError(f'SavedModel at {path!r} has no `distribution` function; it must '
                       'export distribution(proprio, object_poses) -> (mean, stddev).')
    self.function = self._model.distribution
    _check_signature(path, self.function)

  def distribution(self, observation: Mapping[str, np.ndarray]) -> GaussianAction:
    return _on_batch(observation, np.float32, self.function)


def _check_signature(path: str, function) -> None:
  """Calls `function` on a zero batch and names the input or output that does not fit."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  args = [tf.zeros([2, dim], tf.float32) for _, dim in _INPUTS]
  try:
    outputs = function(*args)
  except (TypeError, ValueError, tf.errors.InvalidArgumentError) as e:
    expected = ', '.join(f'{n}: float32 [batch, {d}]' for n, d in _INPUTS)
    raise ValueError(f'Teacher SavedModel at {path!r}: `distribution` does not accept '
                     f'the inputs ({expected}): {e}') from e
  if not isinstance(outputs, (tuple, list)) or len(outputs) != len(_OUTPUTS):
    raise ValueError(f'Teacher SavedModel at {path!r}: `distribution` must return '
                     f'(mean, stddev), got {type(outputs).__name__}.')
  for (name, dim), out in zip(_OUTPUTS, outputs):
    if tuple(out.shape) != (2, dim):
      raise ValueError(f'Teacher SavedModel at {path!r}: output `{name}` has shape '
                       f'{tuple(out.shape)} for a batch of 2; expected (2, {dim}).')


def make_teacher(name: str, triplet='triplet1'):
  """A teacher by name (neural, scripted or oracle), or a SavedModel teacher by directory path."""
  if name in NEURAL_TEACHERS:
    return SavedModelTeacher(shipped_model_path(name), name=name, rebuild=rebuild_command(name))
  if name in TEACHER_CONFIGS:
    return ScriptedTeacher(name, triplet)
  if '/' in name or name.startswith('.'):
    return SavedModelTeacher(name)
  raise ValueError(_unknown(name))
