"""Method rows carry their facts; run fields are tagged once; the grad-step schedule."""

import dataclasses
import json
import os

import pytest

from learners import methods as methods_lib
from learners.study import grid
from learners.training import config as config_lib
from learners.training import grad_schedule
from learners.training import launch
from learners.training import workdir as run_files


def test_method_rows_carry_key_kind_and_pretrain_steps():
  rows = methods_lib.METHODS
  assert [m.key for m in methods_lib.METHOD_TABLE] == [
      'bc', 'crr', 'crr_mixed', 'awac', 'dagger', 'dagger_mixed', 'mpo', 'r_mpo', 'r_crr',
      'r_crr_target']
  kinds = {m.name: m.kind for m in methods_lib.METHOD_TABLE}
  assert {n for n, k in kinds.items() if k == 'offline'} == {'BC', 'CRR'}
  assert {n for n, k in kinds.items() if k == 'online'} == {'DAgger', 'MPO'}
  assert rows['AWAC'].pretrain_steps == 500_000  # The paper's offline phase.
  assert rows['R-CRR'].pretrain_steps == rows['CRR'].pretrain_steps == 0
  assert rows['AWAC'].is_online and not rows['BC'].is_online


def test_one_resolver_for_every_spelling():
  for spelling in ('R-CRR', 'r_crr', 'r-crr', 'R_CRR'):
    assert methods_lib.get_method(spelling) is methods_lib.METHODS['R-CRR']
  with pytest.raises(ValueError, match="Unknown method 'ppo'.*r_crr"):
    methods_lib.get_method('ppo')


def test_with_overrides_replaces_schedules_by_constants():
  row = methods_lib.METHODS['R-MPO'].with_overrides(beta=0.3, offline_fraction=0.25)
  assert (row.beta(0), row.beta(10**7), row.offline_fraction(123)) == (0.3, 0.3, 0.25)
  assert methods_lib.METHODS['R-CRR'].with_overrides() is methods_lib.METHODS['R-CRR']
  with pytest.raises(ValueError, match='offline-only'):
    methods_lib.METHODS['BC'].with_overrides(offline_fraction=0.5)


def test_launcher_help_lists_the_method_table():
  text = launch.build_parser().format_help()
  assert ', '.join(methods_lib.METHOD_KEYS) in ' '.join(text.split())


def test_every_run_field_is_tagged_once():
  fields = dataclasses.fields(config_lib.RunConfig)
  assert all(f.metadata.get('identity') in (True, False) for f in fields)
  names = {f.name for f in fields}
  assert set(config_lib.IDENTITY_FIELDS) | set(config_lib.OPERATIONAL_FIELDS) == names
  assert not set(config_lib.IDENTITY_FIELDS) & set(config_lib.OPERATIONAL_FIELDS)
  # What changes the data or the result is identity; where and how it runs is not.
  assert {'method', 'seed', 'offline_shuffle', 'num_actors', 'final_eval_episodes'} <= set(
      config_lib.IDENTITY_FIELDS)
  assert {'workdir', 'data_dir', 'resume', 'checkpoint_every_s'} <= set(
      config_lib.OPERATIONAL_FIELDS)


def test_run_hash_and_resume_check_use_the_same_tags(tmp_path):
  settings = dict(method='CRR', budget=8, offline_episodes=8, seed=0)
  key = grid.config_hash(settings)
  for name in config_lib.OPERATIONAL_FIELDS:
    assert grid.config_hash(dict(settings, **{name: 'changed'})) == key, name
  for name in config_lib.IDENTITY_FIELDS:
    assert grid.config_hash(dict(settings, **{name: 'changed'})) != key, name

  # A resume with another offline item order is refused, with the field named.
  from learners.training import setup  # pylint: disable=g-import-not-at-top
  config = config_lib.RunConfig(method='CRR', offline_episodes=8, workdir=str(tmp_path),
                                resume=True)
  os.makedirs(tmp_path / 'checkpoints' / 'learner')
  (tmp_path / 'checkpoints' / 'learner' / 'checkpoint').write_text('x')
  (tmp_path / run_files.CONFIG_FILE).write_text(json.dumps(config.to_json()))
  assert setup.prepare_workdir(dataclasses.replace(config, data_dir='/moved', progress=False))
  with pytest.raises(ValueError, match='offline_shuffle: saved 10000, now 5'):
    setup.prepare_workdir(dataclasses.replace(config, offline_shuffle=5))
  # A run written before a setting existed resumes at that setting's default only.
  older = {k: v for k, v in config.to_json().items() if k != 'policy_ema'}
  (tmp_path / run_files.CONFIG_FILE).write_text(json.dumps(older))
  assert setup.prepare_workdir(config)
  with pytest.raises(ValueError, match='policy_ema: saved 0.0, now 0.999'):
    setup.prepare_workdir(dataclasses.replace(config, policy_ema=0.999))


