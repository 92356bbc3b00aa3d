"""The fault table of docs/reliability.md: crashes, stops and broken checkpoints, for real.

Each online case runs the launcher as a subprocess (a kill must be a real
SIGKILL of a real process) on a tiny R-CRR run: 8 teacher + 7 online episodes
of 20 steps, a checkpoint every 2 episodes.  The resumed run must end with the
ledger of an uninterrupted run: exact budget, the same env steps, replay
inserts and grad steps (the updates its env steps call for), and every online
episode in the log exactly once.
"""

import dataclasses
import json
import os
import re
import shutil
import signal
import time

import pytest

from learners.training import actors as actors_lib
from learners.training import config as config_lib
from learners.training import faults
from learners.training import ledger as ledger_lib
from learners.training import loop
from learners.training import workdir as run_files
from test_online_training import (  # pylint: disable=unused-import
    OFFLINE, STEPS, _config, _launch, _resume_flags, data_dir)
from test_online_multi_actor import _episodes_by_segment

ONLINE = 7
# What the counts of a run depend on; wall time, resumes and discards do not.
_COUNTS = ('budget', 'online_episodes', 'env_steps', 'grad_steps', 'offline_items',
           'online_items', 'replay_inserts', 'eval_episodes', 'done')


@pytest.fixture(scope='module')
def reference(data_dir, tmp_path_factory):
  """The ledger of the same run, never interrupted."""
  workdir = str(tmp_path_factory.mktemp('reference'))
  proc = _launch(_resume_flags(data_dir) + ['--workdir', workdir])
  assert proc.returncode == 0, proc.stderr[-3000:]
  return ledger_lib.Ledger.read(workdir)


def _crash_and_resume(data_dir, workdir, fault, value, extra=(), expect_rc=-9,
                      check_refusal=False):
  """Launches with a fault hook set, checks it struck, resumes; returns both processes."""
  common = _resume_flags(data_dir) + list(extra) + ['--workdir', workdir]
  crashed = _launch(common, env=dict(os.environ, **{fault: str(value)}))
  assert crashed.returncode == expect_rc, crashed.stderr[-3000:]
  if check_refusal:  # Without --resume the workdir is refused, not re-initialised.
    refused = _launch(common)
    assert refused.returncode == 1 and '--resume' in refused.stderr, refused.stderr[-3000:]
  resumed = _launch(common + ['--resume'])
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  return crashed, resumed


def _assert_as_if_uninterrupted(workdir, reference, discarded):
  ledger = ledger_lib.Ledger.read(workdir)
  for field in _COUNTS:
    assert getattr(ledger, field) == getattr(reference, field), field
  assert ledger.spent == ledger.budget == OFFLINE + ONLINE
  assert ledger.discarded_episodes == discarded and ledger.resumes == 1
  # Every online episode is in the log once: nothing collected twice, nothing lost.
  seeds = sorted(s for segment in _episodes_by_segment(workdir).values() for s in segment)
  assert seeds == sorted(actors_lib.student_episode_seed('triplet1', 0, i)
                         for i in range(ONLINE))
  return ledger


def test_kill_before_the_first_checkpoint_ingests_the_logged_episodes(data_dir, tmp_path,
                                                                      reference):
  workdir = str(tmp_path / 'run')
  # No checkpoint before episode 10; killed after 3: only the log holds them.
  _, resumed = _crash_and_resume(data_dir, workdir, faults.KILL_AFTER_EPISODES, 3,
                                 extra=['--checkpoint_every_episodes', '10'])
  assert 'Ingested 3 complete episodes' in resumed.stdout, resumed.stdout
  _assert_as_if_uninterrupted(workdir, reference, discarded=0)


def test_kill_mid_episode_loses_only_that_episode(data_dir, tmp_path, reference):
  workdir = str(tmp_path / 'run')
  # Checkpoint after episode 4; episode 5 is complete in the log, episode 6 is
  # 7 steps in when SIGKILL comes.
  _, resumed = _crash_and_resume(data_dir, workdir, faults.KILL_AT_ENV_STEP, 5 * STEPS + 7,
                                 check_refusal=True)
  assert 'Resuming' in resumed.stdout and 'Ingested 1 complete episodes' in resumed.stdout
  assert '1 online episodes were cut off' in resumed.stdout, resumed.stdout
  _assert_as_if_uninterrupted(workdir, reference, discarded=1)


