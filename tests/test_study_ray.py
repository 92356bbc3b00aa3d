"""Ray: a real local cluster (head + 2 worker nodes on 127.0.0.1).

The study: a worker process is SIGKILLed in the middle of an online run; Ray
retries the run, whose launcher resumes from its checkpoint, and the offline
run's result equals the local pool's (offline runs are bit-reproducible).

A run's actors as Ray actors: one dies mid-episode and its episode goes to a
new actor; a SIGTERM'd run checkpoints and resumes; the budget stays exact.
"""

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

from learners.study import grid
from learners.study import ray_engine
from learners.study import report
from learners.study import runner
from learners.training import actors as actors_lib
from learners.training import faults
from learners.training import launch
from learners.training import ledger as ledger_lib
from pipelines import episode_log

ray = pytest.importorskip('ray')
from ray import cluster_utils  # pylint: disable=g-import-not-at-top,wrong-import-position

DEFAULTS = dict(episode_steps=20, grad_steps=6, batch_size=16, min_replay_size=10,
                eval_every=0, final_eval_episodes=2, network_size=32, log_every=1,
                offline_shuffle=64, checkpoint_every_episodes=1, checkpoint_every_s=1e9)


@pytest.fixture
def cluster():
  # The head schedules nothing: every run lands on a worker node.
  local = cluster_utils.Cluster(initialize_head=True, head_node_args=dict(num_cpus=0))
  for _ in range(2):
    local.add_node(num_cpus=1)
  ray.init(address=local.address, include_dashboard=False, log_to_driver=False)
  yield local
  ray.shutdown()
  local.shutdown()


def _kill_worker_once_collecting(workdir, method):
  """SIGKILLs the Ray worker running `method`'s run once it has logged an episode."""
  deadline = time.monotonic() + 600
  while time.monotonic() < deadline:
    for run_dir in glob.glob(os.path.join(workdir, 'runs', f'{method}_*')):
      logged = glob.glob(os.path.join(run_dir, 'episodes', 'segment-*', '*.tfrecord*'))
      if logged and ray_engine.attempts(run_dir) == 1:
        with open(os.path.join(run_dir, ray_engine.ATTEMPTS_FILE)) as f:
          os.kill(int(f.read().split()[-1]), signal.SIGKILL)
        return
    time.sleep(0.2)


def test_study_on_ray_survives_a_killed_worker(cluster, tmp_path, capsys):
  del cluster
  spec = tmp_path / 'two.yaml'
  spec.write_text(yaml.safe_dump(dict(
      name='two', defaults=DEFAULTS,
      grid=dict(methods=['CRR', 'R-CRR'], budgets=[44], offline_episodes={44: [4]}))))
  data_dir = str(tmp_path / 'data')
  ray_dir, local_dir = str(tmp_path / 'ray'), str(tmp_path / 'local')
  common = ['--spec', str(spec), '--data_dir', data_dir]
  killer = threading.Thread(target=_kill_worker_once_collecting, args=(ray_dir, 'R-CRR'),
                            daemon=True)
  killer.start()
  assert runner.main(common + ['--workdir', ray_dir, '--engine', 'ray']) == 0
  killer.join(timeout=1)
  capsys.readouterr()
  [online] = glob.glob(os.path.join(ray_dir, 'runs', 'R-CRR_*'))
  assert ray_engine.attempts(online) == 2  # Retried once, after the kill.
  # The first attempt started the run, the retry resumed it.
  with open(os.path.join(online, 'launch.log')) as f:
    assert [l.split()[-2] for l in f if l.startswith('=== ')] == ['start', 'resume']
  ledger = ledger_lib.Ledger.read(online)
  assert ledger.done and ledger.resumes == 1 and ledger.spent == ledger.budget == 44
  assert ledger.discarded_episodes <= 1
  text = open(report.write_report(ray_dir)).read()
  assert '2 Ray attempts' in text, text

  assert runner.main(common + ['--workdir', local_dir, '--workers', '2']) == 0
  report.write_report(local_dir)
  cells = {}
  for name, directory in (('ray', ray_dir), ('local', local_dir)):
    with open(os.path.join(directory, 'report', 'results.json')) as f:
      cells[name] = [c for c in json.load(f)['cells'] if c['method'] == 'CRR']
  assert cells['ray'] == cells['local'] and cells['ray']


def _ray_actor_args(data_dir, workdir):
  """A DAgger run of 12 episodes by 2 Ray actors, checkpointing every 3 episodes."""
  return ['--method', 'dagger', '--triplet', 'triplet1', '--teacher', 'generalization',
          '--obs', 'state', '--budget', '12', '--offline_episodes', '0',
          '--data_dir', data_dir, '--build_dataset', 'false', '--episode_steps', '20',
          '--batch_size', '16', '--min_replay_size', '10', '--eval_every', '0',
          '--final_eval_episodes', '2', '--network_size', '32', '--progress', 'false',
          '--num_actors', '2', '--actor_engine', 'ray', '--checkpoint_every_episodes', '3',
          '--checkpoint_every_s', '1e9', '--replay_timeout_ms', '30000', '--workdir', workdir]


def _logged_seeds(workdir):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  seeds = []
  for segment in episode_log.recover_segments(os.path.join(workdir, 'episodes')):
    episodes = tfds.builder_from_directory(segment).as_dataset(split='train')
    seeds += [int(s) for s in episodes.map(lambda e: e['episode_seed']).as_numpy_iterator()]
  return sorted(seeds)


