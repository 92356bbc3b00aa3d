"""Bad input, one table: every CLI, loader and env call refuses it in one clear line.

Each case runs in a fresh temporary folder (also the working directory) and
checks that the command exits with its exact code, prints one `error:` line
naming what is wrong and no traceback, and leaves the folder as it found it.
CLIs run in-process through their `main(argv)` (no 5 s TensorFlow import per
case); a guard turns any real work (dataset build, study, evaluation, learner)
into a test failure, so a check that regresses costs no minutes.

docs/reliability_bad_input.md is this table with the real messages;
`python tests/test_bad_input.py` reruns the cases and rewrites it.
"""

import contextlib
import dataclasses
import importlib
import io
import json
import os
import sys
import tempfile
import traceback
from typing import Any, Callable, Mapping, Optional

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(REPO, 'docs', 'reliability_bad_input.md')


@dataclasses.dataclass(frozen=True)
class Cli:
  module: str
  command: str  # As a user types it.
  prog: str  # argparse's name for it: the basename of the file `python -m` runs.
  base: tuple = ()  # Arguments every case gets, so that nothing lands outside tmp.
  quiet: tuple = ()  # Also given, not shown: the test process's hygiene, not the input.


_CLIS = {
    # Threads 0 (TF's default): an in-process launch must not pin the test process's TF pools.
    'launch': Cli('learners.training.launch', 'python -m learners.training.launch', 'launch.py',
                  ('--workdir', '{tmp}/work', '--data_dir', '{tmp}/data'),
                  ('--intra_op_threads', '0', '--inter_op_threads', '0')),
    'study': Cli('learners.study.runner', 'python -m learners.study', '__main__.py',
                 ('--workdir', '{tmp}/study')),
    'build': Cli('pipelines.build_teacher_datasets', 'python -m pipelines.build_teacher_datasets',
                 'build_teacher_datasets.py'),
    'evaluate': Cli('envs.evaluate', 'python -m envs.evaluate', 'evaluate.py',
                    ('--output', '{tmp}/eval/cells.json')),
    'report': Cli('learners.study.report', 'python -m learners.study.report', 'report.py'),
    'recommend': Cli('learners.study.recommend', 'python -m learners.study.recommend',
                     'recommend.py'),
    'outcomes': Cli('learners.study.outcomes', 'python -m learners.study.outcomes',
                    'outcomes.py'),
    'more_starts': Cli('learners.study.more_starts', 'python -m learners.study.more_starts',
                       'more_starts.py'),
    'pair': Cli('learners.study.pair', 'python -m learners.study.pair', 'pair.py'),
}


@dataclasses.dataclass(frozen=True)
class Case:
  command: str  # CLI key of _CLIS, or the call as the table shows it.
  args: tuple  # CLI arguments ('{tmp}' is the case's folder); calls: ().
  bad: str  # The bad input, in words.
  code: Any  # Exit code, or the exception class name a call raises.
  fragment: str  # Stable part of the message that names what is wrong.
  files: Mapping[str, str] = dataclasses.field(default_factory=dict)  # Written first.
  call: Optional[Callable[[str], Any]] = None  # For loader and env cases: fn(tmp).
  defect: str = ''  # A known defect in a file this change may not touch: xfail.

  def shown(self) -> str:
    if self.call is not None:
      return self.command
    spec = _CLIS[self.command]
    return ' '.join([spec.command, *self.args, *spec.base]).replace('{tmp}', '<tmp>')


def cli(command, args, bad, code, fragment, files=None, defect=''):
  return Case(command, tuple(args.split()), bad, code, fragment, files or {}, defect=defect)


def call(shown, fn, bad, exc, fragment, files=None):
  return Case(shown, (), bad, exc, fragment, files or {}, call=fn)


# --- fixtures, as files ------------------------------------------------------------

_G = 'grid:\n  methods: [R-CRR]\n  budgets: [60]\n  offline_episodes: [30]\n'
_DS = 'data/rgb_stacking_teacher/triplet1_generalization_state_5'
_SHARD = 'rgb_stacking_teacher-train.tfrecord-00000-of-00001'
_MANIFEST = json.dumps(dict(config='triplet1_generalization_state_5', version='2.0.0',
                            episodes=5, files={_SHARD: dict(bytes=100, sha256='0')}))