def test_kill_during_a_checkpoint_rebuilds_the_replay_from_the_log(data_dir, tmp_path,
                                                                   reference):
  workdir = str(tmp_path / 'run')
  # Killed inside the checkpoint at 6 episodes, after Reverb replaced its
  # checkpoint of 4 episodes: the learner's checkpoint (4) has no replay left.
  _, resumed = _crash_and_resume(data_dir, workdir, faults.KILL_IN_CHECKPOINT, 6)
  assert 'is gone' in resumed.stdout and 'Rebuilt the replay' in resumed.stdout, resumed.stdout
  assert 'Ingested 2 complete episodes' in resumed.stdout
  _assert_as_if_uninterrupted(workdir, reference, discarded=0)


def test_sigterm_writes_a_final_checkpoint_and_exits_143(data_dir, tmp_path, reference):
  workdir = str(tmp_path / 'run')
  stopped, resumed = _crash_and_resume(data_dir, workdir, faults.SIGTERM_AFTER_EPISODES, 3,
                                       expect_rc=128 + signal.SIGTERM)
  assert 'SIGTERM' in stopped.stderr and 'final checkpoint' in stopped.stderr
  assert '--resume' in stopped.stderr.splitlines()[-1], stopped.stderr
  # The final checkpoint holds the 3 episodes: the resume has nothing to ingest.
  assert 'Ingested' not in resumed.stdout
  assert 'Resuming' in resumed.stdout and '11/15 episodes spent' in resumed.stdout
  _assert_as_if_uninterrupted(workdir, reference, discarded=0)


def test_reverb_gone_stops_in_its_timeout_and_resumes_cleanly(data_dir, tmp_path, reference):
  workdir = str(tmp_path / 'run')
  start = time.monotonic()
  crashed, _ = _crash_and_resume(data_dir, workdir, faults.STOP_REPLAY_AFTER_EPISODES, 3,
                                 extra=['--replay_timeout_ms', '5000'], expect_rc=1)
  assert time.monotonic() - start < 300
  err = crashed.stderr
  assert 'Replay failure' in err and 'ckpt-' in err and '--resume' in err, err[-3000:]
  _assert_as_if_uninterrupted(workdir, reference, discarded=0)


# --- Checkpoint integrity: refused with the file named, nothing changed on disk ------


@pytest.fixture(scope='module')
def checkpointed(data_dir, tmp_path_factory):
  """A finished offline CRR run (checkpoint at step 4) to break in copies."""
  workdir = str(tmp_path_factory.mktemp('checkpointed'))
  config = _config(data_dir, workdir, 'CRR', grad_steps=4, eval_every=0)
  loop.train(config, log=lambda *a: None)
  return config


def _snapshot(directory):
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      with open(os.path.join(root, name), 'rb') as f:
        out[os.path.relpath(os.path.join(root, name), directory)] = f.read()
  return out


