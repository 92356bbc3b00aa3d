"""Distil a neural teacher from the scripted oracle by DAgger; ship it as a SavedModel.

  python -m learners.training.distill_teacher --teacher mastery
  python -m learners.training.distill_teacher --teacher generalization
  python -m learners.training.distill_teacher --teacher mastery --output /tmp/t \
      --rounds 2 --episodes_per_round 4 --grad_steps_per_round 200   # a quick look

As in the paper (Sec. IV) and the RGB-stacking benchmark, a teacher is a
network "trained via imitation of a teacher": round 0 rolls out the oracle
(privileged, mesh-aware, `envs.teachers.ORACLE`), every later round rolls out
the current network, the oracle labels every visited state with its mean
action, the data are aggregated and the network trains on all of it (Ross et
al., 2011).  `mastery` trains on the 5 test triplets; `generalization` on
triplets drawn from `RGB_OBJECTS_TRAIN_SET`, never a test object, so its
weakness on the test triplets comes from that gap alone.

Why not a `DAgger` run of `learners.training.launch`: one run is one triplet,
and a teacher trains on 5 to 40 at once; the labels here are the oracle's mean
(a regression target), not samples; and a teacher needs no Reverb, ledger or
critic.  The network, its features and the optimizer are the students' own.

Same seed, same weights: episodes, exploration noise, minibatches and the
initialisation are seeded and TF runs with op determinism on fixed threads.
The output directory holds the SavedModel and `card.json` (recipe, rebuild
command, wall time, success per test triplet, weights hash).
"""

import argparse
import dataclasses
import hashlib
import json
import os
import shlex
import sys
import time
from typing import Mapping

import numpy as np
from tqdm import tqdm

import envs
from envs import rollout as rollout_lib
from envs import specs
from envs import teachers as teachers_lib
from envs import triplets as triplets_lib
from learners.training import workdir as run_files
from learners.training import teacher_recipe

class Dataset:
  """The aggregated (state, oracle label) pairs of every round."""

  def __init__(self):
    self._parts = []

  def add(self, observations: Mapping[str, np.ndarray], labels: np.ndarray) -> None:
    self._parts.append((observations['proprio'].astype(np.float32),
                        observations['object_poses'].astype(np.float32),
                        labels.astype(np.float32)))

  def arrays(self):
    return tuple(np.concatenate(x) for x in zip(*self._parts))

  def __len__(self):
    return sum(len(p[0]) for p in self._parts)


def _collect(cfg: teacher_recipe.DistillConfig, tag: str, num_episodes: int, act, oracles,
             env_cache, rng, label: bool = True):
  """Roll-outs in lockstep waves, cycling over the triplets; seeds from `tag`.

  Returns (observations, oracle labels, successes); with `label` False only the
  successes (validation needs no labels).
  """
  observations, labels, successes = [], [], []
  episodes = [(cfg.triplets[i % len(cfg.triplets)], i) for i in range(num_episodes)]
  for start in range(0, len(episodes), cfg.num_envs):
    wave = episodes[start:start + cfg.num_envs]
    wave_envs = []
    for triplet, i in wave:
      # A triplet can appear several times in a wave: one env per appearance.
      pool = env_cache.setdefault(triplet, [])
      used = sum(t == triplet for t, _ in wave[:len(wave_envs)])
      if used == len(pool):
        pool.append(envs.make_env(triplet, episode_steps=cfg.episode_steps))
      env = pool[used]
      env.reseed(rollout_lib.episode_seed(triplet, f'distill-{cfg.teacher}-{cfg.seed}-{tag}', i))
      wave_envs.append(env)
    steps = [[env.reset().observation] for env in wave_envs]
    for _ in range(cfg.episode_steps):
      batch = {k: np.stack([s[-1][k] for s in steps]) for k in specs.TEACHER_KEYS}
      actions = act(batch, [t for t, _ in wave], rng)
      for s, env, action in zip(steps, wave_envs, actions):
        s.append(env.step(action).observation)
    for (triplet, _), s, env in zip(wave, steps, wave_envs):
      successes.append(bool(env.success))
      if not label:
        continue
      # The final observation has no action to label.
      obs = {k: np.stack([o[k] for o in s[:-1]]) for k in specs.TEACHER_KEYS}
      observations.append(obs)
      labels.append(oracles[triplet].distribution(obs).mode())
  if not label:
    return None, None, successes
  merged = {k: np.concatenate([o[k] for o in observations]) for k in specs.TEACHER_KEYS}
  return merged, np.concatenate(labels), successes