_RUN = dict(method='R-CRR', budget=10, offline_episodes=5, seed=1)
_EARLIER_RUN = {'work/config.json': json.dumps(_RUN), 'work/checkpoints/learner/checkpoint': ''}
_STUDY_RUN = 'r_crr_b100_o50_s0'
_STUDY = {
    'study/study.json': json.dumps(dict(name='fake', runs=[dict(
        name=_STUDY_RUN, sweep='grid', overrides={}, config=dict(
            method='R-CRR', triplet='triplet1', teacher='generalization', obs='state',
            budget=100, offline_episodes=50, seed=0))])),
    f'study/runs/{_STUDY_RUN}/summary.json': json.dumps(dict(final_eval=dict(
        successes=10, episodes=20))),
}


def _results(triplet, outcomes):
  """A report's results.json: the teacher and CRR and BC at 100, one seed each."""
  cells = [dict(sweep='grid', overrides={}, method=m, triplet=triplet, teacher='generalization',
                obs='state', budget=100, offline_episodes=100,
                per_seed=[dict(seed=0, outcomes=outcomes)]) for m in ('CRR', 'BC')]
  return json.dumps(dict(study='fake', cells=cells, teacher_success=[dict(
      teacher='generalization', triplet=triplet, episodes=4, outcomes='1100')]))


_PAIR = {'a/results.json': _results('triplet1', '1010'),
         'b/results.json': _results('triplet2', '1010'),
         'c/results.json': _results('triplet1', '')}
_A, _B, _C = ('{tmp}/%s/results.json' % x for x in 'abc')


def _load(name):
  def load(tmp):
    from pipelines import teacher_dataset  # pylint: disable=g-import-not-at-top
    return teacher_dataset.load_teacher_dataset(name, os.path.join(tmp, 'data'))
  return load


def _student_log(tmp):
  from pipelines import episode_log  # pylint: disable=g-import-not-at-top
  return episode_log.student_builder(os.path.join(tmp, 'work', 'episodes'))


def _env(**kwargs):
  def make(tmp):
    del tmp
    from envs import stacking  # pylint: disable=g-import-not-at-top
    return stacking.make_env(**kwargs)
  return make


def _teacher(tmp):
  del tmp
  from envs import teachers  # pylint: disable=g-import-not-at-top
  return teachers.make_teacher('bogus')


# --- the table ---------------------------------------------------------------------

