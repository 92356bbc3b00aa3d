"""Sonnet networks: observation encoders, Gaussian policy, categorical critic.

Both the policy and the critic own an encoder (no sharing), so BC/DAgger train
without a critic and the critic's TD gradients never move the policy's features.
The critic encodes a state once and scores many actions from the embedding, which
is what makes 20-sample MPO affordable with images.
"""

import dataclasses
import functools
from typing import Mapping, Sequence, Tuple

import numpy as np
import sonnet as snt
import tensorflow as tf
import threadpoolctl

from envs import policy as policy_lib
from envs import specs
from learners import distributional


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
  encoder_size: int = 256  # Encoder output (LayerNorm + tanh), first hidden layer.
  policy_torso: Sequence[int] = (256,)
  critic_torso: Sequence[int] = (256,)
  conv_channels: Sequence[int] = (16, 32, 32)  # Vision torso, stride 2 each.
  num_atoms: int = 51
  v_min: float = -50.0
  v_max: float = 150.0
  init_stddev: float = 0.3  # Policy stddev at initialisation.
  min_stddev: float = 1e-3


class LayerNormEncoder(snt.Module):
  """Linear -> LayerNorm -> tanh, as the first layer of Acme's LayerNormMLP."""

  def __init__(self, size: int, name: str = 'layer_norm_encoder'):
    super().__init__(name=name)
    self._linear = snt.Linear(size)
    self._norm = snt.LayerNorm(axis=-1, create_scale=True, create_offset=True)

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    return tf.tanh(self._norm(self._linear(x)))


# Fixed input scaling of the state features (task geometry, not data statistics,
# so online-only methods without a dataset scale the same way and runs stay
# reproducible).  Raw poses are metres over a ~0.5 m workspace while a grasp
# needs ~1 cm precision: unscaled, those differences are tiny at the input.
_WORKSPACE_CENTRE = (float(specs.GRIPPER_HOME[0]), float(specs.GRIPPER_HOME[1]), 0.1)
_POSITION_SCALE = 0.1  # m
_OFFSET_SCALE = 0.05   # m, for the relative offsets a grasp/place acts on.


def state_features(proprio: tf.Tensor, object_poses: tf.Tensor) -> tf.Tensor:
  """Scaled proprio and object poses, plus gripper->object and red->blue offsets.

  The offsets are what a stacking controller acts on; giving them to the
  encoder spares the first layer from learning differences of near-equal inputs.
  """
  proprio = tf.cast(proprio, tf.float32)
  poses = tf.reshape(tf.cast(object_poses, tf.float32),
                     tf.concat([tf.shape(object_poses)[:-1], [specs.NUM_OBJECTS, 7]], 0))
  centre = tf.constant(_WORKSPACE_CENTRE, tf.float32)
  gripper = proprio[..., 0:3]
  positions, quats = poses[..., 0:3], poses[..., 3:7]
  opening = proprio[..., 5:6] / specs.FINGER_MAX_OPENING - 1.0  # 2 fingers: [0, 2x].
  velocities = tf.concat([proprio[..., 6:9] / specs.MAX_LINEAR_SPEED,
                          proprio[..., 9:10] / specs.MAX_YAW_SPEED], -1)
  offsets = positions - gripper[..., None, :]
  red_to_blue = positions[..., 2, :] - positions[..., 0, :]
  flat = lambda x: tf.reshape(x, tf.concat([tf.shape(x)[:-2], [-1]], 0))
  return tf.concat([
      (gripper - centre) / _POSITION_SCALE, proprio[..., 3:5], opening, velocities,
      flat((positions - centre) / _POSITION_SCALE), flat(quats),
      flat(offsets) / _OFFSET_SCALE, red_to_blue / _OFFSET_SCALE], axis=-1)


class StateEncoder(snt.Module):
  """Embeds `state_features` of the state student keys with a LayerNorm MLP."""

  def __init__(self, size: int, name: str = 'state_encoder'):
    super().__init__(name=name)
    self._embed = LayerNormEncoder(size)

  def __call__(self, observation: Mapping[str, tf.Tensor]) -> tf.Tensor:
    return self._embed(state_features(observation['proprio'], observation['object_poses']))


