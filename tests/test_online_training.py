"""Online training under a budget, for real: Beam-built teacher data, Reverb, envlogger."""

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from envs import rollout
from envs import specs
from envs import stacking
from envs import teachers
from envs.policy import call_unbatched
from learners import methods as methods_lib
from learners.training import config as config_lib
from learners.training import ledger as ledger_lib
from learners.training import loop
from learners.training import mixer as mixer_lib
from learners.training import setup
from learners.training import workdir as run_files
from pipelines import build_teacher_datasets
from pipelines import episode_log
from pipelines import teacher_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 20  # Short episodes keep every run to seconds.
OFFLINE = 8


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  """An 8-episode teacher dataset, built for real by the Beam job."""
  directory = str(tmp_path_factory.mktemp('teacher_data'))
  job = build_teacher_datasets.JobConfig(
      triplets=['triplet1'], teachers=['generalization'], obs_modes=['state'],
      sizes=[OFFLINE], data_dir=directory, episode_steps=STEPS)
  build_teacher_datasets.run(job, build_teacher_datasets.local_beam_options([], 1))
  return directory


def _config(data_dir, workdir, method, **overrides):
  method_row = methods_lib.get_method(method)
  online = method_row.is_online
  offline = 0 if method_row.kind == 'online' else OFFLINE
  base = dict(
      method=method, triplet='triplet1', teacher='generalization', obs='state',
      offline_episodes=offline, budget=(offline + 3) if online else None,
      workdir=str(workdir), data_dir=data_dir, build_dataset=False, grad_steps=6,
      offline_pretrain_steps=3 if method_row.name == 'AWAC' else None,
      batch_size=16, episode_steps=STEPS, min_replay_size=10, eval_every=4,
      eval_episodes=1, final_eval_episodes=2, network_size=32, log_every=1,
      progress=False, offline_shuffle=64)
  base.update(overrides)
  return config_lib.RunConfig(**base)


def _logged_episodes(workdir):
  builder = episode_log.student_builder(os.path.join(workdir, run_files.EPISODE_LOG_DIR))
  return builder.info.splits['train'].num_examples


