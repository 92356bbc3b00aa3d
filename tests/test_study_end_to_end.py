"""A real study end to end: Beam dataset, launcher subprocesses, kill, resume, report.

Short (20-step) episodes and tiny sizes keep it to a few minutes; marked slow.
"""

import json
import os

import pytest
import yaml

from learners.study import grid
from learners.study import report
from learners.study import runner
from learners.training import faults

DEFAULTS = dict(episode_steps=20, grad_steps=6, batch_size=16, min_replay_size=10,
                eval_every=4, eval_episodes=1, final_eval_episodes=2, network_size=32,
                log_every=1, offline_shuffle=64, checkpoint_every_episodes=1)


def _spec(tmp_path, **defaults):
  path = tmp_path / 'tiny.yaml'
  path.write_text(yaml.safe_dump(dict(
      name='tiny', defaults=dict(DEFAULTS, **defaults),
      grid=dict(methods=['CRR', 'R-CRR'], budgets=[8, 12],
                offline_episodes={8: [4], 12: [8]}))))
  return str(path)


@pytest.mark.slow
def test_study_runs_resumes_after_kill_and_reports(tmp_path, capsys, monkeypatch):
  workdir = str(tmp_path / 'study')
  # First attempt: every online run kills itself (SIGKILL) after 2 episodes.
  monkeypatch.setenv(faults.KILL_AFTER_EPISODES, '2')
  assert runner.main(['--spec', _spec(tmp_path), '--workdir', workdir, '--workers', '2']) == 1
  monkeypatch.delenv(faults.KILL_AFTER_EPISODES)
  out = capsys.readouterr().out
  assert 'FAILED R-CRR' in out and 'exit -9' in out
  runs = {r['name']: r for r in json.load(open(os.path.join(workdir, 'study.json')))['runs']}
  assert len(runs) == 4  # CRR at 8 and 12; R-CRR 8 = 4 + 4 online, 12 = 8 + 4 online.
  states = {n: grid.run_state(os.path.join(workdir, 'runs', n), r['settings'])
            for n, r in runs.items()}
  assert sorted(states.values()) == ['done', 'done', 'partial', 'partial']
  # Second attempt without the fault: resumes.
  assert runner.main(['--spec', _spec(tmp_path), '--workdir', workdir, '--workers', '2']) == 0
  out = capsys.readouterr().out
  assert '2 of 4 runs already done; 2 to resume, 0 to start' in out
  for name, run in runs.items():
    ledger = json.load(open(os.path.join(workdir, 'runs', name, 'ledger.json')))
    assert ledger['done']
    if run['config']['method'] == 'R-CRR':
      assert ledger['resumes'] == 1
      assert ledger['spent'] == ledger['budget'] == run['config']['budget']
  # Third attempt: nothing to do.
  assert runner.main(['--spec', _spec(tmp_path), '--workdir', workdir]) == 0
  assert '4 of 4 runs already done' in capsys.readouterr().out
  text = open(report.write_report(workdir)).read()
  assert 'Episodes are [20] steps long' in text
  assert '**Budget 12 episodes**' in text  # A recommendation (or 'no run succeeded').