def _break(path, how):
  data = open(path, 'rb').read()
  with open(path, 'wb') as f:
    f.write({'garbage': b'\x00\xffnot a checkpoint state\n{{',
             'text': b'this is not a checkpoint state {{\n',
             'truncated': data[:len(data) // 2],
             'dangling': b'model_checkpoint_path: "ckpt-99"\n'
                         b'all_model_checkpoint_paths: "ckpt-99"\n'}[how])


def test_resume_on_other_dataset_bytes_is_refused(checkpointed, tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(checkpointed.workdir, workdir)
  recorded = os.path.join(workdir, run_files.DATASET_FILE)
  manifest = json.load(open(recorded))
  shard = sorted(manifest['files'])[0]
  manifest['files'][shard]['sha256'] = '0' * 64  # As if the run had started on other bytes.
  with open(recorded, 'w') as f:
    json.dump(manifest, f)
  before = _snapshot(workdir)
  config = dataclasses.replace(checkpointed, workdir=workdir, resume=True)
  with pytest.raises(config_lib.TrainingError, match='not the one this run started on'):
    loop.train(config, log=lambda *a: None)
  after = _snapshot(workdir)
  after.pop(run_files.CONFIG_FILE)  # Rewritten with the same settings.
  before.pop(run_files.CONFIG_FILE)
  assert after == before


@pytest.mark.parametrize('target,how,message,named', [
    ('checkpoints/learner/checkpoint', 'garbage', 'is unreadable', 'checkpoint'),
    ('checkpoints/learner/checkpoint', 'text', 'names no readable checkpoint', 'checkpoint'),
    ('checkpoints/learner/checkpoint', 'truncated', 'names no readable', 'checkpoint'),
    ('checkpoints/learner/checkpoint', 'dangling', 'not on disk', 'ckpt-99'),
    ('checkpoints/learner/ckpt-4.index', 'truncated', 'is unreadable', 'ckpt-4'),
    ('checkpoints/state/state-4.json', 'truncated', 'is unreadable', 'state-4.json'),
])
def test_broken_checkpoint_is_refused_with_the_file_named(checkpointed, tmp_path, target, how,
                                                          message, named):
  workdir = str(tmp_path / 'run')
  shutil.copytree(checkpointed.workdir, workdir)
  _break(os.path.join(workdir, target), how)
  before = _snapshot(workdir)
  config = dataclasses.replace(checkpointed, workdir=workdir, resume=True)
  with pytest.raises(config_lib.TrainingError, match=message) as error:
    loop.train(config, log=lambda *a: None)
  assert os.path.join(workdir, os.path.dirname(target)) in str(error.value)
  assert named in str(error.value), str(error.value)
  after = _snapshot(workdir)
  after.pop(run_files.CONFIG_FILE)  # Rewritten with the same settings.
  before.pop(run_files.CONFIG_FILE)
  assert after == before


def test_replay_checkpoint_that_disagrees_with_the_ledger_is_refused(data_dir, tmp_path):
  config = _config(data_dir, tmp_path / 'run', 'R-CRR', checkpoint_every_episodes=1,
                   checkpoint_every_s=1e9, eval_every=0)
  loop.train(config, log=lambda *a: None)
  # Swap in the replay checkpoint of another run: the learner's ledger does not match it.
  other = _config(data_dir, tmp_path / 'other', 'R-CRR', budget=OFFLINE + 1, eval_every=0)
  loop.train(other, log=lambda *a: None)
  mine = os.path.join(config.workdir, run_files.REPLAY_DIR)
  [name] = os.listdir(mine)
  [theirs] = os.listdir(os.path.join(other.workdir, run_files.REPLAY_DIR))
  shutil.rmtree(os.path.join(mine, name))
  shutil.copytree(os.path.join(other.workdir, run_files.REPLAY_DIR, theirs),
                  os.path.join(mine, name))
  with pytest.raises(config_lib.TrainingError, match=re.escape(name) + ' holds .* refusing'):
    loop.train(dataclasses.replace(config, resume=True), log=lambda *a: None)


# --- The study runner forwards a stop to its runs ------------------------------------


def test_study_runner_forwards_sigterm_and_the_rerun_resumes(tmp_path, capsys):
  import glob  # pylint: disable=g-import-not-at-top
  import threading  # pylint: disable=g-import-not-at-top
  import yaml  # pylint: disable=g-import-not-at-top
  from learners.study import runner  # pylint: disable=g-import-not-at-top
  spec = tmp_path / 'one.yaml'
  spec.write_text(yaml.safe_dump(dict(
      name='one', defaults=dict(episode_steps=STEPS, batch_size=16, min_replay_size=10,
                                eval_every=0, final_eval_episodes=2, network_size=32),
      grid=dict(methods=['R-CRR'], budgets=[OFFLINE + 40],
                offline_episodes={OFFLINE + 40: [OFFLINE]}))))
  workdir = str(tmp_path / 'study')
  args = ['--spec', str(spec), '--workdir', workdir, '--workers', '1', '--progress_every', '1']

  def stop_once_collecting():
    # The first online episode on disk: the run is mid-way through its budget.
    deadline = time.monotonic() + 600
    while not glob.glob(os.path.join(workdir, 'runs', '*', 'episodes', 'segment-*',
                                     '*.tfrecord*')):
      assert time.monotonic() < deadline
      time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)

  threading.Thread(target=stop_once_collecting, daemon=True).start()
  assert runner.main(args) == 128 + signal.SIGTERM
  captured = capsys.readouterr()
  assert 'stopped R-CRR' in captured.out and 'rerun the same command' in captured.err
  assert 'runs in progress:' in captured.out and '/48 episodes' in captured.out, captured.out
  [run_dir] = glob.glob(os.path.join(workdir, 'runs', '*'))
  assert 'stopped by SIGTERM' in open(os.path.join(run_dir, runner.LOG_FILE)).read()
  stopped = ledger_lib.Ledger.read(run_dir)
  assert not stopped.done and stopped.online_episodes < 40
  assert runner.main(args) == 0
  ledger = ledger_lib.Ledger.read(run_dir)
  assert ledger.done and ledger.resumes == 1 and ledger.spent == ledger.budget == OFFLINE + 40
  assert ledger.discarded_episodes <= 1