R = '--budget 10 --offline_episodes 5'  # A valid R-CRR run (the launcher's default method).
CASES = [
    cli('launch', '--method ppo', 'unknown method', 2, "Unknown method 'ppo'"),
    cli('launch', f'{R} --triplet triplet9', 'unknown triplet', 2, "Unknown triplet 'triplet9'"),
    cli('launch', '--method mpo --budget 10 --triplet r3,s0,zz', 'unknown object in a custom '
        'triplet', 2, "Unknown RGB-object id(s) ['zz']"),
    cli('launch', f'{R} --triplet r3,s0,b2', 'custom triplet for a method that samples a teacher '
        'dataset', 2, 'Teacher datasets exist for triplet1'),
    cli('launch', f'{R} --teacher bogus', 'unknown teacher', 2, "Unknown teacher 'bogus'"),
    cli('launch', f'{R} --obs pixels', 'unknown obs mode', 2,
        "Unknown observation mode 'pixels'"),
    cli('launch', '--budget 5 --offline_episodes 10', 'budget smaller than the dataset', 2,
        'smaller than the teacher dataset'),
    cli('launch', '--budget 10 --offline_episodes 10', 'budget equal to the dataset', 2,
        'equals offline_episodes'),
    cli('launch', '--method bc --budget 20 --offline_episodes 10', 'offline-only method with an '
        'online budget', 2, 'spends exactly its dataset'),
    cli('launch', '--method mpo --budget 10 --offline_episodes 5', 'dataset for a replay-only '
        'method', 2, 'learns from replay only'),
    cli('launch', '--budget 10', 'no dataset for a method that samples one', 2,
        'samples the teacher dataset'),
    cli('launch', '--method mpo', 'online method without a budget', 2, 'needs --budget'),
    cli('launch', '--budget 10 --offline_episodes -5', 'negative dataset size', 2,
        'offline_episodes must be >= 0'),
    cli('launch', f'{R} --batch_size 0', 'batch size 0', 2, 'batch_size must be >= 1'),
    cli('launch', f'{R} --log_every 0', 'log_every 0 (a modulo by zero mid-run)', 2,
        'log_every must be >= 1'),
    cli('launch', f'{R} --grad_steps -1', 'negative grad steps', 2, 'grad_steps must be >= 0'),
    cli('launch', f'{R} --eta 0', 'eta <= 0', 2, 'eta must be > 0'),
    cli('launch', '--method bc --offline_episodes 5 --eta 0.5', 'eta for BC (no temperature)', 2,
        'BC has no fixed temperature'),
    cli('launch', f'{R} --beta 1.5', 'beta outside [0, 1]', 2, 'beta must be in [0, 1]'),
    cli('launch', '--method bc --offline_episodes 5 --critic_reward shaped',
        'a critic reward for BC (no critic)', 2, 'BC has no critic'),
    cli('launch', '--method bc --offline_episodes 5 --offline_fraction 0.5',
        'offline_fraction for an offline-only method', 2, 'BC is offline-only'),
    cli('launch', f'{R} --num_actors 2 --actor_engine slurm', 'unknown actor engine', 2,
        "Unknown actor_engine 'slurm'"),
    cli('launch', f'{R} --actor_engine ray', 'Ray actors with one actor (the synchronous loop)',
        2, 'it needs num_actors >= 2'),
    cli('launch', f'{R} --progress maybe', 'bad boolean flag', 2,
        "argument --progress: expected a boolean, got 'maybe'"),
    cli('launch', '--budget ten', 'non-integer budget', 2,
        "argument --budget: invalid int value: 'ten'"),
    cli('launch', '--config {tmp}/run.yaml', 'unknown config-file key', 2,
        "unknown keys ['methd']", {'run.yaml': 'methd: r_crr\n'}),
    cli('launch', '--config {tmp}/run.yaml', 'config-file value of the wrong type', 2,
        "batch_size must be int, got 'big'",
        {'run.yaml': 'budget: 10\noffline_episodes: 5\nbatch_size: big\n'}),
    cli('launch', '--config {tmp}/missing.yaml', 'missing config file', 2,
        'No such file or directory'),
    cli('launch', '--config {tmp}/run.yaml', 'malformed YAML config file', 2,
        'while parsing', {'run.yaml': 'method: [r_crr\n'}),
    cli('launch', f'{R} --build_dataset false', 'missing dataset, not to be built', 1,
        'is not built'),
    cli('launch', f'{R} --seed 0 --resume', 'resume of a workdir with another config', 1,
        "differ from", _EARLIER_RUN),
    cli('launch', f'{R} --seed 1', 'a workdir with checkpoints, without --resume', 1,
        'pass --resume to continue it', _EARLIER_RUN),

    cli('study', '--spec {tmp}/missing.yaml', 'missing spec file', 2, 'No such file or directory'),
    cli('study', '--spec {tmp}/s.yaml', 'malformed YAML spec', 2, 'while parsing',
        {'s.yaml': 'grid: [\n'}),
    cli('study', '--spec {tmp}/s.yaml', 'grid that is not a mapping', 2,
        'grid must be a mapping', {'s.yaml': 'grid: 5\n'}),
    cli('study', '--spec {tmp}/s.yaml', 'unknown spec key', 2, "unknown keys ['colour']",
        {'s.yaml': _G + 'colour: red\n'}),
    cli('study', '--spec {tmp}/s.yaml', 'grid without budgets', 2, '`budgets` is required',
        {'s.yaml': 'grid:\n  methods: [R-CRR]\n'}),
    cli('study', '--spec {tmp}/s.yaml', 'a bare string where a list belongs', 2,
        '`methods` must be a list', {'s.yaml': _G.replace('[R-CRR]', 'R-CRR')}),
    cli('study', '--spec {tmp}/s.yaml', 'spec with an unknown method', 2, "Unknown method 'PPO'",
        {'s.yaml': _G.replace('R-CRR', 'PPO')}),
    cli('study', '--spec {tmp}/s.yaml', 'spec with an unknown triplet', 2,
        "unknown triplet 'triplet9'", {'s.yaml': _G + '  triplets: [triplet9]\n'}),
    cli('study', '--spec {tmp}/s.yaml', 'spec with an unknown teacher', 2,
        "unknown teacher 'bogus'", {'s.yaml': _G + '  teachers: [bogus]\n'}),
    cli('study', '--spec {tmp}/s.yaml', 'spec with an unknown obs mode', 2,
        "unknown obs 'pixels'", {'s.yaml': _G + '  obs: [pixels]\n'}),
    cli('study', '--spec {tmp}/s.yaml', 'unknown override key', 2,
        "override 'batchsize' is not a launcher setting",
        {'s.yaml': _G + '  overrides: {batchsize: [32]}\n'}),
    cli('study', '--spec {tmp}/s.yaml', 'budget equal to the dataset', 2,
        'must be > 0 and < the budget', {'s.yaml': _G.replace('[30]', '[60]')}),
    cli('study', '--spec {tmp}/s.yaml', 'offline-only method with an online budget', 2,
        'CRR is offline-only', {'s.yaml': _G.replace('R-CRR', 'CRR')}),
    cli('study', '--spec {tmp}/s.yaml', 'negative size in defaults', 2,
        'batch_size must be >= 1', {'s.yaml': _G + 'defaults: {batch_size: -1}\n'}),
    cli('study', '--spec {tmp}/s.yaml', 'defaults setting a grid field', 2,
        "['method'] cannot be set there", {'s.yaml': _G + 'defaults: {method: BC}\n'}),
    cli('study', '--spec {tmp}/s.yaml', 'sweep without a name', 2, 'need a `name`',
        {'s.yaml': _G + 'sweeps:\n  - methods: [R-CRR]\n    budgets: [60]\n'}),
    cli('study', '--spec {tmp}/s.yaml --dryrun', 'misspelt flag (--dryrun)', 2,
        'unrecognized arguments', {'s.yaml': _G}),
    cli('study', '--spec {tmp}/s.yaml --workers two', 'non-integer workers', 2,
        "argument --workers: invalid int value: 'two'", {'s.yaml': _G}),
    cli('study', '--spec {tmp}/s.yaml --engine ray', 'negative GPUs per run', 2,
        '`gpus_per_run` must be a number >= 0, got -1', {'s.yaml': _G + 'gpus_per_run: -1\n'}),
    cli('study', '--spec {tmp}/s.yaml --dry_run', 'unknown run order', 2,
        "`run_order` must be one of ['listed', 'seed_major'], got 'random'",
        {'s.yaml': _G + 'run_order: random\n'}),
    cli('study', '--spec {tmp}/s.yaml --engine spark', 'unknown engine', 2,
        "argument --engine: invalid choice: 'spark'", {'s.yaml': _G}),
    cli('study', '--spec {tmp}/s.yaml --engine ray --max_retries -1', 'negative retries', 2,
        '--max_retries must be >= 0, got -1', {'s.yaml': _G}),

    cli('build', '--triplets triplet9 --teachers generalization --sizes 5 --data_dir {tmp}/data',
        'unknown triplet', 2, "--triplets: unknown ['triplet9']"),
    cli('build', '--triplets triplet1 --teachers bogus --sizes 5 --data_dir {tmp}/data',
        'unknown teacher', 2, "--teachers: unknown ['bogus']"),
    cli('build', '--triplets triplet1 --teachers mastery --obs pixels --sizes 5 '
        '--data_dir {tmp}/data', 'unknown obs mode', 2, "--obs: unknown ['pixels']"),
    cli('build', '--triplets triplet1 --teachers mastery --sizes 5,0 --data_dir {tmp}/data',
        'size 0', 2, '--sizes must be episode counts >= 1'),
    cli('build', '--triplets triplet1 --teachers mastery --sizes 5,x --data_dir {tmp}/data',
        'non-integer size', 2, "argument --sizes: expected comma-separated episode counts"),
    cli('build', '--triplets triplet1 --teachers mastery --sizes 5 --episode_steps 0 '
        '--data_dir {tmp}/data', 'episode_steps 0', 2, '--episode_steps must be >= 1'),
    cli('build', '--triplets triplet1 --teachers generalization --sizes 5 --data_dir {tmp}/data',
        'dataset already built, no --overwrite', 2, 'Already built (pass --overwrite',
        {f'{_DS}/2.0.0/{_SHARD}': ''}),
    cli('build', '--triplets triplet1 --teachers mastery --sizes 5 --overwirte '
        '--data_dir {tmp}/data', 'misspelt flag (Beam would drop it)', 2,
        'unrecognized arguments (neither this job\'s nor Apache Beam\'s): --overwirte'),
    cli('build', '--triplets triplet1 --teachers mastery --sizes 5', 'no --data_dir', 2,
        'the following arguments are required: --data_dir'),

    cli('evaluate', '--teacher bogus', 'unknown teacher', 2, "Unknown teacher 'bogus'"),
    cli('evaluate', '--teacher oracle --triplet triplet9', 'unknown triplet', 2,
        "Unknown triplet 'triplet9'"),
    cli('evaluate', '--teacher {tmp}/no_model', 'teacher path that is no SavedModel', 2,
        'No teacher SavedModel at'),
    cli('evaluate', '--episodes 0', 'no episodes', 2, '--episodes must be >= 1'),
    cli('evaluate', '--teacher oracle --episode_steps 0', 'episode_steps 0', 2,
        '--episode_steps must be >= 1'),
    cli('evaluate', '--policy_mode greedy', 'unknown policy mode', 2,
        "argument --policy_mode: invalid choice: 'greedy'"),

    cli('report', '{tmp}/nothing', 'a folder without a study', 2, 'study.json not found'),
    cli('report', '{tmp}/study --budget 999', 'a budget the study does not have', 2,
        'No finished runs at budget [999]', _STUDY),
    cli('report', '{tmp}/study --episodes_per_hour 0', 'episodes_per_hour <= 0', 2,
        '--episodes_per_hour must be > 0', _STUDY),
    cli('report', '{tmp}/study', 'corrupted per-start outcomes in a run\'s summary', 2,
        'the file is corrupted', dict(_STUDY, **{
            f'study/runs/{_STUDY_RUN}/summary.json': json.dumps(dict(final_eval=dict(
                successes=10, episodes=20, outcomes='1' * 10 + '0' * 9 + 'x')))})),
    cli('recommend', '{tmp}/nothing --budget 100', 'a missing folder', 2, 'study.json not found'),
    cli('recommend', '{tmp}/study', 'no --budget', 2,
        'the following arguments are required: --budget', _STUDY),
    cli('recommend', '{tmp}/study --budget 999', 'a budget the study does not have', 2,
        'No finished runs at budget 999', _STUDY),
    cli('recommend', '{tmp}/study --budget 100 --triplet triplet9', 'a triplet the study does '
        'not have', 2, 'no finished runs match', _STUDY),
    cli('recommend', '{tmp}/study --budget 100 --episodes_per_hour 0', 'episodes_per_hour <= 0',
        2, '--episodes_per_hour must be > 0', _STUDY),
    cli('outcomes', '{tmp}/nothing', 'a folder without a study', 2, 'study.json not found'),
    cli('outcomes', '{tmp}/study --workers 0', 'no evaluation process', 2,
        '--workers must be >= 1', _STUDY),
    cli('more_starts', '{tmp}/nothing --episodes 1000', 'a folder without a study', 2,
        'study.json not found'),
    cli('more_starts', '{tmp}/study', 'no --episodes', 2,
        'the following arguments are required: --episodes', _STUDY),
    cli('more_starts', '{tmp}/study --episodes 1000', 'a run without per-start outcomes', 2,
        'has no per-start outcomes from start 0', _STUDY),
    cli('pair', f'--left {{tmp}}/nothing.json --left_cell teacher --right {_A} --right_cell '
        'teacher', 'a results.json that is not there', 2, 'nothing.json not found', _PAIR),
    cli('pair', f'--left {_A} --left_cell method --right {_A} --right_cell teacher',
        'a cell selector without a value', 2, 'give `teacher` or key=value pairs', _PAIR),
    cli('pair', f'--left {_A} --left_cell budget=100 --right {_A} --right_cell teacher',
        'a selector that matches two cells', 2, "'budget=100' matches 2 cells", _PAIR),
    cli('pair', f'--left {_A} --left_cell method=CRR --right {_B} --right_cell teacher',
        'cells of two triplets (different starts)', 2, 'nothing to pair', _PAIR),
    cli('pair', f'--left {_C} --left_cell method=CRR --right {_C} --right_cell teacher',
        'a cell without per-start outcomes', 2, 'lacks per-start outcomes', _PAIR),

    call("teacher_dataset.load_teacher_dataset('triplet1_generalization_state_5', '<tmp>/data')",
         _load('triplet1_generalization_state_5'), 'dataset not built', 'TeacherDatasetError',
         'is not built'),
    call("teacher_dataset.load_teacher_dataset('triplet1_state_5', '<tmp>/data')",
         _load('triplet1_state_5'), 'malformed dataset name', 'ValueError',
         "Bad teacher dataset config name 'triplet1_state_5'"),
    call("teacher_dataset.load_teacher_dataset('triplet1_generalization_state_5', '<tmp>/data')",
         _load('triplet1_generalization_state_5'), 'interrupted build (no manifest)',
         'TeacherDatasetError', 'is incomplete', {f'{_DS}/2.0.0/{_SHARD}': ''}),
    call("teacher_dataset.load_teacher_dataset('triplet1_generalization_state_5', '<tmp>/data')",
         _load('triplet1_generalization_state_5'), 'truncated shard', 'TeacherDatasetError',
         'is truncated or corrupted', {f'{_DS}/2.0.0/{_SHARD}': 'x' * 10,
                                       f'{_DS}/2.0.0/robot_time_manifest.json': _MANIFEST}),
    call("teacher_dataset.load_teacher_dataset('triplet1_generalization_state_5', '<tmp>/data')",
         _load('triplet1_generalization_state_5'), 'missing shard', 'TeacherDatasetError',
         'is missing', {f'{_DS}/2.0.0/robot_time_manifest.json': _MANIFEST}),
    call("teacher_dataset.load_teacher_dataset('triplet1_generalization_state_5', '<tmp>/data')",
         _load('triplet1_generalization_state_5'), 'dataset of another version',
         'TeacherDatasetError', 'has version(s) 1.0.0', {f'{_DS}/1.0.0/{_SHARD}': ''}),
    call("episode_log.student_builder('<tmp>/work/episodes')", _student_log,
         'no logged student episodes', 'FileNotFoundError', 'No logged student episodes'),
    call("stacking.make_env('triplet9')", _env(triplet='triplet9'), 'unknown triplet',
         'ValueError', "Unknown triplet 'triplet9'"),
    call("stacking.make_env('r3,s0,zz')", _env(triplet='r3,s0,zz'), 'unknown object id',
         'ValueError', "Unknown RGB-object id(s) ['zz']"),
    call("stacking.make_env(obs_mode='pixels')", _env(obs_mode='pixels'), 'unknown obs mode',
         'ValueError', "Unknown observation mode 'pixels'"),
    call("stacking.make_env(reward='dense')", _env(reward='dense'), 'unknown reward',
         'ValueError', "Unknown reward 'dense'"),
    call("stacking.make_env(episode_steps=0)", _env(episode_steps=0), 'episode_steps 0',
         'ValueError', 'episode_steps must be >= 1'),
    call("stacking.make_env(image_size=4)", _env(image_size=4), 'image too small', 'ValueError',
         'image_size must be >= 8'),
    call("teachers.make_teacher('bogus')", _teacher, 'unknown teacher', 'ValueError',
         "Unknown teacher 'bogus'"),
]