def _expected_seeds(budget):
  return sorted(actors_lib.student_episode_seed('triplet1', 0, i) for i in range(budget))


def test_ray_actor_killed_mid_episode_gives_its_token_back(cluster, tmp_path, capsys,
                                                           monkeypatch):
  """Actors on both worker nodes; actor 0 dies at its 10th env step, in its first
  episode (each actor gets one at the start, whatever the load): a new actor
  collects that episode and the budget stays exact."""
  del cluster
  workdir = str(tmp_path / 'run')
  monkeypatch.setenv(faults.KILL_ACTOR_AT_ENV_STEP, '10')
  assert launch.main(_ray_actor_args(str(tmp_path / 'data'), workdir)) == 0
  out = capsys.readouterr().out
  assert 'Actor 0 died while collecting episode' in out and 'actor 2 takes its place' in out
  ledger = ledger_lib.Ledger.read(workdir)
  assert ledger.done and ledger.spent == ledger.budget == ledger.online_episodes == 12
  assert ledger.env_steps == ledger.replay_inserts == 12 * 20
  assert ledger.discarded_episodes == 1  # Cut off, and collected again in full.
  [(segment, cut_seed)] = episode_log.cut_off_episodes(os.path.join(workdir, 'episodes'))
  assert os.path.basename(segment) in out
  seeds = _logged_seeds(workdir)
  assert seeds == _expected_seeds(12) and cut_seed in seeds


def test_ray_actor_run_stops_on_sigterm_and_resumes_to_the_exact_budget(tmp_path, capsys,
                                                                        monkeypatch):
  """Without a cluster the run starts a local one, and `ray.init` installs its own
  SIGTERM handler (exit at once): the run's handler must survive it."""
  assert not ray.is_initialized()
  workdir, data_dir = str(tmp_path / 'run'), str(tmp_path / 'data')
  monkeypatch.setenv(faults.SIGTERM_AFTER_EPISODES, '4')
  assert launch.main(_ray_actor_args(data_dir, workdir)) == 143
  assert '--resume' in capsys.readouterr().err
  ledger = ledger_lib.Ledger.read(workdir)
  assert not ledger.done and 4 <= ledger.online_episodes < 12
  monkeypatch.delenv(faults.SIGTERM_AFTER_EPISODES)
  assert launch.main(_ray_actor_args(data_dir, workdir) + ['--resume']) == 0
  ledger = ledger_lib.Ledger.read(workdir)
  assert ledger.done and ledger.spent == ledger.budget == 12 and ledger.resumes == 1
  assert ledger.env_steps == 12 * 20 and ledger.discarded_episodes <= 2
  assert _logged_seeds(workdir) == _expected_seeds(12)


def test_a_run_task_asks_for_the_cpus_its_actors_need():
  def run(**settings):
    return grid.Run(settings=dict(dict(method='R-CRR', budget=10, offline_episodes=5),
                                  **settings), sweep='grid', overrides={})
  assert ray_engine.resources(run()) == dict(num_cpus=1, num_gpus=0.0)
  assert ray_engine.resources(run(num_actors=3), 0.5) == dict(num_cpus=3, num_gpus=0.5)
  # Ray actors ask for their own CPUs, wherever they land.
  assert ray_engine.resources(run(num_actors=3, actor_engine='ray')) == dict(num_cpus=1,
                                                                              num_gpus=0.0)


def test_stopped_study_on_ray_checkpoints_its_run(tmp_path):
  """SIGTERM to the runner cancels the Ray task, which stops its launcher: a final
  checkpoint, exit 143 for the study, and no launcher left behind."""
  spec = tmp_path / 'long.yaml'
  spec.write_text(yaml.safe_dump(dict(
      name='long', defaults=dict(DEFAULTS, checkpoint_every_episodes=0),
      grid=dict(methods=['R-CRR'], budgets=[4004], offline_episodes={4004: [4]}))))
  workdir = str(tmp_path / 'study')
  with open(tmp_path / 'out.log', 'w') as out:
    study = subprocess.Popen(
        [sys.executable, '-m', 'learners.study', '--spec', str(spec), '--workdir', workdir,
         '--data_dir', str(tmp_path / 'data'), '--engine', 'ray'],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), stdout=out,
        stderr=subprocess.STDOUT)
    try:
      deadline = time.monotonic() + 300
      progress = {}
      while progress.get('spent', 0) < 30 and time.monotonic() < deadline:
        time.sleep(1)
        for path in glob.glob(os.path.join(workdir, 'runs', '*', 'progress.json')):
          try:
            with open(path) as f:
              progress = json.load(f)
          except ValueError:  # Caught mid-write.
            pass
      assert progress.get('spent', 0) >= 30, 'the run did not get going'
      study.send_signal(signal.SIGTERM)
      assert study.wait(timeout=120) == 143
    finally:
      study.kill()
  text = (tmp_path / 'out.log').read_text()
  assert 'with a final checkpoint' in text and 'stopped by SIGTERM' in text, text
  [run_dir] = glob.glob(os.path.join(workdir, 'runs', '*'))
  ledger = ledger_lib.Ledger.read(run_dir)
  assert not ledger.done and ledger.online_episodes > 0
  assert os.path.exists(os.path.join(run_dir, 'checkpoints', 'learner',
                                     f'ckpt-{ledger.grad_steps}.index'))
  assert 'stopped by SIGTERM' in open(os.path.join(run_dir, 'launch.log')).read()
