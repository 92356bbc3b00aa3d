"""Several actor processes over gRPC: exact budget, both logs, failures reported.

Real Reverb, real envlogger, real spawned actor processes; the teacher dataset
and run settings are those of test_online_training.
"""

import dataclasses
import multiprocessing
import os
import time

import numpy as np
import pytest

from envs import specs
from learners import learner as learner_lib
from learners import networks
from learners.training import actors as actors_lib
from learners.training import distributed
from learners.training import faults
from learners.training import launch
from learners.training import ledger as ledger_lib
from learners.training import loop
from learners.training import replay
from learners.training import workdir as run_files
from pipelines import episode_log
from test_online_training import (  # pylint: disable=unused-import
    OFFLINE, STEPS, _config, _launch, _resume_flags, data_dir)

ONLINE = 5  # Online episodes of each multi-actor run.


def _episodes_by_segment(workdir):
  """{segment name: [episode seeds]} of a run's online episode log."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  root = os.path.join(workdir, run_files.EPISODE_LOG_DIR)
  out = {}
  for segment in episode_log.recover_segments(root):
    episodes = tfds.builder_from_directory(segment).as_dataset(split='train')
    out[os.path.basename(segment)] = [
        int(s) for s in episodes.map(lambda e: e['episode_seed']).as_numpy_iterator()]
  return out


def test_published_variables_reach_the_actor_policy():
  nets = networks.NetworkConfig(encoder_size=32, policy_torso=(32,), critic_torso=(32,))
  learner = learner_lib.Learner('BC', learner_lib.LearnerConfig(nets=nets, seed=3))
  table = distributed.variables_table(
      distributed.variables_signature(learner.policy.variables))
  server = replay.ReplayServer(replay.ReplayConfig(max_size=100, min_size=1), 'state',
                               burst=20, extra_tables=[table])
  try:
    publisher = distributed.VariablePublisher(server.address, learner.policy.variables, 5000)
    publisher.publish(7)
    remote = distributed.RemotePolicy(server.address, 'state', specs.DEFAULT_IMAGE_SIZE,
                                      nets, 5000)
    observation = {k: v[0] + 0.1 for k, v in
                   networks.dummy_observation('state', specs.DEFAULT_IMAGE_SIZE).items()}
    expected = actors_lib.StudentPolicy(learner.distribution).distribution(observation)
    assert not np.allclose(remote.distribution(observation).mean, expected.mean)
    assert remote.update() == 7
    got = remote.distribution(observation)
    # The actor computes in numpy, the learner in TF: equal up to float rounding.
    np.testing.assert_allclose(got.mean, expected.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.stddev, expected.stddev, rtol=1e-5, atol=1e-6)
    # Only the newest weights are kept: a later publish replaces them.
    publisher.publish(8)
    assert remote.update() == 8
    publisher.close()
  finally:
    server.stop()


def test_actor_exception_is_reported_with_its_traceback(tmp_path):
  """An actor whose network does not match the learner's fails; the pool says why."""
  learner_nets = networks.NetworkConfig(encoder_size=32, policy_torso=(32,),
                                        critic_torso=(32,))
  learner = learner_lib.Learner('BC', learner_lib.LearnerConfig(nets=learner_nets))
  table = distributed.variables_table(
      distributed.variables_signature(learner.policy.variables))
  server = replay.ReplayServer(replay.ReplayConfig(max_size=100, min_size=1), 'state',
                               burst=STEPS, extra_tables=[table])
  pool = distributed.ActorPool(distributed.PoolConfig(
      num_actors=1, actor=actors_lib.ActorConfig(episode_steps=STEPS, run_id='t'),
      address=server.address, log_root=str(tmp_path / 'episodes'),
      nets=dataclasses.replace(learner_nets, encoder_size=16), timeout_ms=20_000),
                               log=lambda *a: None)
  try:
    distributed.VariablePublisher(server.address, learner.policy.variables, 5000).publish(0)
    pool.start()
    pool.issue(0)
    deadline = time.monotonic() + 60
    with pytest.raises(distributed.ActorError, match=r'(?s)Actor 0 failed:.*Traceback'):
      while time.monotonic() < deadline:
        pool.poll(0.5)
  finally:
    pool.stop(timeout_s=0.0)
    server.stop()
  assert not multiprocessing.active_children()


@pytest.mark.parametrize('method', ['R-CRR', 'DAgger'])
def test_two_actors_spend_the_budget_exactly(data_dir, tmp_path, method):
  base = _config(data_dir, tmp_path / 'run', method)
  config = dataclasses.replace(
      base, budget=base.offline_episodes + ONLINE, num_actors=2, variable_update_period=5,
      # Episode-count checkpoints exercise the pause-and-drain path.
      checkpoint_every_episodes=2 if method == 'R-CRR' else 0)
  summary = loop.train(config, log=lambda *a: None)
  ledger = ledger_lib.Ledger.read(config.workdir)
  assert ledger.done and ledger.spent == ledger.budget == config.budget
  assert ledger.online_episodes == ONLINE and ledger.discarded_episodes == 0
  assert ledger.env_steps == ONLINE * STEPS
  assert ledger.replay_inserts == ONLINE * STEPS
  # The synchronous loop's update rule, replayed on the actors' env steps.
  assert ledger.grad_steps == (ledger.env_steps - STEPS) // 5 + 1
  assert ledger.offline_items + ledger.online_items == ledger.grad_steps * config.batch_size
  assert summary['final_eval']['episodes'] == 2
  # Both actors logged into their own segment; together exactly the episodes
  # 0..ONLINE-1 of the run's sequence, as the synchronous actor collects them.
  by_segment = _episodes_by_segment(config.workdir)
  assert len(by_segment) == 2 and all(by_segment.values()), by_segment
  seeds = sorted(s for segment in by_segment.values() for s in segment)
  assert seeds == sorted(actors_lib.student_episode_seed('triplet1', config.seed, i)
                         for i in range(ONLINE))
  if method == 'R-CRR':
    states = os.listdir(os.path.join(config.workdir, run_files.STATE_DIR))
    assert len(states) >= 2  # Mid-run checkpoints plus the final one.
  else:
    # The same episodes as a single-actor run of the same config.
    single = dataclasses.replace(config, num_actors=1, workdir=str(tmp_path / 'single'),
                                 eval_every=0)
    loop.train(single, log=lambda *a: None)
    single_seeds = sorted(s for segment in _episodes_by_segment(single.workdir).values()
                          for s in segment)
    assert single_seeds == seeds
    assert ledger_lib.Ledger.read(single.workdir).grad_steps == ledger.grad_steps
  assert not multiprocessing.active_children()


