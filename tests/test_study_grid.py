"""Study runner: grid expansion, checks, config hashes, run states, dry run."""

import json
import os
import sys
import time

import pytest
import yaml

from learners.study import cost as cost_lib
from learners.study import grid
from learners.study import progress_lines
from learners.study import runner
from learners.study import spec as spec_lib
from learners.training import workdir as run_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _spec(tmp_path, data, name='s.yaml'):
  path = tmp_path / name
  path.write_text(yaml.safe_dump(data))
  return str(path)


def test_study_paper_grid_size():
  spec = spec_lib.load_spec(os.path.join(REPO, 'studies', 'paper_sim.yaml'))
  runs = grid.expand(spec)
  # Per (triplet, teacher, seed): 6 mixed methods x (2 + 4 + 6) sizes below the
  # budgets 5000/10000/15000, plus BC, CRR, DAgger, MPO at each budget.
  assert len(runs) == (6 * 12 + 4 * 3) * 5 * 2 * 2
  assert len({r.name for r in runs}) == len(runs)
  crr = [r.config for r in runs if r.config['method'] == 'CRR']
  assert all(c['offline_episodes'] == c['budget'] for c in crr)
  mpo = [r.config for r in runs if r.config['method'] == 'MPO']
  assert all(c['offline_episodes'] == 0 for c in mpo)
  groups = grid.dataset_groups(runs)
  assert len(groups) == 10  # One Beam job per (triplet, teacher), state obs.
  assert max(next(iter(groups.values()))) == 15000


def test_study_laptop_and_demo_specs_expand():
  for name in ('laptop', 'laptop_scripted', 'laptop_scripted_a', 'laptop_triplet2',
               'laptop_triplet2_a', 'laptop_triplet2_b', 'laptop_triplet2_c',
               'laptop_triplet2_d', 'laptop_triplet2_e', 'demo'):
    runs = grid.expand(spec_lib.load_spec(os.path.join(REPO, 'studies', f'{name}.yaml')))
    assert runs and all(r.config['obs'] == 'state' for r in runs)


def _grid_configs(name, keep=lambda config: True, sweep='grid', **replace):
  """{(seed, the rest of the config as JSON)} of a shipped spec's runs in `sweep` (the
  main grid unless named), with `replace` applied to the rest: which runs of two specs
  are the same but for the seed."""
  runs = grid.expand(spec_lib.load_spec(os.path.join(REPO, 'studies', f'{name}.yaml')))
  return {(r.config['seed'], json.dumps(dict({k: v for k, v in r.config.items() if k != 'seed'},
                                             **replace), sort_keys=True))
          for r in runs if r.sweep == sweep and keep(r.config)}


def _crr_at_500(config):
  return config['method'] == 'CRR' and config['budget'] == 500


def test_study_laptop_triplet2_b_repeats_the_b_cells_on_new_seeds():
  """Its runs pool with laptop_triplet2's (docs/results/laptop_triplet2_b): the same
  configs as that study's CRR and R-CRR at 100, the seed apart."""
  replica, original = _grid_configs('laptop_triplet2_b'), _grid_configs('laptop_triplet2')
  assert sorted({seed for seed, _ in replica}) == [5, 6, 7, 8]
  assert not {seed for seed, _ in replica} & {seed for seed, _ in original}
  assert len({c for _, c in replica}) == 2 and {c for _, c in replica} <= {c for _, c in original}


def test_study_laptop_triplet2_d_is_c_with_seven_times_the_online_episodes():
  """docs/results/laptop_triplet2_d: laptop_triplet2_c's eta = 0.03 runs with 1 750 online
  episodes instead of 250, at the paper's update rate (the default) instead of one
  gradient step per env step; the same 250 offline episodes and seeds (and two more),
  nothing else."""
  longer = {'budget': 2000, 'grad_steps': 140000, 'eval_every': 35000,
            'env_steps_per_grad_step': 5}
  c = _grid_configs('laptop_triplet2_c', sweep='eta', **longer)
  assert sorted(seed for seed, _ in c) == [0, 1]
  d = _grid_configs('laptop_triplet2_d')
  assert sorted(seed for seed, _ in d) == [0, 1, 2, 3]
  assert len({config for _, config in c}) == 1
  assert {config for _, config in d} == {config for _, config in c}


