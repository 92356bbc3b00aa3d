"""Known answers for the networks: the state features, the actor's numpy policy, the critic."""

import numpy as np
import pytest
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


def _random_weights(module, seed=0):
  # The head starts near zero (tiny init); random weights exercise every layer.
  rng = np.random.default_rng(seed)
  for v in module.variables:
    v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))


def test_numpy_state_features_hand_computed_and_equal_to_tf():
  proprio, poses = _observation()
  np.testing.assert_allclose(networks._numpy_state_features(proprio, poses),  # pylint: disable=protected-access
                             networks.state_features(proprio, poses).numpy(), atol=1e-6)
  rng = np.random.default_rng(1)
  proprio, poses = rng.normal(size=(4, 2) + proprio.shape[1:]), rng.normal(size=(4, 2) + poses.shape[1:])
  np.testing.assert_allclose(networks._numpy_state_features(proprio, poses),  # pylint: disable=protected-access
                             networks.state_features(proprio, poses).numpy(), atol=1e-5)


def test_numpy_state_policy_equals_the_module_once_synced():
  policy = networks.GaussianPolicy('state', networks.NetworkConfig())
  policy(networks.dummy_observation('state', specs.DEFAULT_IMAGE_SIZE))
  _random_weights(policy)
  fast = networks.NumpyStatePolicy(policy)
  rng = np.random.default_rng(0)
  obs = {k: rng.normal(size=(5,) + s.shape) for k, s in specs.observation_spec('state').items()}

  def module():
    mean, stddev = policy({k: tf.constant(obs[k], tf.float32) for k in ('proprio', 'object_poses')})
    return mean.numpy(), stddev.numpy()

  mean, stddev = module()
  assert np.std(mean) > 0.1 and np.std(stddev) > 0.01  # Not saturated, not constant.
  np.testing.assert_allclose(fast(obs).mean, mean, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(fast(obs).stddev, stddev, rtol=1e-4, atol=1e-5)
  _random_weights(policy, seed=1)
  assert not np.allclose(fast(obs).mean, module()[0], atol=1e-3)  # A copy until synced.
  fast.sync()
  np.testing.assert_allclose(fast(obs).mean, module()[0], rtol=1e-4, atol=1e-5)


def test_learner_actor_calls_follow_its_steps_and_restores(tmp_path):
  from learners import learner as learner_lib  # pylint: disable=g-import-not-at-top
  import learner_fixtures  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  config = learner_lib.LearnerConfig(nets=learner_fixtures.SMALL_NETS, policy_learning_rate=0.05)
  learner = learner_lib.Learner('BC', config, workdir=str(tmp_path))
  obs = learner_fixtures.observations(rng, 3)

  def same():
    fast, tf_call = learner.actor_distribution(obs), learner.distribution(obs)
    np.testing.assert_allclose(fast.mean, tf_call.mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast.stddev, tf_call.stddev, rtol=1e-4, atol=1e-5)
    return fast.mean

  before = same()
  learner.save()
  learner.step(learner_fixtures.random_batch(rng, 16, offline_fraction=1.0))
  assert not np.allclose(same(), before, atol=1e-4)  # The copy followed the step.
  learner.restore()
  np.testing.assert_allclose(same(), before, rtol=1e-4, atol=1e-5)  # And the restore.


@pytest.mark.parametrize('torso', [(32,), (32, 16)])
def test_critic_scores_actions_from_one_embedding_as_the_concatenated_layer(torso):
  config = networks.NetworkConfig(encoder_size=24, critic_torso=torso, num_atoms=5)
  critic = networks.CategoricalCritic('state', config)
  rng = np.random.default_rng(0)
  proprio, poses = _observation()
  observation = {'proprio': np.repeat(proprio, 3, 0) + rng.normal(size=(3, proprio.shape[1])),
                 'object_poses': np.repeat(poses, 3, 0)}
  observation = {k: tf.constant(v, tf.float32) for k, v in observation.items()}
  actions = tf.constant(rng.uniform(-1, 1, (4, 3, specs.ACTION_DIM)), tf.float32)
  built = critic(observation, actions[0])  # The first call builds the module.
  for layer in critic._head, *critic._torso._layers:  # Non-trivial biases and head.
    layer.b.assign(rng.normal(size=layer.b.shape))
    layer.w.assign(rng.normal(size=layer.w.shape) * 0.3)
  embedding = critic.embed(observation)
  split = critic.logits_from_embedding(embedding, actions).numpy()
  concat = np.stack([critic(observation, a).numpy() for a in actions])
  assert split.shape == concat.shape == (4, 3, 5) and built.shape == (3, 5)
  np.testing.assert_allclose(split, concat, rtol=1e-5, atol=1e-5)
  # And by hand for one action: the first layer on [embedding, action].
  x = np.concatenate([embedding.numpy()[1], actions.numpy()[2, 1]])
  layers = critic._torso._layers
  h = x
  for layer in layers:
    h = h @ layer.w.numpy() + layer.b.numpy()
    h = np.where(h > 0, h, np.expm1(np.minimum(h, 0)))  # ELU
  expected = h @ critic._head.w.numpy() + critic._head.b.numpy()
  np.testing.assert_allclose(split[2, 1], expected, rtol=1e-4, atol=1e-4)


def test_policy_stddev_floor_hand_computed():
  # Zero weights: both logits are 0, so stddev = softplus(0) * init / log 2 + floor
  # = init + floor, in the module and in the actor's numpy copy.
  policy = networks.GaussianPolicy('state', networks.NetworkConfig(min_stddev=0.25))
  policy(networks.dummy_observation('state', specs.DEFAULT_IMAGE_SIZE))
  for v in policy.trainable_variables:
    v.assign(tf.zeros_like(v))
  proprio, poses = _observation()
  mean, stddev = policy({'proprio': tf.constant(proprio), 'object_poses': tf.constant(poses)})
  np.testing.assert_allclose(mean.numpy(), 0.0, atol=1e-7)
  np.testing.assert_allclose(stddev.numpy(), 0.3 + 0.25, rtol=1e-6)
  fast = networks.NumpyStatePolicy(policy)
  np.testing.assert_allclose(fast({'proprio': proprio, 'object_poses': poses}).stddev,
                             0.3 + 0.25, rtol=1e-5)
