r"""Throughput of the online data path: one JSON line per figure.

  python benchmarks/online_throughput.py [--data_dir /tmp/robot_time_bench] \
      [--seconds 5] [--budget_online 40] [--actors 1 2] [--only_end_to_end]

Figures: mixer items/s (teacher stream + Reverb, half/half, B=64), Reverb
insert and sample items/s, actor env steps/s with envlogger logging and
Reverb inserts, the env alone, and R-CRR end to end (state obs) with the
synchronous loop (1 actor; learner overlapped on its own thread, and not) and
with 2 actor processes: env steps/s (and their fraction of the env alone),
grad steps/s, the fraction of learner time spent waiting on data, of the
actor's time waiting on the learner (1 actor) and of the learner's on actor
reports (2 actors).  The
first grad step (tf.function tracing, stream start-up) is reported apart as
`first_step_s`; the fractions describe the steady state after it.
Builds a small teacher dataset (Beam) on first use.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from envs import specs  # pylint: disable=g-import-not-at-top
from learners import learner as learner_lib  # pylint: disable=g-import-not-at-top
from learners.training import actors as actors_lib  # pylint: disable=g-import-not-at-top
from learners.training import config as config_lib  # pylint: disable=g-import-not-at-top
from learners.training import loop  # pylint: disable=g-import-not-at-top
from learners.training import mixer as mixer_lib  # pylint: disable=g-import-not-at-top
from learners.training import replay as replay_lib  # pylint: disable=g-import-not-at-top
from pipelines import build_teacher_datasets  # pylint: disable=g-import-not-at-top
from pipelines import teacher_config  # pylint: disable=g-import-not-at-top
from pipelines import teacher_dataset  # pylint: disable=g-import-not-at-top

EPISODES, STEPS = 20, 400  # Full-length episodes: 8 000 teacher items per epoch.


def _emit(**fields):
  print(json.dumps(fields), flush=True)


def _dataset(data_dir):
  name = teacher_config.config_name('triplet1', 'generalization', 'state', EPISODES,
                                    episode_steps=STEPS)
  try:
    return teacher_dataset.load_teacher_dataset(name, data_dir)
  except teacher_dataset.TeacherDatasetError:
    job = build_teacher_datasets.JobConfig(
        triplets=['triplet1'], teachers=['generalization'], obs_modes=['state'],
        sizes=[EPISODES], data_dir=data_dir, episode_steps=STEPS, overwrite=True)
    build_teacher_datasets.run(job, build_teacher_datasets.local_beam_options([], 2))
    return teacher_dataset.load_teacher_dataset(name, data_dir)


def _random_items(signature, n, rng):
  return tf.nest.map_structure(
      lambda s: rng.random((n,) + tuple(s.shape)).astype(s.dtype.as_numpy_dtype), signature)


def _rate(fn, seconds):
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    count += fn()
  return count / (time.perf_counter() - start)


def bench_replay(seconds):
  server = replay_lib.ReplayServer(replay_lib.ReplayConfig(max_size=100_000, min_size=64),
                                   'state', burst=400)
  writer = replay_lib.TransitionWriter(server.address, 60_000)
  items = _random_items(server.signature, 400, np.random.default_rng(0))
  _emit(figure='reverb_insert', items_per_s=round(_rate(lambda: writer.insert(items), seconds)),
        items_per_call=400, obs='state')
  batches = replay_lib.numpy_batches(server.address, 64, 60_000)
  next(batches)
  _emit(figure='reverb_sample', items_per_s=round(_rate(lambda: len(next(batches)['action']),
                                                        seconds)), batch=64, obs='state')
  return server, writer


def bench_mixer(episodes, server, seconds):
  offline = mixer_lib.ItemBuffer(mixer_lib.offline_chunks(episodes, EPISODES * STEPS, 0))
  online = mixer_lib.ItemBuffer(replay_lib.numpy_batches(server.address, 64, 60_000))
  mixer = mixer_lib.Mixer(64, lambda s: 0.5, offline, online)
  mixer.batch(0)
  step = [0]

  def one():
    step[0] += 1
    return len(mixer.batch(step[0]).action)
  _emit(figure='mixer', items_per_s=round(_rate(one, seconds)), batch=64,
        offline_fraction=0.5)


def bench_policy(seconds):
  """One observation through the student policy, as the actor calls it each env step."""
  learner = learner_lib.Learner('BC', learner_lib.LearnerConfig())
  obs = {k: np.zeros(s.shape, s.dtype) for k, s in specs.observation_spec('state').items()}
  # The actor's call (numpy), and the TF call it replaced, in the same run.
  for figure, fn in (('policy_call', learner.actor_distribution),
                     ('policy_call_tf', learner.distribution)):
    policy = actors_lib.StudentPolicy(fn)
    policy.distribution(obs)
    rate = _rate(lambda: len(policy.distribution(obs).mean) // specs.ACTION_DIM, seconds)  # pylint: disable=cell-var-from-loop
    _emit(figure=figure, ms=round(1e3 / rate, 3), obs='state', nets='256x256')


def bench_actor(server, seconds):
  learner = learner_lib.Learner('BC', learner_lib.LearnerConfig())
  with tempfile.TemporaryDirectory() as log_root:
    actor = actors_lib.Actor(
        actors_lib.ActorConfig(episode_steps=STEPS, method='bench', run_id='bench'),
        actors_lib.StudentPolicy(learner.actor_distribution), log_root,
        replay_lib.TransitionWriter(server.address, 60_000))
    actor.run_episode(0)
    rate = _rate(lambda: actor.run_episode(0).steps, seconds)
    actor.close()
  _emit(figure='actor_env_steps', steps_per_s=round(rate, 1), logging='envlogger+reverb',
        policy='256x256 Gaussian (numpy copy)', obs='state')


def bench_env(seconds: float) -> float:
  """The env alone (state obs, no logging, a fixed action): the ceiling of the loop."""
  import envs  # pylint: disable=g-import-not-at-top
  env = envs.make_env('triplet1', episode_steps=STEPS)
  action = np.zeros(specs.ACTION_DIM, np.float32)

  def episode():
    timestep, steps = env.reset(), 0
    while not timestep.last():
      timestep, steps = env.step(action), steps + 1
    return steps
  rate = _rate(episode, seconds)
  env.close()
  _emit(figure='env_raw_steps', steps_per_s=round(rate, 1), obs='state')
  return rate


def bench_end_to_end(data_dir, budget_online, num_actors=1, overlap_learner=True,
                     env_rate=None):
  workdir = tempfile.mkdtemp(prefix='online_bench_')
  try:
    config = config_lib.RunConfig(
        method='R-CRR', triplet='triplet1', teacher='generalization', obs='state',
        offline_episodes=EPISODES, budget=EPISODES + budget_online, workdir=workdir,
        data_dir=data_dir, build_dataset=False, episode_steps=STEPS, min_replay_size=STEPS,
        eval_every=0, final_eval_episodes=1, progress=False, log_every=1000,
        num_actors=num_actors, overlap_learner=overlap_learner)
    start = time.perf_counter()
    summary = loop.train(config, log=lambda *a: None)
    wall = time.perf_counter() - start
    ledger, timing = summary['ledger'], summary['timing']
    # Collection time: the online phase (without spawning the actors).
    loop_s = timing['online_s'] - timing.get('actor_start_s', 0.0)
    figure = 'sync_loop_r_crr' if num_actors == 1 else 'multi_actor_r_crr'
    extra = {}
    if num_actors == 1:
      extra = dict(overlap_learner=overlap_learner,
                   actor_wait_on_learner_fraction=round(timing['actor_wait_s'] / loop_s, 3))
    else:
      extra = dict(actor_start_s=round(timing['actor_start_s'], 1),
                   learner_wait_on_actors_fraction=round(timing['actor_wait_s'] / loop_s, 3))
    if env_rate:
      extra['fraction_of_env_raw'] = round(ledger['env_steps'] / loop_s / env_rate, 3)
    _emit(figure=figure, actors=num_actors,
          env_steps_per_s=round(ledger['env_steps'] / loop_s, 1),
          grad_steps_per_s=round(ledger['grad_steps'] / loop_s, 1),
          learner_steps_per_s_of_learner_time=round(ledger['grad_steps'] / timing['learner_s'], 1),
          data_wait_fraction=round(timing['data_wait_s'] /
                                   (timing['data_wait_s'] + timing['learner_s']), 3),
          first_step_s=round(timing['first_step_s'], 2),
          grad_steps=ledger['grad_steps'], env_steps=ledger['env_steps'],
          wall_s_including_setup=round(wall, 1), batch=64, env_steps_per_grad_step=5,
          cpus=os.cpu_count(), **extra)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--data_dir', default='/tmp/robot_time_bench')
  parser.add_argument('--seconds', type=float, default=5.0)
  parser.add_argument('--budget_online', type=int, default=40)
  parser.add_argument('--actors', type=int, nargs='+', default=[1, 2],
                      help='end-to-end runs with these --num_actors')
  parser.add_argument('--only_end_to_end', action='store_true')
  parser.add_argument('--overlap', choices=('on', 'off', 'both'), default='both',
                      help='the 1-actor loop with the learner on its own thread, without, '
                      'or both (A/B in one run)')
  args = parser.parse_args()
  episodes = _dataset(args.data_dir)
  env_rate = bench_env(args.seconds)
  if not args.only_end_to_end:
    server, _ = bench_replay(args.seconds)
    bench_mixer(episodes, server, args.seconds)
    bench_policy(args.seconds)
    bench_actor(server, args.seconds)
    server.stop()
  overlaps = {'on': [True], 'off': [False], 'both': [False, True]}[args.overlap]
  for num_actors in args.actors:
    for overlap_learner in (overlaps if num_actors == 1 else [True]):
      bench_end_to_end(args.data_dir, args.budget_online, num_actors, overlap_learner,
                       env_rate)


if __name__ == '__main__':
  main()