def test_study_laptop_triplet2_e_is_a_crr_cell_at_d_budget_and_steps():
  """docs/results/laptop_triplet2_e: laptop_triplet2_a's CRR at 500 (the row's eta) with
  laptop_triplet2_d's budget, all of it teacher data, and d's gradient steps and
  evaluation points; seeds 0-3, nothing else."""
  (d,) = {config for _, config in _grid_configs('laptop_triplet2_d')}
  d = json.loads(d)
  a = _grid_configs('laptop_triplet2_a', _crr_at_500, budget=d['budget'],
                    offline_episodes=d['budget'], grad_steps=d['grad_steps'],
                    eval_every=d['eval_every'])
  e = _grid_configs('laptop_triplet2_e')
  assert sorted(seed for seed, _ in e) == [0, 1, 2, 3]
  assert {c for _, c in e} == {c for _, c in a}


def test_study_laptop_triplet2_f_is_b_at_20_episodes():
  """docs/results/laptop_triplet2_f: laptop_triplet2_b's two cells at budget 20 (R-CRR: 10
  offline, 30 gradient steps per env step instead of 5), 200 final evaluation episodes
  instead of 100; seeds 0-3, nothing else."""
  def at_20(config):
    crr = config['method'] == 'CRR'
    return dict(budget=20, offline_episodes=20 if crr else 10, final_eval_episodes=200,
                grad_steps_per_update=config['grad_steps_per_update'] if crr else 30)
  b = {json.dumps(dict(json.loads(c), **at_20(json.loads(c))), sort_keys=True)
       for _, c in _grid_configs('laptop_triplet2_b')}
  f = _grid_configs('laptop_triplet2_f')
  assert sorted({seed for seed, _ in f}) == [0, 1, 2, 3] and len(f) == 8
  assert len(b) == 2 and {c for _, c in f} == b


@pytest.mark.parametrize('name, original, seeds', [
    ('laptop_scripted_a', 'laptop_scripted', [0, 1, 2, 3, 4, 5]),
    ('laptop_triplet2_a', 'laptop_triplet2', [0, 1, 2, 3, 4, 5])])
def test_study_a_specs_rerun_crr_at_500_with_more_evaluation(name, original, seeds):
  """docs/results/laptop_scripted_a and laptop_triplet2_a: their study's CRR at 500 on
  more seeds, evaluated on 200 final episodes (the teacher's starts) instead of 100;
  nothing else differs."""
  replica = _grid_configs(name, _crr_at_500, final_eval_episodes=100)
  assert sorted(seed for seed, _ in replica) == seeds
  assert len({c for _, c in replica}) == 1
  assert {c for _, c in replica} == {c for _, c in _grid_configs(original, _crr_at_500)}
  # The eta sweep pairs with the grid's seeds: the same runs but for the temperature.
  runs = grid.expand(spec_lib.load_spec(os.path.join(REPO, 'studies', f'{name}.yaml')))
  by_sweep = {}
  for r in runs:
    by_sweep.setdefault(r.sweep, {})[r.config['seed']] = r.config
  assert sorted(by_sweep) == ['eta', 'grid'] and sorted(by_sweep['eta']) == seeds
  for seed, config in by_sweep['eta'].items():
    assert config == dict(by_sweep['grid'][seed], eta=0.3)


def test_study_invalid_entries_listed_together(tmp_path):
  path = _spec(tmp_path, dict(
      grid=dict(methods=['R-CRR', 'SAC'], budgets=[100], offline_episodes=[50, 100, 150],
                triplets=['triplet1', 'triplet9'], overrides={'temperature': [0.5]}),
      sweeps=[dict(name='offline_only', methods=['CRR'], budgets=[100],
                   offline_episodes=[50])]))
  with pytest.raises(spec_lib.SpecError) as e:
    grid.expand(spec_lib.load_spec(path))
  text = str(e.value)
  assert "Unknown method 'SAC'" in text
  assert "unknown triplet 'triplet9'" in text
  assert 'R-CRR at budget 100: offline_episodes [100, 150] must be > 0 and < the budget' in text
  assert "override 'temperature' is not a launcher setting" in text
  assert 'CRR is offline-only: offline_episodes [50] != budget 100' in text
  assert text.startswith('5 invalid entries')