# --- running a case ----------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
  code: Any  # Exit code; for calls the exception's class name; 'traceback' if main raised.
  stderr: str  # For calls: the exception's message.
  written: list  # Paths under tmp that the case created, changed or removed.


def _snapshot(root: str) -> dict:
  found = {}
  for parent, dirs, files in os.walk(root):
    for name in dirs + files:
      path = os.path.join(parent, name)
      stat = os.stat(path)
      found[os.path.relpath(path, root)] = (stat.st_size, stat.st_mtime_ns) if name in files else 0
  return found


@contextlib.contextmanager
def _no_real_work():
  """A check that lets bad input through fails here, fast, instead of working for minutes."""
  def refuse(name):
    def work(*args, **kwargs):
      raise AssertionError(f'bad input reached real work: {name}')
    return work
  targets = [('pipelines.build_teacher_datasets', 'run'), ('learners.study.runner', 'run_study'),
             ('envs.evaluate', 'evaluate'), ('learners.training.setup', 'make_learner')]
  saved = []
  for module_name, attr in targets:
    module = importlib.import_module(module_name)
    if hasattr(module, attr):  # Renamed: that guard is lost, the checks below still hold.
      saved.append((module, attr, getattr(module, attr)))
      setattr(module, attr, refuse(f'{module_name}.{attr}'))
  try:
    yield
  finally:
    for module, attr, original in saved:
      setattr(module, attr, original)