def _weights_hash(variables) -> str:
  digest = hashlib.sha256()
  for v in sorted(variables, key=lambda v: v.name):
    digest.update(v.name.encode())
    digest.update(np.ascontiguousarray(v.numpy()).tobytes())
  return digest.hexdigest()


class _Student:
  """The network being distilled: the students' GaussianPolicy, Adam, a K-step train call."""

  def __init__(self, cfg: teacher_recipe.DistillConfig):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from learners import networks  # pylint: disable=g-import-not-at-top
    from learners import optimizers  # pylint: disable=g-import-not-at-top
    tf.config.experimental.enable_op_determinism()
    tf.random.set_seed(cfg.seed)  # Initialisers draw from it: same seed, same weights.
    self.policy = networks.GaussianPolicy(
        'state', networks.NetworkConfig(policy_torso=tuple(cfg.torso)))
    self.policy(networks.dummy_observation('state', specs.DEFAULT_IMAGE_SIZE))
    self.variables = self.policy.trainable_variables
    self._optimizer = optimizers.Adam(self.variables, cfg.learning_rate)
    act_fn = networks.numpy_distribution(self.policy, 'state', specs.DEFAULT_IMAGE_SIZE)
    self.mean = lambda batch: act_fn(batch).mean
    # One trace for every round, although the aggregated data grow.
    self.train = tf.function(self._train, input_signature=[
        tf.TensorSpec([None, specs.PROPRIO_DIM], tf.float32),
        tf.TensorSpec([None, specs.OBJECT_POSES_DIM], tf.float32),
        tf.TensorSpec([None, specs.ACTION_DIM], tf.float32),
        tf.TensorSpec([None, None], tf.int32)])

  def _train(self, proprio, poses, labels, index):
    """len(index) Adam steps on the squared error of the mean; index [K, B] picks minibatches."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    loss = tf.constant(0.0)
    for k in tf.range(tf.shape(index)[0]):
      rows = index[k]
      with tf.GradientTape() as tape:
        mean, _ = self.policy({'proprio': tf.gather(proprio, rows),
                               'object_poses': tf.gather(poses, rows)})
        loss = tf.reduce_mean(tf.square(mean - tf.gather(labels, rows)))
      self._optimizer.apply(tape.gradient(loss, self.variables), self.variables)
    return loss

  def fit(self, data: Dataset, steps: int, batch_size: int, rng, steps_per_call: int = 100):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    arrays = [tf.constant(a) for a in data.arrays()]
    loss = float('nan')
    for done in range(0, steps, steps_per_call):
      k = min(steps_per_call, steps - done)
      index = rng.integers(0, len(data), size=(k, batch_size)).astype(np.int32)
      loss = float(self.train(*arrays, tf.constant(index)))
    return loss


def _actors(cfg: teacher_recipe.DistillConfig, student: _Student, oracles):
  """(the oracle's actor, network_actor(noise, oracle_share)) for `_collect`."""

  def oracle_act(batch, triplets, rng):
    return np.stack([oracles[t].distribution({k: batch[k][j] for k in batch}).sample(rng)
                     for j, t in enumerate(triplets)])

  def network_actor(noise, oracle_share):
    """The network's mean plus `noise`; each env's step is the oracle's with p=oracle_share."""
    def act(batch, triplets, rng):
      mean = student.mean(batch)
      actions = np.clip(mean + noise * rng.standard_normal(mean.shape), -1.0, 1.0)
      mixed = rng.random(len(triplets)) < oracle_share
      if mixed.any():
        actions[mixed] = oracle_act({k: v[mixed] for k, v in batch.items()},
                                    [t for t, m in zip(triplets, mixed) if m], rng)
      return actions.astype(np.float32)
    return act
  return oracle_act, network_actor


def _dagger(cfg: teacher_recipe.DistillConfig, student: _Student):
  """The DAgger rounds; leaves the best round's weights in `student`; returns (history, round)."""
  oracles = {t: teachers_lib.make_teacher(teachers_lib.ORACLE, t) for t in cfg.triplets}
  oracle_act, network_actor = _actors(cfg, student, oracles)
  rng = np.random.default_rng([cfg.seed, 29])
  data, history, env_cache = Dataset(), [], {}
  best = (-1.0, None, None)  # (score, round, weights)
  with tqdm(total=cfg.rounds, desc=f'distilling {cfg.teacher}', unit='round',
            disable=None) as bar:
    for r in range(cfg.rounds):
      share = 1.0 if r == 0 else cfg.oracle_share**r
      actor = oracle_act if r == 0 else network_actor(cfg.rollout_noise, share)
      obs, labels, successes = _collect(cfg, f'round{r}', cfg.episodes_per_round, actor,
                                        oracles, env_cache, rng)
      data.add(obs, labels)
      loss = student.fit(data, cfg.grad_steps_per_round, cfg.batch_size, rng)
      if not np.isfinite(loss):
        raise FloatingPointError(f'Teacher distillation diverged in round {r} (loss {loss}); '
                                 'lower --learning_rate. Nothing was written.')
      # DAgger returns the best iterate on validation (Ross et al., 2011, Thm 3.1
      # bounds the best, not the last): the network's mean, the same episodes
      # every round.
      validation = None
      if cfg.validation_episodes:
        _, _, wins = _collect(cfg, 'validation', cfg.validation_episodes,
                              network_actor(0.0, 0.0), oracles, env_cache, rng, label=False)
        validation = float(np.mean(wins))
      history.append({'round': r, 'actor': 'oracle' if r == 0 else 'network',
                      'oracle_share': share, 'rollout_success': float(np.mean(successes)),
                      'states': len(data), 'final_loss': loss,
                      'validation_success': validation})
      score = validation if validation is not None else r  # Without validation: the last.
      if score >= best[0]:  # Ties: the later round, trained on more data.
        best = (score, r, [v.numpy() for v in student.variables])
      bar.set_postfix(validation=validation, loss=f'{loss:.4f}')
      # One line per round also when the bar is off (logs, CI).
      tqdm.write(json.dumps(history[-1]), file=sys.stderr)
      bar.update()
  for pool in env_cache.values():
    for env in pool:
      env.close()
  for v, value in zip(student.variables, best[2]):
    v.assign(value)
  return history, best[1]


def distill(cfg: teacher_recipe.DistillConfig, output: str, eval_episodes: int = 0,
            eval_workers: int = 1, command: str = '') -> dict:
  """Runs the recipe, writes the SavedModel and card to `output`; returns the card."""
  teacher_recipe.check(cfg)
  start = time.time()
  student = _Student(cfg)
  history, shipped_round = _dagger(cfg, student)
  export(student.policy, cfg.stddev, output)
  card = {
      'teacher': cfg.teacher, 'oracle': teachers_lib.ORACLE, 'env_version': envs.ENV_VERSION,
      'config': dataclasses.asdict(cfg),
      'episodes': cfg.rounds * (cfg.episodes_per_round + cfg.validation_episodes),
      'grad_steps': cfg.rounds * cfg.grad_steps_per_round,
      'rounds': history, 'shipped_round': shipped_round,
      'wall_time_s': round(time.time() - start, 1),
      'command': command, 'weights_sha256': _weights_hash(student.variables),
  }
  card_path = os.path.join(output, teachers_lib.CARD_FILE)
  # The model never sits without its card, even if the evaluation is cut short.
  run_files.write_json_atomic(card_path, card)
  if eval_episodes:
    from envs import evaluate  # pylint: disable=g-import-not-at-top
    cells = evaluate.evaluate([output], list(triplets_lib.TRIPLET_NAMES), eval_episodes,
                              workers=eval_workers, episode_steps=cfg.episode_steps)
    card['test_success'] = {c['triplet']: {k: c[k] for k in ('successes', 'episodes',
                                                              'success_rate', 'ci95')}
                            for c in cells}
    card['eval_command'] = (f'python -m envs.evaluate --teacher {cfg.teacher} --triplet all '
                            f'--episodes {eval_episodes}')
  card['total_wall_time_s'] = round(time.time() - start, 1)
  run_files.write_json_atomic(card_path, card)
  return card


def export(policy, stddev: float, path: str) -> None:
  """Writes `distribution(proprio, object_poses) -> (mean, stddev)` as a SavedModel."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  class NeuralTeacher(tf.Module):

    def __init__(self):
      super().__init__()
      self.policy = policy

    @tf.function(input_signature=[
        tf.TensorSpec([None, specs.PROPRIO_DIM], tf.float32, 'proprio'),
        tf.TensorSpec([None, specs.OBJECT_POSES_DIM], tf.float32, 'object_poses')])
    def distribution(self, proprio, object_poses):
      mean, _ = self.policy({'proprio': proprio, 'object_poses': object_poses})
      return mean, tf.fill(tf.shape(mean), tf.constant(stddev, tf.float32))

  # Written beside, then renamed: a killed export never leaves half a model
  # where a teacher is expected.
  tmp = path.rstrip('/') + '.partial'
  tf.saved_model.save(NeuralTeacher(), tmp)
  if os.path.isdir(path):
    import shutil  # pylint: disable=g-import-not-at-top
    shutil.rmtree(path)
  os.replace(tmp, path)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--teacher', required=True, choices=teachers_lib.NEURAL_TEACHERS)
  parser.add_argument('--output', default=None,
                      help='directory for the SavedModel (default: the shipped model\'s)')
  defaults = teacher_recipe.DistillConfig(teacher='', triplets=())
  for field in ('rounds', 'episodes_per_round', 'grad_steps_per_round', 'batch_size',
                'learning_rate', 'rollout_noise', 'oracle_share', 'validation_episodes',
                'stddev', 'episode_steps', 'num_envs', 'seed'):
    value = getattr(defaults, field)
    parser.add_argument(f'--{field}', type=type(value), default=None,
                        help=f'default {value}')
  parser.add_argument('--torso', default=None, help='hidden sizes, e.g. 256,256')
  parser.add_argument('--num_train_triplets', type=int, default=None,
                      help='generalization only; default '
                      f'{teacher_recipe.GENERALIZATION_TRAIN_TRIPLETS}')
  parser.add_argument('--eval_episodes', type=int, default=200,
                      help='deterministic episodes per test triplet for the card (0: skip)')
  parser.add_argument('--eval_workers', type=int, default=2)
  parser.add_argument('--threads', type=int, default=2,
                      help='TF intra- and inter-op threads (fixed, so the weights do not '
                      'depend on the machine\'s core count)')
  args = parser.parse_args(argv)
  if args.eval_episodes < 0 or args.eval_workers < 1 or args.threads < 1:
    parser.error('--eval_episodes must be >= 0, --eval_workers and --threads >= 1')
  overrides = {k: v for k, v in vars(args).items()
               if v is not None and k not in ('teacher', 'output', 'eval_episodes',
                                              'eval_workers', 'torso', 'threads')}
  if args.torso:
    try:
      overrides['torso'] = tuple(int(x) for x in args.torso.split(','))
    except ValueError:
      parser.error(f'--torso takes comma-separated layer sizes, e.g. 256,256; got {args.torso!r}')
  if args.num_train_triplets is not None and args.teacher != 'generalization':
    parser.error('--num_train_triplets applies to --teacher generalization only')
  try:
    cfg = teacher_recipe.recipe(args.teacher, **overrides)
  except ValueError as e:
    parser.error(str(e))
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  output = args.output or teachers_lib.shipped_model_path(args.teacher)
  command = 'python -m learners.training.distill_teacher ' + shlex.join(
      sys.argv[1:] if argv is None else argv)
  card = distill(cfg, output, args.eval_episodes, args.eval_workers, command)
  print(json.dumps({k: card[k] for k in ('teacher', 'episodes', 'grad_steps', 'wall_time_s',
                                         'weights_sha256')}))
  for triplet, cell in card.get('test_success', {}).items():
    print(f'{triplet}: {100 * cell["success_rate"]:.1f}% '
          f'[{100 * cell["ci95"][0]:.1f}, {100 * cell["ci95"][1]:.1f}]')
  print(f'wrote {output}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