def test_study_unknown_keys_rejected(tmp_path):
  with pytest.raises(spec_lib.SpecError, match='unknown keys'):
    spec_lib.load_spec(_spec(tmp_path, dict(grid=dict(methods=['BC'], budgets=[5]), gird={})))
  with pytest.raises(spec_lib.SpecError, match='cannot be set there'):
    grid.expand(spec_lib.load_spec(_spec(tmp_path, dict(
        grid=dict(methods=['BC'], budgets=[5]), defaults=dict(seed=3, nonsense=1)))))


def test_study_launcher_checks_run_up_front(tmp_path):
  path = _spec(tmp_path, dict(grid=dict(methods=['R-CRR'], budgets=[10],
                                        offline_episodes=[5]),
                              defaults=dict(batch_size=0)))
  with pytest.raises(spec_lib.SpecError, match='batch_size must be >= 1'):
    grid.expand(spec_lib.load_spec(path))


def test_study_beta_and_batch_ratio_sweeps(tmp_path):
  path = _spec(tmp_path, dict(
      grid=dict(methods=['R-CRR'], budgets=[10], offline_episodes=[5]),
      sweeps=[dict(name='beta', methods=['R-CRR'], budgets=[10], offline_episodes=[5],
                   overrides={'beta': [0.0, 1.0]}),
              dict(name='batch_ratio', methods=['R-CRR'], budgets=[10],
                   offline_episodes=[5], overrides={'offline_fraction': [0.25]})]))
  runs = grid.expand(spec_lib.load_spec(path))
  assert sorted((r.sweep, r.config['beta'], r.config['offline_fraction']) for r in runs) == [
      ('batch_ratio', None, 0.25), ('beta', 0.0, None), ('beta', 1.0, None),
      ('grid', None, None)]
  bad = _spec(tmp_path, dict(grid=dict(methods=['DAgger'], budgets=[10],
                                       overrides={'beta': [0.5]})))
  with pytest.raises(spec_lib.SpecError, match='teacher only'):
    grid.expand(spec_lib.load_spec(bad))


def test_study_teacher_policy_mode_sweep_gets_its_own_dataset_group(tmp_path):
  path = _spec(tmp_path, dict(
      grid=dict(methods=['CRR', 'BC'], budgets=[10, 20]),
      sweeps=[dict(name='deterministic_data', methods=['CRR'], budgets=[20],
                   overrides={'teacher_policy_mode': ['deterministic']})]))
  groups = grid.dataset_groups(grid.expand(spec_lib.load_spec(path)))
  assert {(g.policy_mode, tuple(sizes)) for g, sizes in groups.items()} == {
      ('stochastic', (10, 20)), ('deterministic', (20,))}
  bad = _spec(tmp_path, dict(grid=dict(methods=['MPO'], budgets=[10],
                                       overrides={'teacher_policy_mode': ['deterministic']})))
  with pytest.raises(spec_lib.SpecError, match='does not sample'):
    grid.expand(spec_lib.load_spec(bad))


def test_study_grid_of_blocks(tmp_path):
  # CRR at both budgets, R-CRR only at the smaller: no single cross product.
  path = _spec(tmp_path, dict(grid=[
      dict(methods=['CRR'], budgets=[10, 20]),
      dict(methods=['R-CRR'], budgets=[10], offline_episodes=[5], seeds=[0, 1])]))
  runs = grid.expand(spec_lib.load_spec(path))
  assert sorted((r.config['method'], r.config['budget'], r.config['seed']) for r in runs) == [
      ('CRR', 10, 0), ('CRR', 20, 0), ('R-CRR', 10, 0), ('R-CRR', 10, 1)]
  assert {r.sweep for r in runs} == {'grid'}  # One main grid for the report.
  with pytest.raises(spec_lib.SpecError, match=r'grid\[1\]: `budgets` is required'):
    spec_lib.load_spec(_spec(tmp_path, dict(grid=[dict(methods=['CRR'], budgets=[10]),
                                                  dict(methods=['BC'])])))
  with pytest.raises(spec_lib.SpecError, match='empty list'):
    spec_lib.load_spec(_spec(tmp_path, dict(grid=[])))
  with pytest.raises(spec_lib.SpecError, match='takes no `name`'):
    spec_lib.load_spec(_spec(tmp_path, dict(grid=[dict(name='x', methods=['CRR'],
                                                        budgets=[10])])))