class VisionEncoder(snt.Module):
  """One small conv torso shared by both cameras, plus proprio.

  Never reads `object_poses`: a vision student only sees its cameras and proprio.
  """

  def __init__(self, size: int, channels: Sequence[int], name: str = 'vision_encoder'):
    super().__init__(name=name)
    self._convs = [snt.Conv2D(c, kernel_shape=3, stride=2) for c in channels]
    self._embed = LayerNormEncoder(size)

  def _torso(self, images: tf.Tensor) -> tf.Tensor:
    x = tf.cast(images, tf.float32) / 255.0
    for conv in self._convs:
      x = tf.nn.relu(conv(x))
    return snt.Flatten()(x)

  def __call__(self, observation: Mapping[str, tf.Tensor]) -> tf.Tensor:
    cams = [observation[name] for name in specs.CAMERA_NAMES]
    # Both cameras through the torso as one batch: one conv call per layer.
    features = self._torso(tf.concat(cams, axis=0))
    per_camera = tf.split(features, len(cams), axis=0)
    proprio = tf.cast(observation['proprio'], tf.float32)
    return self._embed(tf.concat(per_camera + [proprio], axis=-1))


def make_encoder(obs_mode: str, config: NetworkConfig) -> snt.Module:
  specs.check_obs_mode(obs_mode)
  if obs_mode == 'state':
    return StateEncoder(config.encoder_size)
  return VisionEncoder(config.encoder_size, config.conv_channels)


