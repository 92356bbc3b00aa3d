"""Known answers for the state encoder's input features."""

import numpy as np
import tensorflow as tf

from envs import scene
from envs import specs
from learners import networks


def _observation():
  proprio = np.zeros((1, specs.PROPRIO_DIM), np.float32)
  proprio[0, 0:3] = (0.6, 0.0, 0.2)          # gripper: 1 scale unit above the centre
  proprio[0, 3:5] = (0.0, 1.0)               # yaw 0
  proprio[0, 5] = scene.FINGER_MAX_OPENING   # half open
  proprio[0, 6:10] = (specs.MAX_LINEAR_SPEED, 0.0, 0.0, -specs.MAX_YAW_SPEED)
  poses = np.zeros((1, specs.OBJECT_POSES_DIM), np.float32)
  for i, pos in enumerate([(0.65, 0.0, 0.1), (0.6, 0.1, 0.1), (0.6, 0.0, 0.15)]):
    poses[0, 7 * i:7 * i + 3] = pos
    poses[0, 7 * i + 3] = 1.0                # identity quaternion (w first)
  return proprio, poses


def test_state_features_hand_computed():
  proprio, poses = _observation()
  features = networks.state_features(proprio, poses).numpy()[0]
  expected = np.concatenate([
      [0.0, 0.0, 1.0],                        # gripper (x - centre) / 0.1 m
      [0.0, 1.0],                             # sin, cos yaw
      [0.0],                                  # opening / max per finger - 1
      [1.0, 0.0, 0.0, -1.0],                  # velocities / max speeds
      [0.5, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5],   # object positions
      [1, 0, 0, 0] * 3,                       # quaternions, unscaled
      [1.0, 0.0, -2.0], [0.0, 2.0, -2.0], [0.0, 0.0, -1.0],  # gripper -> objects / 5 cm
      [-1.0, 0.0, 1.0],                       # red -> blue / 5 cm
  ])
  np.testing.assert_allclose(features, expected, atol=1e-5)


def test_state_features_keep_leading_axes():
  proprio, poses = _observation()
  stacked = networks.state_features(np.stack([proprio] * 3), np.stack([poses] * 3)).numpy()
  assert stacked.shape == (3, 1, 43)
  np.testing.assert_allclose(stacked[2, 0], networks.state_features(proprio, poses).numpy()[0])


def test_numpy_distribution_equals_the_policy_for_any_batch_and_dtype():
  policy = networks.GaussianPolicy('state', networks.NetworkConfig(encoder_size=32,
                                                                   policy_torso=(32,)))
  policy(networks.dummy_observation('state', specs.DEFAULT_IMAGE_SIZE))  # Build it.
  rng = np.random.default_rng(0)
  obs = {k: rng.normal(size=(3,) + s.shape) for k, s in specs.observation_spec('state').items()}
  call = networks.numpy_distribution(policy, 'state', specs.DEFAULT_IMAGE_SIZE)
  dist = call(obs)  # float64 inputs, as an env may give them; extra keys are ignored.
  mean, stddev = policy({k: tf.constant(obs[k], tf.float32) for k in ('proprio', 'object_poses')})
  np.testing.assert_allclose(dist.mean, mean.numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(dist.stddev, stddev.numpy(), rtol=1e-5, atol=1e-6)
  one = call({k: v[:1] for k, v in obs.items()})
  assert one.mean.shape == (1, specs.ACTION_DIM)