def test_study_seed_major_run_order(tmp_path):
  blocks = [dict(methods=['CRR'], budgets=[10, 20], seeds=[0, 1]),
            dict(methods=['R-CRR'], budgets=[10], offline_episodes=[5], seeds=[3, 4])]
  order = lambda runs: [(r.config['method'], r.config['budget'], r.config['seed']) for r in runs]
  listed = grid.expand(spec_lib.load_spec(_spec(tmp_path, dict(grid=blocks))))
  assert order(listed) == [('CRR', 10, 0), ('CRR', 10, 1), ('CRR', 20, 0), ('CRR', 20, 1),
                           ('R-CRR', 10, 3), ('R-CRR', 10, 4)]
  seed_major = grid.expand(spec_lib.load_spec(_spec(
      tmp_path, dict(grid=blocks, run_order='seed_major'))))
  # Each cell's first seed (R-CRR's is 3) before any cell's second.
  assert order(seed_major) == [('CRR', 10, 0), ('CRR', 20, 0), ('R-CRR', 10, 3),
                               ('CRR', 10, 1), ('CRR', 20, 1), ('R-CRR', 10, 4)]
  assert {r.name for r in seed_major} == {r.name for r in listed}  # Same runs, same hashes.
  with pytest.raises(spec_lib.SpecError, match='`run_order` must be one of'):
    spec_lib.load_spec(_spec(tmp_path, dict(grid=blocks, run_order='random')))


def test_study_config_hash():
  runs = grid.expand(spec_lib.load_spec(os.path.join(REPO, 'studies', 'demo.yaml')))
  config = dict(runs[0].settings)
  key = grid.config_hash(config)
  assert key == grid.config_hash(dict(reversed(list(config.items()))))  # Order-free.
  assert key == grid.config_hash(dict(config, data_dir='/elsewhere', progress=True,
                                       checkpoint_every_s=1.0))  # Not identity.
  assert key != grid.config_hash(dict(config, seed=config['seed'] + 1))
  assert runs[0].name.endswith(key)


def test_study_sweep_duplicates_run_once(tmp_path):
  path = _spec(tmp_path, dict(
      grid=dict(methods=['R-CRR'], budgets=[10], offline_episodes=[5]),
      sweeps=[dict(name='batch', methods=['R-CRR'], budgets=[10], offline_episodes=[5],
                   overrides={'batch_size': [32, 64]})]))
  runs = grid.expand(spec_lib.load_spec(path))
  # batch_size 64 is the default: that sweep run is the grid run.
  assert sorted(r.config['batch_size'] for r in runs) == [32, 64]
  assert [r.sweep for r in runs if r.config['batch_size'] == 64] == ['grid']


def test_study_run_state(tmp_path):
  runs = grid.expand(spec_lib.load_spec(os.path.join(REPO, 'studies', 'demo.yaml')))
  (run,) = [r for r in runs if r.settings['method'] == 'CRR' and r.settings['budget'] == 60]
  run_dir = tmp_path / run.name
  assert grid.run_state(str(run_dir), run.settings) == 'new'
  run_dir.mkdir()
  (run_dir / grid.ATTEMPTS_FILE).write_text('node pid 1\n')  # A Ray attempt, about to start.
  assert grid.run_state(str(run_dir), run.settings) == 'new'
  (run_dir / 'launch.log').write_text('started\n')
  assert grid.run_state(str(run_dir), run.settings) == 'partial'
  # What the launcher writes: every field resolved (offline-only: budget None),
  # plus fields a newer launcher may have added.
  saved = dict(run.config, data_dir='/x', workdir=str(run_dir), method_row='...',
               budget=None, some_new_launcher_field=1)
  (run_dir / 'config.json').write_text(json.dumps(saved))
  assert grid.run_state(str(run_dir), run.settings) == 'partial'
  (run_dir / 'summary.json').write_text('{}')
  assert grid.run_state(str(run_dir), run.settings) == 'done'
  (run_dir / 'config.json').write_text(json.dumps(dict(saved, seed=99)))
  assert grid.run_state(str(run_dir), run.settings) == 'conflict'