def _schedule(min_replay=100, offline_only_steps=0):
  return grad_schedule.GradSchedule(
      env_steps_per_grad_step=5, min_replay_size=min_replay,
      needs_online=lambda step: step >= offline_only_steps)


def test_grad_schedule_known_answers():
  s = _schedule()
  # Empty replay: no grad step can run.
  assert s.due(0, 0, 400, replay_inserts=0) == 0
  # Ready replay: one step per 5 env steps, counted on multiples of 5 only.
  assert s.due(0, 0, 12, replay_inserts=100) == 2
  assert s.due(2, 12, 3, replay_inserts=100) == 3  # env step 15.
  assert s.due(3, 15, 4, replay_inserts=100) == 3  # 16..19: none.
  # AWAC-like: steps 0-2 use dataset items only, step 3 waits for the replay.
  awac = _schedule(offline_only_steps=3)
  assert awac.due(0, 0, 40, replay_inserts=0) == 3
  assert awac.due(3, 40, 10, replay_inserts=100) == 5


def test_grad_schedule_several_steps_per_update():
  # One update per env step, 5 grad steps each: an online run trains 5x faster than it acts.
  s = grad_schedule.GradSchedule(env_steps_per_grad_step=1, min_replay_size=100,
                                 needs_online=lambda step: step >= 3, grad_steps_per_update=5)
  # Steps 0-2 need no replay; step 3 waits for it, also within one update.
  assert s.due(0, 0, 1, replay_inserts=0) == 3
  assert s.due(3, 1, 2, replay_inserts=100) == 13
  # Every 2nd env step, 3 grad steps: 6 env steps call for 9.
  s = grad_schedule.GradSchedule(2, 1, lambda step: False, grad_steps_per_update=3)
  assert s.due(0, 0, 6, replay_inserts=0) == 9
  with pytest.raises(ValueError, match='grad_steps_per_update must be >= 1'):
    config_lib.check_config(config_lib.RunConfig(
        method='R-CRR', budget=10, offline_episodes=5, workdir='unused',
        grad_steps_per_update=0))


def test_grad_schedule_is_the_same_per_step_or_per_episode():
  """The synchronous loop asks each env step, the actor pool once per episode."""
  s, steps, min_replay = _schedule(min_replay=30), 20, 30
  per_step, inserts = 0, 0
  for t in range(5 * steps):
    if (t + 1) % steps == 0:
      inserts += steps  # The episode's transitions land at its last step.
    per_step = s.due(per_step, t, 1, inserts)
  per_episode, inserts = 0, 0
  for episode in range(5):
    start = episode * steps
    per_episode = s.due(per_episode, start, steps - 1, inserts)
    inserts += steps
    per_episode = s.due(per_episode, start + steps - 1, 1, inserts)
  assert per_step == per_episode == (5 * steps - 2 * steps) // 5 + 1
  assert min_replay <= 2 * steps


def test_speed_settings_are_checked_before_any_work():
  base = dict(method='CRR', offline_episodes=8, workdir='unused')
  with pytest.raises(ValueError, match='grad_steps_per_call must be >= 1'):
    config_lib.check_config(config_lib.RunConfig(grad_steps_per_call=0, **base))
  with pytest.raises(ValueError, match='inter_op_threads must be >= 0'):
    config_lib.check_config(config_lib.RunConfig(inter_op_threads=-2, **base))
  assert 'grad_steps_per_call' in config_lib.OPERATIONAL_FIELDS  # Speed only.


def test_critic_reward_is_checked_before_any_work():
  base = dict(offline_episodes=8, workdir='unused')
  config_lib.check_config(config_lib.RunConfig(method='CRR', critic_reward='shaped', **base))
  with pytest.raises(ValueError, match="Unknown critic_reward 'dense'; valid: sparse, shaped"):
    config_lib.check_config(config_lib.RunConfig(method='CRR', critic_reward='dense', **base))
  with pytest.raises(ValueError, match='BC has no critic'):
    config_lib.check_config(config_lib.RunConfig(method='BC', critic_reward='shaped', **base))
  assert 'critic_reward' in config_lib.IDENTITY_FIELDS