def _run_cli(case: Case, tmp: str) -> tuple:
  spec = _CLIS[case.command]
  main = importlib.import_module(spec.module).main
  argv = [a.format(tmp=tmp) for a in case.args + spec.base + spec.quiet]
  err, saved_argv = io.StringIO(), sys.argv
  sys.argv = [spec.prog]  # argparse names the program after it.
  try:
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
      code = main(argv)
  except SystemExit as e:
    code = e.code
  except Exception as e:  # pylint: disable=broad-except
    code = 'traceback'
    err.write(traceback.format_exc())
    # What the table shows of it: the exception, not the traceback's last (context) line.
    err.write(f'traceback: {type(e).__name__}: {(str(e).splitlines() or [""])[0]}\n')
  finally:
    sys.argv = saved_argv
  return code, err.getvalue()


def run_case(case: Case, tmp: str) -> Outcome:
  """Runs `case` in `tmp` (also the working directory: relative defaults land there)."""
  for path, text in case.files.items():
    os.makedirs(os.path.dirname(os.path.join(tmp, path)), exist_ok=True)
    with open(os.path.join(tmp, path), 'w') as f:
      f.write(text)
  before, cwd = _snapshot(tmp), os.getcwd()
  os.chdir(tmp)
  try:
    with _no_real_work():
      if case.call is None:
        code, stderr = _run_cli(case, tmp)
      else:
        try:
          case.call(tmp)
          code, stderr = 'returned', ''
        except Exception as e:  # pylint: disable=broad-except
          code, stderr = type(e).__name__, str(e)
  finally:
    os.chdir(cwd)
  after = _snapshot(tmp)
  written = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
  return Outcome(code, stderr.replace(tmp, '<tmp>'), written)