def test_study_cost_arithmetic():
  runs = grid.expand(spec_lib.load_spec(os.path.join(REPO, 'studies', 'demo.yaml')))
  by = {(r.config['method'], r.config['budget'], r.config['offline_episodes']): r
        for r in runs}
  cost = cost_lib.run_cost(by[('R-CRR', 120, 30)])
  assert cost.online_episodes == 90
  assert cost.grad_steps == 90 * 400 // 5
  evals = cost.grad_steps // 2000 * 10 + 50
  assert cost.eval_episodes == evals
  assert cost.env_steps == (90 + evals) * 400
  crr = cost_lib.run_cost(by[('CRR', 60, 60)])
  assert (crr.online_episodes, crr.grad_steps) == (0, 4000)
  # 3 grad steps per update, one update per env step: 15x the default's steps.
  slow = by[('R-CRR', 120, 30)]
  fast = grid.Run(dict(slow.settings, env_steps_per_grad_step=1, grad_steps_per_update=3),
                  slow.sweep, slow.overrides)
  assert cost_lib.run_cost(fast).grad_steps == 90 * 400 * 3


def test_study_cost_prices_the_online_phase_as_its_slower_thread(monkeypatch):
  rates = dict(run_overhead=10.0, actor_env_step=0.01, eval_env_step=0.001, online_overlap=1.5,
               offline_grad_step=dict(advantage=0.002, softmax=0.5),
               online_grad_step=dict(softmax=0.02), teacher_env_step=0.0)
  monkeypatch.setattr(cost_lib, 'COST_S', rates)
  runs = grid.expand(spec_lib.load_spec(os.path.join(REPO, 'studies', 'demo.yaml')))
  by = {(r.config['method'], r.config['budget'], r.config['offline_episodes']): r
        for r in runs}
  slow = by[('R-CRR', 120, 30)]
  # 90 online episodes of 400 steps: the actor's 360 s outlast the learner's
  # 7 200 grad steps (144 s); 80 evaluation episodes; no dataset-only steps.
  assert cost_lib.run_cost(slow).seconds == pytest.approx(10 + 1.5 * 360 + 80 * 400 * 0.001)
  fast = grid.Run(dict(slow.settings, env_steps_per_grad_step=1, grad_steps_per_update=3),
                  slow.sweep, slow.overrides)
  # 108 000 grad steps (2 160 s) outlast the actor; 540 + 50 evaluation episodes.
  assert cost_lib.run_cost(fast).seconds == pytest.approx(
      10 + 1.5 * 108_000 * 0.02 + 590 * 400 * 0.001)
  crr = by[('CRR', 60, 60)]  # Offline: its 4 000 steps at the dataset-only rate.
  assert cost_lib.run_cost(crr).seconds == pytest.approx(10 + 4000 * 0.002 + 70 * 400 * 0.001)


def test_study_dry_run_cli(tmp_path, capsys):
  assert runner.main(['--spec', os.path.join(REPO, 'studies', 'laptop.yaml'),
                     '--workdir', str(tmp_path / 'w'), '--dry_run']) == 0
  out = capsys.readouterr().out
  assert 'estimated time' in out and '[new     ]' in out
  assert not os.path.exists(tmp_path / 'w')  # A dry run writes nothing.
  bad = _spec(tmp_path, dict(grid=dict(methods=['SAC'], budgets=[5])))
  assert runner.main(['--spec', bad, '--dry_run']) == 2
  assert "Unknown method 'SAC'" in capsys.readouterr().err


def test_study_progress_line_of_a_run_in_progress(tmp_path):
  run_dir = str(tmp_path / 'R-CRR_x')
  os.makedirs(run_dir)
  assert progress_lines.progress_line(run_dir) is None  # Not started.
  run_files.write_json_atomic(os.path.join(run_dir, run_files.PROGRESS_FILE), dict(
      spent=41, budget=60, grad_steps=641, online_success=0.125, eval_success=None,
      time=time.time()))
  line = progress_lines.progress_line(run_dir)
  assert line.startswith('  R-CRR_x: 41/60 episodes, 641 grad steps, online success 12%, '
                         'last eval - (')
  # Written before this invocation started: a stopped run waiting for its resume.
  assert progress_lines.progress_line(run_dir, since=time.time() + 1) is None
  run_files.write_json_atomic(os.path.join(run_dir, run_files.SUMMARY_FILE), {})
  assert progress_lines.progress_line(run_dir) is None  # Done: no line.