def _two_actor_args(data_dir, workdir):
  """A DAgger run of 40 episodes in 2 actor processes, checkpointing every episode."""
  return ['--method', 'dagger', '--triplet', 'triplet1', '--teacher', 'generalization',
          '--obs', 'state', '--budget', '40', '--offline_episodes', '0',
          '--data_dir', data_dir, '--build_dataset', 'false', '--episode_steps', str(STEPS),
          '--batch_size', '16', '--min_replay_size', '10', '--eval_every', '0',
          '--final_eval_episodes', '2', '--network_size', '32', '--progress', 'false',
          '--num_actors', '2', '--checkpoint_every_episodes', '1',
          '--checkpoint_every_s', '1e9', '--replay_timeout_ms', '30000',
          '--workdir', workdir]


def _resumes_to_the_exact_budget(args, workdir, capsys):
  """The resume ingests what both actors logged and hands out the rest again:
  each actor cut off at most its episode in flight, and the budget is exact."""
  assert launch.main(args + ['--resume']) == 0, capsys.readouterr().err
  ledger = ledger_lib.Ledger.read(workdir)
  assert ledger.done and ledger.spent == ledger.budget == 40 and ledger.resumes == 1
  assert ledger.discarded_episodes <= 2 and ledger.env_steps == 40 * STEPS
  seeds = sorted(s for segment in _episodes_by_segment(workdir).values() for s in segment)
  assert seeds == sorted(actors_lib.student_episode_seed('triplet1', 0, i) for i in range(40))


def test_killed_actor_is_reported_and_the_run_stops(data_dir, tmp_path, capsys, monkeypatch):
  workdir = str(tmp_path / 'run')
  args = _two_actor_args(data_dir, workdir)
  monkeypatch.setenv(faults.KILL_ACTOR_AFTER_EPISODES, '2')
  start = time.monotonic()
  assert launch.main(args) == 1
  elapsed = time.monotonic() - start
  err = capsys.readouterr().err
  assert 'Actor 0' in err and 'killed by SIGKILL' in err, err
  assert 'last checkpoint' in err and 'ckpt-' in err, err
  assert elapsed < 120, elapsed  # Stopped, not hung (start-up included).
  assert not multiprocessing.active_children()
  ledger = ledger_lib.Ledger.read(workdir)
  assert not ledger.done and ledger.online_episodes < 40
  monkeypatch.delenv(faults.KILL_ACTOR_AFTER_EPISODES)
  _resumes_to_the_exact_budget(args, workdir, capsys)


def test_reverb_gone_stops_learner_and_actors_in_the_timeout(data_dir, tmp_path, capsys,
                                                             monkeypatch):
  workdir = str(tmp_path / 'run')
  args = _two_actor_args(data_dir, workdir) + ['--replay_timeout_ms', '5000']
  monkeypatch.setenv(faults.STOP_REPLAY_AFTER_EPISODES, '6')
  start = time.monotonic()
  assert launch.main(args) == 1
  elapsed = time.monotonic() - start
  err = capsys.readouterr().err
  assert 'ckpt-' in err and '--resume' in err, err
  assert elapsed < 120, elapsed  # Start-up, then at most a few 5 s timeouts.
  assert not multiprocessing.active_children()
  monkeypatch.delenv(faults.STOP_REPLAY_AFTER_EPISODES)
  _resumes_to_the_exact_budget(args, workdir, capsys)


@pytest.mark.slow
def test_killed_learner_resumes_with_two_actors(data_dir, tmp_path):
  common = _resume_flags(data_dir) + ['--num_actors', '2']
  killed = str(tmp_path / 'killed')
  # The learner SIGKILLs itself at 5 counted episodes; its last checkpoint holds 4.
  proc = _launch(common + ['--workdir', killed],
                 env=dict(os.environ, **{faults.KILL_AFTER_EPISODES: '5'}))
  assert proc.returncode == -9, proc.stderr[-3000:]
  proc = _launch(common + ['--workdir', killed, '--resume'])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'Resuming' in proc.stdout
  ledger = ledger_lib.Ledger.read(killed)
  assert ledger.done and ledger.resumes == 1
  assert ledger.spent == ledger.budget == OFFLINE + 7 and ledger.online_episodes == 7
  assert ledger.env_steps == ledger.replay_inserts == 7 * STEPS
  assert ledger.grad_steps == (ledger.env_steps - STEPS) // 5 + 1
  # Episodes logged after the checkpoint (at least the 5th) are ingested; the
  # actors' episodes in flight at the kill are cut off and handed out again.
  assert 'Ingested' in proc.stdout, proc.stdout
  assert ledger.discarded_episodes <= 2
  seeds = sorted(s for segment in _episodes_by_segment(killed).values() for s in segment)
  assert seeds == sorted(actors_lib.student_episode_seed('triplet1', 0, i) for i in range(7))