def error_block(case: Case, stderr: str) -> list:
  """The `error:` lines (argparse: `prog: error:`), each with its indented continuation."""
  if case.call is not None:  # An exception's message: its first line must say it.
    return stderr.splitlines()[:1]
  prefixes = ('error: ', f'{_CLIS[case.command].prog}: error: ')
  blocks = []
  for line in stderr.splitlines():
    if line.startswith(prefixes):
      blocks.append(line)
    elif blocks and line.startswith(' ') and not blocks[-1].startswith(prefixes[1]):
      blocks[-1] += '\n' + line
  return blocks


def message(case: Case, outcome: Outcome) -> str:
  """The table's message: the error line (a list's first entry too when it ends in ':')."""
  blocks = error_block(case, outcome.stderr)
  lines = blocks[0].splitlines() if blocks else ['(no error line)']
  text = lines[0] + (' ' + lines[1].strip() if lines[0].endswith(':') and len(lines) > 1 else '')
  if outcome.code == 'traceback':
    text = outcome.stderr.strip().splitlines()[-1]
  elif case.call is not None:
    text = f'{outcome.code}: {text}'
  if outcome.written:
    text += f' [wrote: {", ".join(outcome.written)}]'
  return text


def _params() -> list:
  return [pytest.param(case, id=f'{i:02d}-{case.command.split("(")[0]}-{case.bad}',
                       marks=[pytest.mark.xfail(reason=case.defect, strict=True)]
                       if case.defect else [])
          for i, case in enumerate(CASES, 1)]