def test_study_run_killed_after_its_summary_counts_as_done(tmp_path, monkeypatch):
  # A stop can land while a finished launcher tears down (default SIGTERM handler
  # back): exit -15, yet its summary is on disk.  That run is done, not failed.
  (run,) = grid.expand(spec_lib.load_spec(_spec(tmp_path, dict(
      grid=dict(methods=['CRR'], budgets=[10])))))
  run_dir = str(tmp_path / 'run')
  code = ('import json, os, signal, sys; d = sys.argv[1]; '
          'json.dump(json.loads(sys.argv[2]), open(os.path.join(d, "config.json"), "w")); '
          'open(os.path.join(d, "summary.json"), "w").write("{}"); '
          'os.kill(os.getpid(), signal.SIGTERM)')
  monkeypatch.setattr(runner, 'launch_command', lambda r, d, resume: [
      sys.executable, '-c', code, d, json.dumps(dict(r.settings, budget=None))])
  assert runner.execute(run, run_dir, str(tmp_path))[1] == 0
  # Finished by then (e.g. by a launcher of an earlier runner killed with SIGKILL, which
  # went on as an orphan): not launched again, its log untouched.
  log = open(os.path.join(run_dir, runner.LOG_FILE)).read()
  monkeypatch.setattr(runner, 'launch_command', lambda r, d, resume: 1 / 0)
  assert runner.execute(run, run_dir, str(tmp_path))[1] == 0
  assert open(os.path.join(run_dir, runner.LOG_FILE)).read() == log
  os.remove(os.path.join(run_dir, run_files.SUMMARY_FILE))  # Killed before it: a failure.
  monkeypatch.setattr(runner, 'launch_command', lambda r, d, resume: [
      sys.executable, '-c', 'import os, signal; os.kill(os.getpid(), signal.SIGTERM)'])
  assert runner.execute(run, run_dir, str(tmp_path))[1] == -15


def test_study_second_runner_in_the_same_workdir_is_refused(tmp_path, capsys, monkeypatch):
  def run_study(*args, **kwargs):
    raise AssertionError('the second runner started the study')
  monkeypatch.setattr(runner, 'run_study', run_study)
  workdir = str(tmp_path / 'w')
  spec = os.path.join(REPO, 'studies', 'demo.yaml')
  os.makedirs(workdir)
  with run_files.exclusive(workdir, 0.0):  # The first runner, still running.
    assert runner.main(['--spec', spec, '--workdir', workdir]) == 1
  err = capsys.readouterr().err
  assert f'Another process (pid {os.getpid()}) runs in {workdir}. One study runner at a ' \
      'time' in err and 'rerun this command' in err
  assert os.listdir(workdir) == ['.lock']  # No index, no run folder, no log.


def test_study_keeps_a_teacher_evaluation_with_more_starts_than_the_spec(tmp_path, monkeypatch):
  """learners.study.more_starts extends teachers.json; a rerun of the spec keeps it."""
  from envs import evaluate as envs_evaluate  # pylint: disable=g-import-not-at-top
  spec = spec_lib.load_spec(_spec(tmp_path, dict(grid=dict(methods=['CRR'], budgets=[10]),
                                                 teacher_eval_episodes=200)))
  runs = grid.expand(spec)
  c = runs[0].config
  cells = {'cells': [dict(teacher=c['teacher'], triplet=c['triplet'],
                          episode_steps=c['episode_steps'], episodes=1000, successes=1)]}
  run_files.write_json_atomic(str(tmp_path / 'teachers.json'), cells)
  def no_evaluation(*args, **kwargs):
    raise AssertionError('the teacher was evaluated again')
  monkeypatch.setattr(envs_evaluate, 'evaluate', no_evaluation)
  runner.evaluate_teachers(spec, runs, str(tmp_path), 1, log=lambda *a: None)
  assert run_files.read_json(str(tmp_path / 'teachers.json')) == cells
  cells['cells'][0]['episodes'] = 100  # Fewer than the spec's: evaluated again.
  run_files.write_json_atomic(str(tmp_path / 'teachers.json'), cells)
  with pytest.raises(AssertionError, match='evaluated again'):
    runner.evaluate_teachers(spec, runs, str(tmp_path), 1, log=lambda *a: None)
