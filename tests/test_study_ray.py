"""The study on Ray: a real local cluster (head + 2 worker nodes on 127.0.0.1).

A worker process is SIGKILLed in the middle of an online run: Ray retries the
run, whose launcher resumes from its checkpoint, and the offline run's result
equals the local pool's (offline runs are bit-reproducible).
"""

import glob
import json
import os
import signal
import threading
import time

import pytest
import yaml

from learners.study import ray_engine
from learners.study import report
from learners.study import runner
from learners.training import ledger as ledger_lib

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