@pytest.mark.parametrize('case', _params())
def test_bad_input_is_refused_in_one_line_and_writes_nothing(case, tmp_path):
  outcome = run_case(case, str(tmp_path))
  assert 'Traceback' not in outcome.stderr, outcome.stderr
  assert outcome.code == case.code, outcome.stderr
  blocks = error_block(case, outcome.stderr)
  assert len(blocks) == 1, outcome.stderr
  assert case.fragment in blocks[0], outcome.stderr
  assert not outcome.written


def test_every_cli_and_at_least_28_cases():
  assert len(CASES) >= 28
  assert {c.command for c in CASES if c.call is None} == set(_CLIS)


# --- the doc ---------------------------------------------------------------------------


def _cell(text: str) -> str:
  # A code span shows <tmp> and backticks as they are; a table cell still needs | escaped.
  return f'`` {text} ``'.replace('|', '\\|')


def _row_start(i: int, case: Case) -> str:
  code = case.code if case.call is None else f'raises {case.code}'
  bad = case.bad + (' **(known defect, xfail)**' if case.defect else '')
  return f'| {i} | {_cell(case.shown())} | {bad} | {code} | '


def _table_markdown(messages: Optional[list] = None) -> str:
  """The table; `messages` (one per case) as `run_case` captured them, else the fragments."""
  messages = messages or [c.fragment for c in CASES]
  rows = ['| # | command or call | bad input | exit code | message (first line) |',
          '|---|---|---|---|---|']
  rows += [_row_start(i, c) + _cell(m) + ' |' for i, (c, m) in enumerate(zip(CASES, messages), 1)]
  return '\n'.join(rows)


