"""The stacking task: specs, determinism, reward conditions, errors."""

import mujoco
import numpy as np
import pytest

import envs
from envs import scene
from envs import specs
from envs.stacking import StackingEnv


@pytest.fixture(scope='module')
def env():
  e = envs.make_env('triplet1', seed=0)
  yield e
  e.close()


def _run(env, seed, actions):
  env.reseed(seed)
  out = [env.reset()]
  for a in actions:
    out.append(env.step(a))
  return out


def test_specs_state_and_vision():
  for mode in ('state', 'vision'):
    e = envs.make_env('triplet2', obs_mode=mode, image_size=32, episode_steps=3)
    ts = e.reset()
    assert set(ts.observation) == set(e.observation_spec())
    for key, spec in e.observation_spec().items():
      assert ts.observation[key].shape == spec.shape, key
      assert ts.observation[key].dtype == spec.dtype, key
    assert ts.observation['proprio'].dtype == np.float32
    if mode == 'vision':
      assert ts.observation['camera_left'].shape == (32, 32, 3)
      assert ts.observation['camera_left'].std() > 0  # a real image, not a blank buffer
    ts = e.step(np.zeros(specs.ACTION_DIM))
    assert ts.reward.dtype == np.float32 and ts.discount.dtype == np.float32
    e.close()
  spec = specs.action_spec()
  assert spec.shape == (5,) and np.all(spec.minimum == -1) and np.all(spec.maximum == 1)


def test_same_seed_same_episode_bit_for_bit(env):
  rng = np.random.default_rng(1)
  actions = rng.uniform(-1, 1, (40, specs.ACTION_DIM))
  a = _run(env, 123, actions)
  b = _run(env, 123, actions)
  c = _run(env, 124, actions)
  for x, y in zip(a, b):
    for k in x.observation:
      np.testing.assert_array_equal(x.observation[k], y.observation[k])
    assert x.reward == y.reward
  assert not np.array_equal(a[0].observation['object_poses'], c[0].observation['object_poses'])


def test_fixed_length_episode_ends_in_truncation():
  e = envs.make_env('triplet1', episode_steps=5)
  ts = e.reset()
  steps = 0
  while not ts.last():
    ts = e.step(np.zeros(5))
    steps += 1
  assert steps == 5 and ts.discount == 1.0
  assert e.step(np.zeros(5)).first()  # auto-reset after the last step


def test_objects_start_in_the_workspace(env):
  for seed in range(5):
    env.reseed(seed)
    poses = env.reset().observation['object_poses'].reshape(3, 7)
    assert np.all((poses[:, 0] > 0.45) & (poses[:, 0] < 0.75)), poses
    assert np.all(np.abs(poses[:, 1]) < 0.15), poses
    assert np.all(poses[:, 2] < 0.1)  # dropped from 0.12 m and settled


def _place(env: StackingEnv, k: int, xyz, yaw=0.0):
  adr = env.index.object_qpos[k]
  base = env.model.body_quat[env.index.object_body[k]]
  quat = np.empty(4)
  mujoco.mju_mulQuat(quat, np.array([np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]), base)
  env.data.qpos[adr:adr + 3] = xyz
  env.data.qpos[adr + 3:adr + 7] = quat
  env.data.qvel[env.index.object_qvel[k]:env.index.object_qvel[k] + 6] = 0


def _settle(env, seconds=1.0, gripper_action=-1.0):
  mujoco.mj_forward(env.model, env.data)
  for _ in range(int(seconds * specs.CONTROL_HZ)):
    env.step(np.array([0, 0, 0, 0, gripper_action]))


def _bottom_offset(env, k):
  """Height of object k's centre above its lowest point at rest."""
  from envs.teachers import object_vertices  # pylint: disable=g-import-not-at-top
  verts = object_vertices(env.triplet)[k]
  base = env.model.body_quat[env.index.object_body[k]]
  rot = np.empty(9)
  mujoco.mju_quat2Mat(rot, base)
  return -(verts @ rot.reshape(3, 3).T)[:, 2].min()