class GaussianPolicy(snt.Module):
  """Diagonal Gaussian with a tanh-bounded mean.

  The distribution itself is an unsquashed Normal: the mean lies in (-1, 1) and
  the log-density of a dataset action at exactly +-1 stays finite (a tanh-squashed
  distribution would put it at -inf).  Sampled actions are clipped to [-1, 1].
  """

  def __init__(self, obs_mode: str, config: NetworkConfig, name: str = 'policy'):
    super().__init__(name=name)
    self._encoder = make_encoder(obs_mode, config)
    self._torso = snt.nets.MLP(list(config.policy_torso), activation=tf.nn.elu,
                               activate_final=True)
    self._head = snt.Linear(2 * specs.ACTION_DIM,
                            w_init=snt.initializers.VarianceScaling(1e-4))
    self._init_stddev = config.init_stddev
    self._min_stddev = config.min_stddev

  def __call__(self, observation: Mapping[str, tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
    out = self._head(self._torso(self._encoder(observation)))
    mean_logit, stddev_logit = tf.split(out, 2, axis=-1)
    # softplus(0) * scale / softplus(0) = init_stddev at initialisation.
    stddev = (tf.nn.softplus(stddev_logit) * (self._init_stddev / np.log(2.0))
              + self._min_stddev)
    return tf.tanh(mean_logit), stddev


class CategoricalCritic(snt.Module):
  """Distributional Q(s, a) over `num_atoms` fixed returns (C51 / Acme DMPO)."""

  def __init__(self, obs_mode: str, config: NetworkConfig, name: str = 'critic'):
    super().__init__(name=name)
    self._encoder = make_encoder(obs_mode, config)
    self._torso = snt.nets.MLP(list(config.critic_torso), activation=tf.nn.elu,
                               activate_final=True)
    self._head = snt.Linear(config.num_atoms, w_init=snt.initializers.VarianceScaling(1e-5))
    self.support = tf.constant(
        np.linspace(config.v_min, config.v_max, config.num_atoms), tf.float32)

  def embed(self, observation: Mapping[str, tf.Tensor]) -> tf.Tensor:
    return self._encoder(observation)

  def logits_from_embedding(self, embedding: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
    """Logits [N, B, atoms] for N actions per state, `actions` [N, B, A], from the
    states' `embedding` [B, E].

    The torso's first layer is linear in [embedding, action], so it runs as
    W_e embedding once per state plus W_a action per action: scoring N actions
    of a state costs one E x H product instead of N, most of the target critic's
    work in a step (MPO scores 20 prior samples, R-CRR 8).  Equal to the
    concatenated layer up to float rounding (a test holds them equal).
    """
    first, rest = self._torso._layers[0], self._torso._layers[1:]  # pylint: disable=protected-access
    size, lead = embedding.shape[-1], tf.shape(actions)[:-1]
    per_action = tf.reshape(
        tf.matmul(tf.reshape(actions, [-1, actions.shape[-1]]), first.w[size:]),
        tf.concat([lead, [first.output_size]], 0))
    hidden = tf.nn.elu(tf.matmul(embedding, first.w[:size]) + first.b + per_action)
    hidden = tf.reshape(hidden, [-1, first.output_size])
    for layer in rest:
      hidden = tf.nn.elu(layer(hidden))
    logits = self._head(hidden)
    return tf.reshape(logits, tf.concat([lead, [logits.shape[-1]]], 0))

  def __call__(self, observation: Mapping[str, tf.Tensor], action: tf.Tensor) -> tf.Tensor:
    """Logits [B, atoms] of one action per state, the layer as written: under a
    gradient tape the split weights of `logits_from_embedding` measured slower."""
    x = tf.concat([self.embed(observation), action], axis=-1)
    return self._head(self._torso(x))


def _student_observation(obs_mode: str, image_size: int):
  """The student's observation as a compiled function's input: its TensorSpecs (any
  batch size) and a cast of numpy inputs to the spec's dtypes (env outputs may be
  float64)."""
  obs_spec = specs.observation_spec(obs_mode, image_size)
  keys = specs.STUDENT_KEYS[obs_mode]
  signature = {k: tf.TensorSpec((None,) + tuple(obs_spec[k].shape), obs_spec[k].dtype, k)
               for k in keys}
  return signature, lambda observation: {k: np.asarray(observation[k], obs_spec[k].dtype)
                                         for k in keys}


def numpy_distribution(policy: GaussianPolicy, obs_mode: str, image_size: int):
  """`policy` (built) as a compiled numpy call: batched observation -> `GaussianAction`.

  One concrete function with a fixed input signature (any batch size) and one
  output tensor, so an actor's single-observation call pays TF's dispatch
  once: about half the time of calling a plain `tf.function` (docs/launch.md,
  "Speed").  Inputs are cast to the spec's dtypes (env outputs may be float64).
  """
  signature, cast = _student_observation(obs_mode, image_size)

  @tf.function(input_signature=[signature])
  def forward(observation):
    return tf.concat(policy(observation), axis=-1)
  concrete = forward.get_concrete_function()

  def distribution(observation: Mapping[str, np.ndarray]) -> policy_lib.GaussianAction:
    out = concrete(cast(observation)).numpy()
    return policy_lib.GaussianAction(out[..., :specs.ACTION_DIM], out[..., specs.ACTION_DIM:])
  return distribution


def numpy_q_values(critic: 'CategoricalCritic', obs_mode: str, image_size: int):
  """`critic` (built) as a compiled numpy call: (observation, action) -> mean return [B].

  One concrete function for any batch size, as `numpy_distribution`: a tool that
  asks per env step (benchmarks/q_select.py) would otherwise pay eager dispatch
  through the whole critic every step.  Traced at the first call, not here: most
  learners never ask.
  """
  signature, cast = _student_observation(obs_mode, image_size)

  @tf.function(input_signature=(signature, tf.TensorSpec((None, specs.ACTION_DIM), tf.float32,
                                                         'action')))
  def forward(observation, action):
    return distributional.mean_value(critic(observation, action), critic.support)
  concrete = functools.cache(forward.get_concrete_function)

  def q_values(observation: Mapping[str, np.ndarray], action: np.ndarray) -> np.ndarray:
    return concrete()(cast(observation), np.asarray(action, np.float32)).numpy()
  return q_values


# --- The actor's policy call in numpy ---------------------------------------------


def _numpy_state_features(proprio: np.ndarray, object_poses: np.ndarray) -> np.ndarray:
  """`state_features` in numpy (a test holds the two equal)."""
  proprio = np.asarray(proprio, np.float32)
  poses = np.asarray(object_poses, np.float32).reshape(
      object_poses.shape[:-1] + (specs.NUM_OBJECTS, 7))
  centre = np.asarray(_WORKSPACE_CENTRE, np.float32)
  gripper = proprio[..., 0:3]
  positions, quats = poses[..., 0:3], poses[..., 3:7]
  opening = proprio[..., 5:6] / specs.FINGER_MAX_OPENING - 1.0
  velocities = np.concatenate([proprio[..., 6:9] / specs.MAX_LINEAR_SPEED,
                               proprio[..., 9:10] / specs.MAX_YAW_SPEED], -1)
  offsets = positions - gripper[..., None, :]
  red_to_blue = positions[..., 2, :] - positions[..., 0, :]
  flat = lambda x: x.reshape(x.shape[:-2] + (-1,))
  return np.concatenate([
      (gripper - centre) / _POSITION_SCALE, proprio[..., 3:5], opening, velocities,
      flat((positions - centre) / _POSITION_SCALE), flat(quats),
      flat(offsets) / _OFFSET_SCALE, red_to_blue / _OFFSET_SCALE], axis=-1).astype(np.float32)


def _elu(x: np.ndarray) -> np.ndarray:
  return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


class NumpyStatePolicy:
  """A built state `GaussianPolicy`, evaluated in numpy on a copy of its weights.

  An actor calls its policy once per env step on one observation, where
  TensorFlow's per-call dispatch costs several times the maths (docs/launch.md,
  "Speed").  `sync()` copies the weights again after they change.  Same
  outputs as the module (a test checks).  Vision policies stay in TensorFlow.
  """

  def __init__(self, policy: GaussianPolicy):
    # A [1, 256] x [256, 256] product is far too small to split across threads:
    # OpenBLAS's default threads spin on it, taking CPU from the learner beside
    # the actor (docs/launch.md, "Speed").  For this whole process.
    threadpoolctl.threadpool_limits(1, user_api='blas')
    self._policy = policy
    self.sync()

  def sync(self) -> None:
    p = self._policy
    norm = p._encoder._embed._norm  # pylint: disable=protected-access
    linear = p._encoder._embed._linear  # pylint: disable=protected-access
    self._encoder = (linear.w.numpy(), linear.b.numpy(), norm.scale.numpy(),
                     norm.offset.numpy(), float(norm._eps))  # pylint: disable=protected-access
    self._torso = [(layer.w.numpy(), layer.b.numpy())
                   for layer in p._torso._layers]  # pylint: disable=protected-access
    self._head = (p._head.w.numpy(), p._head.b.numpy())  # pylint: disable=protected-access

  def __call__(self, observation: Mapping[str, np.ndarray]) -> policy_lib.GaussianAction:
    w, b, scale, offset, eps = self._encoder
    x = _numpy_state_features(observation['proprio'], observation['object_poses']) @ w + b
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    x = np.tanh((x - mean) / np.sqrt(var + eps) * scale + offset)
    for w, b in self._torso:
      x = _elu(x @ w + b)
    out = x @ self._head[0] + self._head[1]
    mean_logit, stddev_logit = out[..., :specs.ACTION_DIM], out[..., specs.ACTION_DIM:]
    stddev = (np.logaddexp(0.0, stddev_logit) * (self._policy._init_stddev / np.log(2.0))  # pylint: disable=protected-access
              + self._policy._min_stddev)  # pylint: disable=protected-access
    return policy_lib.GaussianAction(np.tanh(mean_logit), stddev.astype(np.float32))


def dummy_observation(obs_mode: str, image_size: int, batch: int = 1) -> dict:
  obs = {k: np.zeros((batch,) + tuple(s.shape), s.dtype)
         for k, s in specs.observation_spec(obs_mode, image_size).items()}
  return {k: obs[k] for k in specs.STUDENT_KEYS[obs_mode]}


def build(policy: GaussianPolicy, critic: CategoricalCritic, obs_mode: str,
          image_size: int) -> None:
  """Creates all variables now (checkpoint restore must find them)."""
  obs = dummy_observation(obs_mode, image_size)
  policy(obs)
  critic(obs, tf.zeros((1, specs.ACTION_DIM)))