@pytest.mark.parametrize('method', [m.name for m in methods_lib.METHOD_TABLE])
def test_every_method_runs_to_its_budget(data_dir, tmp_path, method):
  config = _config(data_dir, tmp_path / 'run', method)
  summary = loop.train(config, log=lambda *a: None)
  ledger = ledger_lib.Ledger.read(config.workdir)
  assert ledger.done
  # The process's age covers the run's wall time and pytest's start-up before it.
  assert summary['timing']['process_s'] > ledger.wall_time_s
  row = methods_lib.get_method(method)
  if row.is_online:
    assert ledger.spent == ledger.budget == config.budget
    assert ledger.online_episodes == config.budget - config.offline_episodes
    assert ledger.env_steps == ledger.online_episodes * STEPS
    assert _logged_episodes(config.workdir) == ledger.online_episodes
    # Fixed update rate: one step per 5 env steps once the replay holds 10 items
    # (the first episode's 20 transitions), plus AWAC's offline pre-training.
    pretrain = config.offline_pretrain_steps or 0
    if row.offline_fraction(pretrain) == 1.0:  # AWAC: still all offline this early.
      assert ledger.grad_steps == pretrain + ledger.env_steps // 5
    else:
      assert ledger.grad_steps == pretrain + (ledger.env_steps - STEPS) // 5 + 1
  else:
    assert ledger.online_episodes == 0 and ledger.env_steps == 0
    assert ledger.grad_steps == config.grad_steps
    assert ledger.budget == ledger.spent == OFFLINE
    assert not os.path.exists(os.path.join(config.workdir, run_files.EPISODE_LOG_DIR))
  assert ledger.offline_items + ledger.online_items == ledger.grad_steps * config.batch_size
  assert ledger.offline_items == mixer_lib.offline_items_before(
      ledger.grad_steps, lambda s: 1.0 if s < (config.offline_pretrain_steps or 0)
      else row.offline_fraction(s), config.batch_size)
  assert ledger.eval_episodes == (ledger.grad_steps // 4) * 1 + 2
  evals = json.load(open(os.path.join(config.workdir, run_files.EVAL_FILE)))
  assert evals[-1]['label'] == 'final' and evals[-1]['episodes'] == 2
  assert summary['final_eval']['ci95'][0] <= summary['final_eval']['success_rate']
  final = summary['final_eval']
  assert final['first_index'] == 0 and len(final['outcomes']) == 2
  assert final['outcomes'].count('1') == final['successes']
  metrics = [json.loads(l) for l in open(os.path.join(config.workdir, run_files.METRICS_FILE))]
  assert len(metrics) == ledger.grad_steps
  assert all(np.isfinite(v) for m in metrics for v in m.values())
  saved = json.load(open(os.path.join(config.workdir, run_files.CONFIG_FILE)))
  assert saved['method'] == method and saved['budget'] == config.budget
  assert os.listdir(os.path.join(config.workdir, run_files.TENSORBOARD_DIR))
  recorded = os.path.join(config.workdir, run_files.DATASET_FILE)
  if config.offline_episodes:  # The bytes it trained on, as the dataset's manifest lists them.
    manifest = teacher_dataset.read_manifest(setup.teacher_dataset_name(config), data_dir)
    assert json.load(open(recorded)) == manifest and manifest['files']
    assert all(len(f['sha256']) == 64 for f in manifest['files'].values())
  else:
    assert not os.path.exists(recorded)


def test_several_grad_steps_per_update(data_dir, tmp_path):
  """grad_steps_per_update 3: each update (every 5th env step, replay ready) runs 3."""
  config = _config(data_dir, tmp_path / 'run', 'R-CRR', grad_steps_per_update=3)
  loop.train(config, log=lambda *a: None)
  ledger = ledger_lib.Ledger.read(config.workdir)
  assert ledger.done and ledger.env_steps == 3 * STEPS
  assert ledger.grad_steps == 3 * ((ledger.env_steps - STEPS) // 5 + 1)  # 27, not 9.
  assert ledger.offline_items + ledger.online_items == ledger.grad_steps * config.batch_size


def test_mixed_batches_have_exact_counts_and_follow_the_schedule(data_dir):
  episodes = teacher_dataset.load_teacher_dataset(
      f'triplet1_generalization_state_{OFFLINE}_steps{STEPS}', data_dir)
  offline = mixer_lib.ItemBuffer(mixer_lib.offline_chunks(
      episodes, OFFLINE * STEPS, seed=3, config=mixer_lib.OfflineStreamConfig(chunk=7)))
  # A stand-in online source with the same item format (items differ only by source).
  online_items = next(mixer_lib.offline_chunks(episodes, OFFLINE * STEPS, seed=4,
                                               config=mixer_lib.OfflineStreamConfig(chunk=50)))
  online = mixer_lib.ItemBuffer(iter(lambda: online_items, None))
  awac = methods_lib.METHODS['AWAC'].offline_fraction
  mixer = mixer_lib.Mixer(64, awac, offline, online)
  for step, expected in ((0, 64), (500_000, 64), (800_000, 38), (1_100_000, 13),
                         (2_000_000, 13)):
    batch = mixer.batch(step)
    assert int(np.sum(batch.is_offline)) == expected == round(awac(step) * 64 + 1e-9)
    assert np.all(batch.is_offline[:expected] == 1) and np.all(batch.is_offline[expected:] == 0)
    assert batch.action.shape == (64, 5)
  half = mixer_lib.Mixer(64, methods_lib.METHODS['R-CRR'].offline_fraction, offline, online)
  assert all(int(half.batch(s).is_offline.sum()) == 32 for s in range(5))
  assert mixer_lib.num_offline(0.5, 5) == 3  # halves round up
  with pytest.raises(ValueError, match='no teacher dataset'):
    mixer_lib.Mixer(4, lambda s: 0.5, None, online).batch(0)


def test_prefetched_batches_equal_batches_built_on_demand(data_dir):
  episodes = teacher_dataset.load_teacher_dataset(
      f'triplet1_generalization_state_{OFFLINE}_steps{STEPS}', data_dir)

  def mixer():
    stream = mixer_lib.offline_chunks(episodes, OFFLINE * STEPS, seed=3,
                                      config=mixer_lib.OfflineStreamConfig(chunk=7))
    return mixer_lib.Mixer(16, lambda s: 1.0, mixer_lib.ItemBuffer(stream), None)
  plain, prefetcher = mixer(), mixer_lib.Prefetcher(mixer())
  step = 0
  for k in (1, 3, 1, 2, 4, 1, 1):
    got = prefetcher.batch(step, k)
    assert got.action.shape == (k, 16, 5)
    if k % 2:  # Mixed with calls built on demand (nothing pending).
      prefetcher.prefetch(step + k, 2)
    for i in range(k):
      want = plain.batch(step + i)
      np.testing.assert_array_equal(got.action[i], want.action)
      np.testing.assert_array_equal(got.observation['proprio'][i], want.observation['proprio'])
    step += k
    if k % 2:  # Ask for what was prefetched.
      got = prefetcher.batch(step, 2)
      for i in range(2):
        np.testing.assert_array_equal(got.action[i], plain.batch(step + i).action)
      step += 2
  prefetcher.prefetch(step, 3)
  # The online loops ask for the pending call's size before they size theirs.
  assert (prefetcher.pending_steps(step), prefetcher.pending_steps(step + 1)) == (3, 0)
  with pytest.raises(AssertionError, match=f'steps {step}\\+3, asked for {step}\\+2'):
    prefetcher.batch(step, 2)
  assert prefetcher.pending_steps(step) == 0
  prefetcher.close()

  # A source that fails on the prefetch thread fails the learner's next batch.
  def failing():
    raise ValueError('shard 3 is corrupted')
    yield  # pylint: disable=unreachable
  broken = mixer_lib.Prefetcher(
      mixer_lib.Mixer(4, lambda s: 1.0, mixer_lib.ItemBuffer(failing()), None))
  broken.prefetch(0)
  with pytest.raises(ValueError, match='shard 3 is corrupted'):
    broken.batch(0)
  broken.close()

  # A source that never answers (Reverb's sampler after its server is gone) times out.
  def stuck():
    time.sleep(3600)
    yield  # pylint: disable=unreachable
  hung = mixer_lib.Prefetcher(
      mixer_lib.Mixer(4, lambda s: 0.0, None, mixer_lib.ItemBuffer(stuck())), timeout_s=0.5)
  start = time.monotonic()
  with pytest.raises(TimeoutError, match='not ready within 0.5 s'):
    hung.batch(0)
  assert time.monotonic() - start < 5


def test_offline_stream_is_a_function_of_seed_and_item(data_dir):
  episodes = teacher_dataset.load_teacher_dataset(
      f'triplet1_generalization_state_{OFFLINE}_steps{STEPS}', data_dir)
  per_epoch = OFFLINE * STEPS
  cfg = mixer_lib.OfflineStreamConfig(chunk=32, item_shuffle=64)
  full = mixer_lib.ItemBuffer(mixer_lib.offline_chunks(episodes, per_epoch, 5, config=cfg))
  first = full.take(2 * per_epoch + 30)
  resumed = mixer_lib.ItemBuffer(mixer_lib.offline_chunks(
      episodes, per_epoch, 5, start_item=per_epoch + 17, config=cfg)).take(per_epoch + 13)
  tf.nest.map_structure(np.testing.assert_array_equal, resumed,
                        tf.nest.map_structure(lambda x: x[per_epoch + 17:], first))
  # Epochs are shuffled differently, and every epoch holds each transition once.
  a, b = first['action'][:per_epoch], first['action'][per_epoch:2 * per_epoch]
  assert not np.array_equal(a, b)
  np.testing.assert_array_equal(np.sort(a, axis=0), np.sort(b, axis=0))
  # Epoch pipelines are destroyed at every boundary; with autotuning on, that
  # froze the learner process for seconds (see `offline_epoch`).
  assert not mixer_lib.offline_epoch(episodes, 5, 0, cfg).options().autotune.enabled


def test_offline_filter_keeps_the_successful_episodes(data_dir, tmp_path):
  episodes = teacher_dataset.load_teacher_dataset(
      f'triplet1_generalization_state_{OFFLINE}_steps{STEPS}', data_dir)
  # 20-step episodes never stack: mark the even-indexed half successful.
  marked = episodes.map(lambda ep: dict(ep, success=ep['episode_index'] % 2 == 0))
  config = _config(data_dir, tmp_path / 'run', 'BC', offline_filter='successful')
  kept, count = setup.filter_offline(config, marked, log=lambda _: None)
  assert count == OFFLINE // 2
  assert sorted(int(ep['episode_index']) for ep in kept) == [0, 2, 4, 6]
  # One epoch of the filtered stream is exactly the kept episodes' transitions
  # (offline_chunks raises if an epoch's count differs).
  chunks = mixer_lib.offline_chunks(kept, count * STEPS, seed=0,
                                    config=mixer_lib.OfflineStreamConfig(chunk=STEPS))
  assert sum(len(next(chunks)['action']) for _ in range(count + 1)) == (count + 1) * STEPS
  unfiltered = _config(data_dir, tmp_path / 'run', 'BC')
  assert setup.filter_offline(unfiltered, marked)[1] == OFFLINE


def test_offline_filter_without_successes_is_refused_before_training(data_dir, tmp_path):
  config = _config(data_dir, tmp_path / 'run', 'BC', offline_filter='successful')
  with pytest.raises(config_lib.TrainingError, match='none of the 8 teacher episodes'):
    loop.train(config)  # No 20-step teacher episode stacks.
  assert not os.path.exists(os.path.join(config.workdir, 'checkpoints'))
  _assert_dataset_setting_refusals(config, tmp_path, 'offline_filter', 'best', 'successful')


def _assert_dataset_setting_refusals(config, tmp_path, field, unknown, valid):
  """An unknown value of a dataset setting, and a valid one on a replay-only method."""
  with pytest.raises(ValueError, match=f'Unknown {field}'):
    config_lib.check_config(dataclasses.replace(config, **{field: unknown}))
  with pytest.raises(ValueError, match='does not sample'):
    config_lib.check_config(_config(config.data_dir, tmp_path / 'dagger', 'DAgger',
                                    **{field: valid}))


def test_teacher_policy_mode_builds_and_loads_its_own_dataset(data_dir, tmp_path):
  config = _config(str(tmp_path / 'data'), tmp_path / 'run', 'BC', offline_episodes=2,
                   teacher_policy_mode='deterministic', build_dataset=True, build_workers=1)
  name = setup.teacher_dataset_name(config)
  assert name == 'triplet1_generalization_state_2_deterministic_steps20'
  episodes = setup.load_or_build_dataset(config, log=lambda _: None)
  assert len(list(episodes)) == 2
  assert teacher_dataset.read_card(name, config.data_dir)['policy_mode'] == 'deterministic'
  # The default run still reads the stochastic dataset it always did.
  assert setup.teacher_dataset_name(_config(data_dir, tmp_path / 'r', 'BC')) == (
      f'triplet1_generalization_state_{OFFLINE}_steps{STEPS}')
  _assert_dataset_setting_refusals(config, tmp_path, 'teacher_policy_mode', 'greedy',
                                   'deterministic')


def test_policy_min_stddev_reaches_the_networks(data_dir, tmp_path):
  config = _config(data_dir, tmp_path / 'run', 'BC', policy_min_stddev=0.2)
  assert setup.network_config(config).min_stddev == 0.2
  assert setup.network_config(_config(data_dir, tmp_path / 'r', 'BC')).min_stddev == 1e-3
  with pytest.raises(ValueError, match='policy_min_stddev must be > 0'):
    config_lib.check_config(dataclasses.replace(config, policy_min_stddev=0.0))


def _benchmark_module(name):
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(REPO, 'benchmarks', f'{name}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _first_dataset_observation():
  """The first observation of the teacher dataset's episode 0 (its seed, reset)."""
  env = stacking.make_env('triplet1', obs_mode='state', episode_steps=STEPS)
  env.reseed(rollout.episode_seed('triplet1', 'generalization', 0))
  return env.reset().observation


def test_action_gap_benchmark_matches_a_hand_computed_first_step(data_dir, tmp_path, capsys):
  config = _config(data_dir, tmp_path / 'run', 'BC')
  loop.train(config, log=lambda *a: None)
  action_gap = _benchmark_module('action_gap')
  capsys.readouterr()
  assert action_gap.main([config.workdir, '--episodes', '1', '--starts', 'dataset']) == 0
  lines = [json.loads(l) for l in capsys.readouterr().out.splitlines() if l.startswith('{')]
  assert [l['rollouts_of'] for l in lines] == ['teacher', 'student']
  # Step 0 is the dataset's first start whoever drives: the same gap, by hand.
  _, _, learner = setup.restore_run(config.workdir)
  observation = _first_dataset_observation()
  student = call_unbatched(learner.eval_distribution, observation)
  teacher = teachers.make_teacher('generalization', 'triplet1').distribution(observation)
  expected = float(np.max(np.abs(student.mode() - teacher.mode())))
  for line in lines:
    assert line['mean_gap_at_step']['0'] == pytest.approx(round(expected, 3), abs=1e-3)
    assert line['student_max_stddev_at_step']['0'] == pytest.approx(
        round(float(np.max(student.stddev)), 3), abs=1e-3)
    assert set(line['mean_gap_at_step']) == {'0', '10'}  # 20-step episodes.


def test_q_select_takes_the_highest_q_of_the_mode_and_the_samples(data_dir, tmp_path, capsys):
  config = _config(data_dir, tmp_path / 'run', 'CRR')
  loop.train(config, log=lambda *a: None)
  q_select = _benchmark_module('q_select')
  _, _, learner = setup.restore_run(config.workdir)
  observation = _first_dataset_observation()
  dist = call_unbatched(learner.eval_distribution, observation)
  np.testing.assert_array_equal(
      q_select.select(learner, observation, 0, np.random.default_rng(0)), dist.mode())
  # By hand: the same draws, each candidate's Q from its own batch-of-one call.
  rng = np.random.default_rng(7)
  candidates = [dist.mode()] + [dist.sample(rng) for _ in range(5)]
  one = lambda a: float(learner.q_values(
      {k: np.asarray(v)[None] for k, v in observation.items()}, a[None])[0])
  best = candidates[int(np.argmax([one(a) for a in candidates]))]
  chosen = q_select.select(learner, observation, 5, np.random.default_rng(7))
  np.testing.assert_allclose(chosen, best)
  assert not np.allclose(candidates[0], candidates[1])  # The samples differ from the mode.
  # The control draws the same candidates, then one at random from the same generator.
  np.testing.assert_allclose(
      q_select.select(learner, observation, 5, np.random.default_rng(7), pick='random'),
      candidates[rng.integers(len(candidates))])

  capsys.readouterr()
  runs = []
  for _ in range(2):  # Seeded by the episode: a rerun prints the same lines.
    assert q_select.main([config.workdir, '--samples', '3', '--episodes', '2']) == 0
    runs.append([json.loads(l) for l in capsys.readouterr().out.splitlines()
                 if l.startswith('{')])
  assert runs[0] == runs[1]
  mode_line, sampled = runs[0]
  assert (mode_line['samples'], sampled['samples']) == (0, 3)
  mode_wins = round(mode_line['success_rate'] * 2)
  assert mode_line['both'] == mode_wins and mode_line['only_this'] == 0
  assert sampled['both'] + sampled['only_mode'] == mode_wins
  with pytest.raises(SystemExit):
    q_select.main([config.workdir, '--samples', 'x'])
  with pytest.raises(setup.TrainingError, match='is .* a run workdir'):
    setup.restore_run(str(tmp_path / 'nothing'))


def test_crr_weights_scores_the_dataset_as_the_policy_loss_does(data_dir, tmp_path, capsys):
  crr_weights = _benchmark_module('crr_weights')
  # Known answers: the AUC of hand-made scores, the shares of hand-made weights.
  assert crr_weights.auc(np.array([3., 1., 2., 2.]), np.array([True, False, True, False])) == (
      (3 + 0.5) / 4)  # Pairs 3>1, 3>2, 2>1 and one tie, of four.
  line = crr_weights.summarise([np.array([2., 2.]), np.array([1., 1.])],
                               [np.array([.5, .5]), np.array([0., 0.])], np.array([True, False]))
  assert (line['succeeded_share_unweighted'], line['succeeded_share_weighted']) == (0.5, 0.6667)
  assert line['episode_auc'] == 1.0 and line['mean_weight'] == {'succeeded': 2., 'failed': 1.}
  assert line['first_stacked_step_median'] is None  # No first stacked step was given.
  stacked = crr_weights.summarise([np.ones(2)] * 3, [np.zeros(2)] * 3,
                                  np.array([True, False, True]), [4, 1, 7])
  assert stacked['first_stacked_step_median'] == 5.5  # The succeeded ones: 4 and 7.
  eighths = crr_weights.by_eighth([np.arange(16.), np.zeros(16), np.ones(16)],
                                  np.array([True, False, True]), True)
  assert eighths == [(2 * i + 0.5 + 1) / 2 for i in range(8)]  # Pairs of 0..15, with 1s.

  config = _config(data_dir, tmp_path / 'run', 'CRR')
  loop.train(config, log=lambda *a: None)
  _, method, learner = setup.restore_run(config.workdir)
  observation = {k: np.stack([_first_dataset_observation()[k]] * 3)
                 for k in specs.STUDENT_KEYS['state']}
  action = np.full((3, specs.ACTION_DIM), 0.1, np.float32)
  eta, clip = 0.5, 1.5
  w, adv = crr_weights.episode_weights(learner, observation, action, 2, eta, clip,
                                       np.random.default_rng(3))
  # By hand: the same two draws of the trained policy, their mean Q as V(s).
  rng, dist = np.random.default_rng(3), learner.distribution(observation)
  drawn = [dist.sample(rng) for _ in range(2)]
  value = np.mean([learner.q_values(observation, a) for a in drawn], axis=0)
  np.testing.assert_allclose(adv, learner.q_values(observation, action) - value, rtol=1e-5)
  np.testing.assert_allclose(w, np.minimum(np.exp(adv / eta), clip), rtol=1e-5)

  capsys.readouterr()
  runs = []
  for _ in range(2):  # Seeded by the episode: a rerun prints the same line.
    assert crr_weights.main([config.workdir, '--episodes', '3']) == 0
    runs.append([json.loads(l) for l in capsys.readouterr().out.splitlines()
                 if l.startswith('{')])
  assert runs[0] == runs[1] and len(runs[0]) == 1
  line = runs[0][0]
  # STEPS actions per episode; the RLDS step after the last one holds no action.
  assert (line['episodes'], line['transitions']) == (3, 3 * STEPS)
  assert line['eta'] == method.eta(learner.num_steps)
  gone = dataclasses.replace(config, data_dir=str(tmp_path / 'no_data'))
  with open(os.path.join(config.workdir, run_files.CONFIG_FILE), 'w') as f:
    json.dump(gone.to_json(), f)
  with pytest.raises(SystemExit):  # A diagnostic builds no dataset: it names the missing one.
    crr_weights.main([config.workdir])
  assert 'is not built' in capsys.readouterr().err and not (tmp_path / 'no_data').exists()
  bc = _config(data_dir, tmp_path / 'bc', 'BC')
  loop.train(bc, log=lambda *a: None)
  with pytest.raises(SystemExit):  # BC has no critic to weight with.
    crr_weights.main([bc.workdir])


def test_budget_and_method_errors_come_before_any_work(tmp_path):
  workdir = tmp_path / 'nothing'
  cases = [
      (dict(method='r_crr', budget=100, offline_episodes=200), 'smaller than the teacher'),
      (dict(method='r_crr', budget=200, offline_episodes=200), 'no episodes are left'),
      (dict(method='bc', budget=300, offline_episodes=200), 'spends exactly its dataset'),
      (dict(method='mpo', budget=300, offline_episodes=200), 'offline_episodes 0'),
      (dict(method='crr_mixed', budget=300, offline_episodes=0), 'offline_episodes > 0'),
      (dict(method='dagger', budget=None, offline_episodes=0), 'needs --budget'),
  ]
  for kwargs, message in cases:
    with pytest.raises(ledger_lib.BudgetError, match=message):
      loop.train(config_lib.RunConfig(workdir=str(workdir), **kwargs))
  with pytest.raises(ValueError, match='Unknown method'):
    loop.train(config_lib.RunConfig(method='ppo', workdir=str(workdir)))
  assert not workdir.exists()


def test_beta_and_offline_fraction_overrides_replace_the_row(data_dir, tmp_path):
  row = methods_lib.METHODS['R-CRR'].with_overrides(0.25, 0.3)
  assert row.beta(0) == row.beta(10**6) == 0.25
  assert row.offline_fraction(0) == row.offline_fraction(10**6) == 0.3
  assert (row.prior, row.weighting) == ('behavior', 'softmax')
  bad = [(dict(method='DAgger', budget=100, beta=0.5), 'teacher only'),
         (dict(method='CRR', offline_episodes=50, offline_fraction=0.5), 'offline-only'),
         (dict(method='R-CRR', budget=100, offline_episodes=50, beta=1.5),
          r'beta must be in \[0, 1\]'),
         (dict(method='R-CRR', budget=100, offline_episodes=50, offline_fraction=1.0),
          r'in \[0, 1\)'),
         (dict(method='R-CRR', budget=100, offline_episodes=50, offline_fraction=0.0),
          'replay only')]
  for kwargs, message in bad:
    with pytest.raises(ValueError, match=message):
      config_lib.check_config(config_lib.RunConfig(workdir=str(tmp_path / 'x'), **kwargs))
  # A real run follows the overrides: every batch has round(0.25 * 16) = 4 dataset
  # items, and the prior mixes in the teacher with share 1.
  config = _config(data_dir, tmp_path / 'run', 'R-CRR', beta=1.0, offline_fraction=0.25)
  loop.train(config, log=lambda *a: None)
  ledger = ledger_lib.Ledger.read(config.workdir)
  assert ledger.offline_items == 4 * ledger.grad_steps
  metrics = [json.loads(l) for l in open(os.path.join(config.workdir, run_files.METRICS_FILE))]
  assert {(m['beta'], m['offline_fraction']) for m in metrics} == {(1.0, 0.25)}


def test_refuses_to_reinitialise_a_workdir_with_checkpoints(data_dir, tmp_path):
  config = _config(data_dir, tmp_path / 'run', 'BC', grad_steps=2)
  loop.train(config, log=lambda *a: None)
  with pytest.raises(FileExistsError, match='--resume'):
    loop.train(config, log=lambda *a: None)
  with pytest.raises(ValueError, match='differ'):
    loop.train(dataclasses.replace(config, resume=True, seed=9), log=lambda *a: None)


def test_same_seed_same_numbers_offline(data_dir, tmp_path):
  """Offline methods touch no Reverb sampler: bit-identical reruns."""
  results = []
  for name in ('a', 'b'):
    config = _config(data_dir, tmp_path / name, 'CRR', grad_steps=5, eval_every=0,
                     final_eval_episodes=2)
    summary = loop.train(config, log=lambda *a: None)
    metrics = [json.loads(l) for l in open(os.path.join(config.workdir, run_files.METRICS_FILE))]
    results.append((summary['final_eval'], metrics))
  assert results[0] == results[1]


def test_nan_loss_stops_with_step_metric_and_checkpoint(data_dir, tmp_path, monkeypatch):
  from learners import learner as learner_lib  # pylint: disable=g-import-not-at-top
  original = learner_lib.Learner.steps

  def poisoned(self, batches, teacher_labels=None):
    if self.num_steps == 3:
      raise learner_lib.NonFiniteError('Non-finite critic_loss=nan at learner step 3.')
    return original(self, batches, teacher_labels)

  monkeypatch.setattr(learner_lib.Learner, 'steps', poisoned)
  # Calls of 3 steps, a checkpoint after each: the NaN comes in the second call.
  config = _config(data_dir, tmp_path / 'run', 'CRR', grad_steps=6, checkpoint_every_s=0,
                   grad_steps_per_call=3)
  with pytest.raises(config_lib.TrainingError, match=r'critic_loss.*step 3.*ckpt-3'):
    loop.train(config, log=lambda *a: None)


def _launch(args, **kwargs):
  return subprocess.run([sys.executable, '-m', 'learners.training.launch'] + args, cwd=REPO,
                        capture_output=True, text=True, timeout=600, **kwargs)


def _resume_flags(data_dir):
  """A tiny R-CRR launch (7 online episodes) that checkpoints every 2 episodes."""
  return ['--method', 'r_crr', '--triplet', 'triplet1', '--teacher', 'generalization',
          '--obs', 'state', '--budget', str(OFFLINE + 7), '--offline_episodes', str(OFFLINE),
          '--data_dir', data_dir, '--build_dataset', 'false', '--episode_steps', str(STEPS),
          '--batch_size', '16', '--min_replay_size', '10', '--eval_every', '0',
          '--final_eval_episodes', '2', '--network_size', '32', '--progress', 'false',
          '--checkpoint_every_episodes', '2', '--checkpoint_every_s', '1e9']


def test_same_seed_same_counts_and_episodes_online(data_dir, tmp_path):
  """Online runs repeat their counts and initial states exactly; the weights may
  differ because Reverb's uniform sampler cannot be seeded."""
  ledgers, seeds = [], []
  # The third run alternates env and grad steps on one thread: the overlapped
  # learner (the default) takes exactly the same number of steps.
  for name, overlap_learner in (('a', True), ('b', True), ('c', False)):
    config = _config(data_dir, tmp_path / name, 'DAgger', eval_every=0,
                     overlap_learner=overlap_learner)
    loop.train(config, log=lambda *a: None)
    ledger = ledger_lib.Ledger.read(config.workdir)
    ledger.wall_time_s = 0.0
    ledgers.append(ledger)
    builder = episode_log.student_builder(os.path.join(config.workdir,
                                                       run_files.EPISODE_LOG_DIR))
    episodes = builder.as_dataset(split='train').map(lambda e: e['episode_seed'])
    seeds.append(sorted(int(s) for s in episodes.as_numpy_iterator()))
  assert ledgers[0] == ledgers[1] == ledgers[2]
  assert seeds[0] == seeds[1] == seeds[2] and len(set(seeds[0])) == 3


def test_policy_ema_evaluates_both_policies_and_q_tracking_reads_the_run(data_dir, tmp_path,
                                                                          capsys):
  from learners.training import q_tracking  # pylint: disable=g-import-not-at-top
  config = _config(data_dir, tmp_path / 'ema', 'CRR', grad_steps=8, eval_every=4,
                   policy_ema=0.9)
  loop.train(config, log=lambda *a: None)
  with open(os.path.join(config.workdir, run_files.EVAL_FILE)) as f:
    labels = sorted((e['grad_step'], e['label']) for e in json.load(f))
  # Periodic: the EMA copy ('eval', what the run reports) and the trained policy.
  assert labels == [(4, 'eval'), (4, 'eval_raw'), (8, 'eval'), (8, 'eval_raw'), (8, 'final')]

  capsys.readouterr()
  assert q_tracking.main([config.workdir, '--episodes', '2']) == 0
  stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert stats['grad_steps'] == 8 and stats['episodes'] == 2
  assert stats['steps'] == 2 * STEPS  # One Q and one return-to-go per action.
  assert os.path.exists(stats['figure'])
  with pytest.raises(SystemExit):  # BC trains no critic.
    q_tracking.main([_bc_run(data_dir, tmp_path / 'bc'), '--episodes', '1'])


def _bc_run(data_dir, workdir):
  config = _config(data_dir, workdir, 'BC', grad_steps=2, eval_every=0, final_eval_episodes=1)
  loop.train(config, log=lambda *a: None)
  return config.workdir


def _two_run_study(data_dir, study) -> list:
  """A study folder as the runner leaves it: CRR seeds 0 and 1 and their teacher, each
  evaluated on 3 starts; returns study.json's runs."""
  from envs import evaluate  # pylint: disable=g-import-not-at-top
  runs = []
  for seed in (0, 1):
    name = f'CRR_s{seed}'
    config = _config(data_dir, study / 'runs' / name, 'CRR', seed=seed, final_eval_episodes=3)
    loop.train(config, log=lambda *a: None)
    runs.append(dict(name=name, sweep='grid', overrides={}, config=dataclasses.asdict(config)))
  run_files.write_json_atomic(str(study / 'study.json'), dict(name='s', runs=runs))
  (cell,) = evaluate.evaluate(['generalization'], ['triplet1'], 3, episode_steps=STEPS)
  run_files.write_json_atomic(str(study / 'teachers.json'),
                              dict(cells=[dict(cell, episode_steps=STEPS)]))
  return runs


def test_outcomes_backfill_reruns_the_final_evaluation_exactly(data_dir, tmp_path, capsys):
  """learners.study.outcomes on a study written before outcomes were kept."""
  from learners.study import outcomes  # pylint: disable=g-import-not-at-top
  study = tmp_path / 'study'
  runs = _two_run_study(data_dir, study)
  cells = json.loads((study / 'teachers.json').read_text())['cells']
  kept = {'teacher': cells[0].pop('outcomes')}
  run_files.write_json_atomic(str(study / 'teachers.json'), dict(cells=cells))
  # Strip what older runs lacked.
  for run in runs:
    run_dir = study / 'runs' / run['name']
    summary = json.loads((run_dir / 'summary.json').read_text())
    kept[run['name']] = summary['final_eval'].pop('outcomes')
    del summary['final_eval']['first_index']
    run_files.write_json_atomic(str(run_dir / 'summary.json'), summary)
  # A count that the checkpoint does not reproduce: reported, the files unchanged.
  bad = study / 'runs' / 'CRR_s1' / 'summary.json'
  summary = json.loads(bad.read_text())
  summary['final_eval']['successes'] += 1 if summary['final_eval']['successes'] < 3 else -1
  run_files.write_json_atomic(str(bad), summary)
  before = bad.read_bytes()
  assert outcomes.main([str(study), '--dry_run']) == 0
  assert '2 finished runs without per-start outcomes' in capsys.readouterr().out
  assert outcomes.main([str(study)]) == 1
  out, err = capsys.readouterr()
  assert 'CRR_s1: re-run gives' in out and '1 re-run count(s) differ' in err
  assert bad.read_bytes() == before
  # Everything else now has exactly the outcomes its evaluation wrote.
  summary = json.loads((study / 'runs' / 'CRR_s0' / 'summary.json').read_text())
  assert summary['final_eval']['outcomes'] == kept['CRR_s0']
  evals = json.loads((study / 'runs' / 'CRR_s0' / 'eval.json').read_text())
  assert evals[-1]['label'] == 'final' and evals[-1]['outcomes'] == kept['CRR_s0']
  teacher = json.loads((study / 'teachers.json').read_text())['cells'][0]
  assert teacher['outcomes'] == kept['teacher']
  # Done ones are skipped: only the mismatched run is left.
  assert outcomes.pending_runs(str(study)) == [str(study / 'runs' / 'CRR_s1')]
  assert outcomes.main([str(tmp_path / 'nowhere')]) == 2


def test_more_starts_extends_each_final_and_teacher_evaluation_start_by_start(data_dir, tmp_path,
                                                                               capsys):
  """learners.study.more_starts: the recorded starts replayed, then the next ones."""
  from envs import evaluate  # pylint: disable=g-import-not-at-top
  from learners.study import more_starts  # pylint: disable=g-import-not-at-top
  from learners.study import report  # pylint: disable=g-import-not-at-top
  from learners.study import results as study_results  # pylint: disable=g-import-not-at-top
  from learners.training import actors  # pylint: disable=g-import-not-at-top
  from learners.training import evaluation  # pylint: disable=g-import-not-at-top
  study = tmp_path / 'study'
  _two_run_study(data_dir, study)
  # A record its checkpoint does not replay (its first start flipped): left unchanged.
  bad = study / 'runs' / 'CRR_s1' / 'summary.json'
  summary = json.loads(bad.read_text())
  final = summary['final_eval']
  final['outcomes'] = str(1 - int(final['outcomes'][0])) + final['outcomes'][1:]
  final['successes'] = final['outcomes'].count('1')
  run_files.write_json_atomic(str(bad), summary)
  before = bad.read_bytes()
  recorded = (study / 'runs' / 'CRR_s0' / 'summary.json').read_bytes()
  assert more_starts.main([str(study), '--episodes', '5', '--dry_run']) == 0
  assert '2 finished runs' in capsys.readouterr().out
  assert more_starts.main([str(study), '--episodes', '5', '--check', '2']) == 1
  out, err = capsys.readouterr()
  assert 'CRR_s1: its first 2 starts give' in out and '1 run(s) or teacher cell(s)' in err
  assert bad.read_bytes() == before

  # Known answer: the extended record is what one evaluation of 5 starts gives.
  config, _, learner = setup.restore_run(str(study / 'runs' / 'CRR_s0'))
  evaluator = evaluation.Evaluator(config.triplet, config.obs, STEPS)
  five = evaluator.run(actors.StudentPolicy(learner.eval_distribution), 5, 0)
  evaluator.close()
  summary = json.loads((study / 'runs' / 'CRR_s0' / 'summary.json').read_text())
  final = summary['final_eval']
  assert (final['episodes'], final['outcomes'], final['successes']) == (
      5, five.outcomes, five.successes)
  assert final['extended_from'] == 3 and final['first_index'] == 0
  assert final['mean_return'] == pytest.approx(five.mean_return)
  assert list(final['ci95']) == pytest.approx(five.ci95)
  evals = json.loads((study / 'runs' / 'CRR_s0' / 'eval.json').read_text())
  assert evals[-1]['label'] == 'final' and evals[-1]['outcomes'] == five.outcomes
  (teacher,) = json.loads((study / 'teachers.json').read_text())['cells']
  (again,) = evaluate.evaluate(['generalization'], ['triplet1'], 5, episode_steps=STEPS)
  assert (teacher['episodes'], teacher['outcomes'], teacher['extended_from']) == (
      5, again['outcomes'], 3)
  assert teacher['mean_return'] == pytest.approx(again['mean_return'])
  # A stop between eval.json's write and summary.json's: the rerun extends it once.
  (study / 'runs' / 'CRR_s0' / 'summary.json').write_bytes(recorded)
  assert more_starts.main([str(study), '--episodes', '5', '--check', '2']) == 1
  evals = json.loads((study / 'runs' / 'CRR_s0' / 'eval.json').read_text())
  assert evals[-1]['outcomes'] == five.outcomes and evals[-1]['label'] == 'final'
  # Done ones are skipped; the study reads the longer records.
  assert more_starts.pending_runs(str(study), 5) == [str(study / 'runs' / 'CRR_s1')]
  assert more_starts.pending_runs(str(study), 3) == []
  loaded = study_results.load_study(str(study))
  (crr,) = loaded.cells
  assert crr.episodes == [5, 3] and crr.outcomes[0] == five.outcomes
  (note,) = [n for n in report._settings_notes(loaded) if n.startswith('Final evaluation')]
  assert 'Final evaluation: [3, 5] episodes' in note and 'the runs scored [3] when' in note
