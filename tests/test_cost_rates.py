"""The study's cost model fitted from finished runs (`benchmarks/cost_rates.py`)."""

import importlib.util
import json
import os
import subprocess
import sys

from learners.training import ledger as ledger_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cost_rates():
  path = os.path.join(REPO, 'benchmarks', 'cost_rates.py')
  spec = importlib.util.spec_from_file_location('cost_rates', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _run(root, name, method, timing, resumes=0, grad_steps=1000, eval_episodes=10,
         env_steps=0):
  run_dir = os.path.join(root, 'runs', name)
  os.makedirs(run_dir)
  config = dict(method=method, obs='state', episode_steps=100, final_eval_episodes=5,
                offline_pretrain_steps=None)
  summary = dict(timing=timing, ledger=dict(grad_steps=grad_steps, env_steps=env_steps,
                                            eval_episodes=eval_episodes, resumes=resumes,
                                            wall_time_s=50.0))
  for file, data in (('config.json', config), ('summary.json', summary)):
    with open(os.path.join(run_dir, file), 'w') as f:
      json.dump(data, f)


def test_run_overhead_is_the_process_age_less_the_priced_work(tmp_path):
  root = str(tmp_path)
  # 60 s of life: 30 s learning, 5 s waiting for data, 10 s evaluating; the
  # rest (imports, tracing, checkpoints) is the overhead, 15 s.
  _run(root, 'a', 'CRR', dict(learner_s=30.0, data_wait_s=5.0, eval_s=10.0,
                              first_step_s=4.0, process_s=60.0))
  _run(root, 'b', 'CRR', dict(learner_s=30.0, data_wait_s=5.0, eval_s=10.0,
                              process_s=999.0), resumes=1)  # Last segment only: left out.
  _run(root, 'c', 'BC', dict(learner_s=10.0, eval_s=10.0))  # Before process_s: left out.
  # Online, learner thread beside the actor: 40 + 30 s of timers in a 50 s online
  # phase, which also holds the 5 periodic of the 10 evaluation episodes (5 s).
  _run(root, 'd', 'DAgger', dict(learner_s=40.0, actor_s=30.0, eval_s=10.0, online_s=50.0,
                                 process_s=60.0), env_steps=3000)
  # Actor-bound (the learner idles): only here does the actor's timer price its step.
  _run(root, 'e', 'DAgger', dict(learner_s=20.0, actor_s=40.0, eval_s=10.0, online_s=45.0,
                                 process_s=60.0), env_steps=4000)
  samples = _cost_rates().samples(root)
  assert samples['run_overhead'] == [15.0]
  assert samples['offline_grad_step.advantage'] == [0.035, 0.035]
  assert samples['offline_grad_step.none'] == [0.01]  # BC; the online DAgger is not in it.
  assert samples['eval_env_step'] == [0.01] * 5
  assert samples['actor_env_step'] == [40.0 / 4000]
  assert samples['online_grad_step.none'] == [0.04, 0.02]
  # The phase less its evaluations over its slower thread (40 s both times).
  assert samples['online_overlap'] == [(50.0 - 5.0) / 40.0, (45.0 - 5.0) / 40.0]


def test_process_age_counts_from_the_process_start():
  code = ('import time; time.sleep(1.0); from learners.training import ledger; '
          'print(ledger.process_age_s())')
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                       text=True, check=True).stdout
  assert 1.0 <= float(out) < 10.0
  assert 0.0 <= ledger_lib.process_age_s()  # This (pytest) process: older, still positive.