def _doc(messages: list) -> str:
  return ('# Bad input\n\nEvery bad input below is refused in one line, with nothing written '
          'on disk; `tests/test_bad_input.py::test_bad_input_is_refused_in_one_line_and_writes_'
          'nothing` checks each row (`<tmp>` is a fresh folder per case).\n'
          'Regenerate this file from the same cases with `python tests/test_bad_input.py`; '
          'rows marked xfail are known defects, their message is today\'s behaviour.\n\n'
          + _table_markdown(messages) + '\n')


def test_doc_lists_every_case_with_its_code_and_message():
  with open(DOC) as f:
    rows = [l for l in f.read().splitlines() if l.startswith('| ') and l[2].isdigit()]
  assert len(rows) == len(CASES), 'rerun: python tests/test_bad_input.py'
  for i, (case, row) in enumerate(zip(CASES, rows), 1):
    assert row.startswith(_row_start(i, case)), f'rerun: python tests/test_bad_input.py\n{row}'
    if not case.defect:  # A defect's row shows today's behaviour, not the fix's message.
      assert _cell(case.fragment)[3:-3] in row.split(' | ', 4)[4], row


if __name__ == '__main__':
  captured = []
  for each in CASES:
    with tempfile.TemporaryDirectory() as folder:
      captured.append(message(each, run_case(each, folder)))
  with open(DOC, 'w') as out:
    out.write(_doc(captured))
  print(f'wrote {DOC} ({len(CASES)} cases)')