@pytest.fixture
def clean_env():
  e = envs.make_env('triplet4', seed=0, episode_steps=10_000)  # red s0 cube on blue b6
  e.reset()
  # Park the gripper high and out of the way.
  e.data.qpos[e.index.gripper_qpos[:3]] = (-0.2, 0.2, 0.1)
  yield e
  e.close()


def test_reward_stacked(clean_env):
  e = clean_env
  _place(e, 1, (0.5, 0.15, 0.05))
  _place(e, 2, (0.6, 0.0, _bottom_offset(e, 2) + 0.001))
  blue_top = 2 * _bottom_offset(e, 2)
  _place(e, 0, (0.6, 0.0, blue_top + _bottom_offset(e, 0) + 0.002))
  _settle(e)
  assert e.success
  assert e.step(np.zeros(5)).reward == 1.0


def test_reward_not_touching(clean_env):
  e = clean_env
  _place(e, 1, (0.5, 0.15, 0.05))
  _place(e, 2, (0.6, 0.0, _bottom_offset(e, 2) + 0.001))
  _place(e, 0, (0.68, 0.0, _bottom_offset(e, 0) + 0.001))  # beside blue, on the ground
  _settle(e)
  c = e.contacts()
  assert c.red_ground and not c.red_blue
  assert not e.success and e.step(np.zeros(5)).reward == 0.0


def test_reward_gripper_holding_red_over_blue(clean_env):
  e = clean_env
  _place(e, 1, (0.5, 0.15, 0.05))
  _place(e, 2, (0.6, 0.0, _bottom_offset(e, 2) + 0.001))
  blue_top = 2 * _bottom_offset(e, 2)
  red_z = blue_top + _bottom_offset(e, 0) + 0.002
  _place(e, 0, (0.6, 0.0, red_z))
  # Gripper around red, fingers closing: stacked geometry, but held.
  e.data.qpos[e.index.gripper_qpos] = (0.0, 0.0, red_z - 0.015 - scene.GRIPPER_HOME[2], 0.0)
  _settle(e, 0.5, gripper_action=1.0)
  c = e.contacts()
  assert c.red_gripper and c.red_pads == 2
  assert not e.success
  assert e.step(np.array([0, 0, 0, 0, 1.0])).reward == 0.0
  # Release: the gripper opens and backs off, and the stack now counts.
  for _ in range(10):
    e.step(np.array([0, 0, 0.6, 0, -1.0]))
  _settle(e, 0.5)
  assert e.success


def test_shaped_reward_is_staged():
  e = envs.make_env('triplet1', reward='shaped', episode_steps=3)
  ts = e.reset()
  r = e.step(np.zeros(5)).reward
  assert 0.0 < r < 1.0  # reach term only: nothing grasped yet
  with pytest.raises(ValueError, match='sparse, shaped'):
    envs.make_env(reward='dense')


@pytest.mark.parametrize('action, match', [
    (np.zeros(4), r'shape \(5,\)'),
    (np.array([0, 0, np.nan, 0, 0]), 'NaN'),
    (np.array([0, 0, np.inf, 0, 0]), 'NaN or Inf'),
])
def test_bad_actions_raise(env, action, match):
  env.reset()
  with pytest.raises(ValueError, match=match):
    env.step(action)


def test_bad_names_raise_with_choices():
  with pytest.raises(ValueError, match='triplet1, triplet2'):
    envs.get_triplet('triplet9')
  with pytest.raises(ValueError, match='valid ids'):
    envs.get_triplet('r3,zz9,b2')
  with pytest.raises(ValueError, match='state, vision'):
    envs.make_env(obs_mode='depth')
  assert envs.get_triplet('r3,s0,b2').ids == envs.get_triplet('triplet1').ids
