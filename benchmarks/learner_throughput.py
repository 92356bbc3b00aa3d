"""Learner gradient steps per second, one JSON line per figure.

  .venv/bin/python benchmarks/learner_throughput.py            # full run
  .venv/bin/python benchmarks/learner_throughput.py --steps 50 # quick run

Figures: CRR, R-CRR, MPO (20 action samples) with the state encoder, batch 64,
256x256 networks, with `--steps_per_call` K grad steps per learner call (what
the offline phase runs) and with one step per call (the online loops); the
vision encoder (64x64, two cameras) with CRR; a roofline line: FLOPs per step
(TF's profiler on the step's graph), the achieved GFLOP/s, and a 64x256 @
256x256 matmul's GFLOP/s measured in the same run; and, when a side venv with
d3rlpy exists (--d3rlpy_python, default /tmp/d3/bin/python), d3rlpy's CRR with
the same network sizes in the same run, plus our/d3rlpy ratio.  Teacher labels
(R-CRR) are computed before the timed calls, as the run's input thread does.
TensorFlow places ops on a GPU when one is visible; --device forces one
(e.g. --device /CPU:0).  --intra_op / --inter_op set TF's thread pools.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # pylint: disable=g-import-not-at-top

from envs import specs  # pylint: disable=g-import-not-at-top
from learners import learner as learner_lib  # pylint: disable=g-import-not-at-top
from learners import types  # pylint: disable=g-import-not-at-top

BATCH = 64
POOL = 16  # Distinct pre-built batches cycled through (data loading not timed).

# d3rlpy's CRR with our sizes: 256x256 actor and critic, batch 64, CPU.
D3RLPY_SCRIPT = r'''
import json, sys, time, numpy as np, torch, d3rlpy
steps = int(sys.argv[1]); obs_dim = int(sys.argv[2]); act_dim = int(sys.argv[3])
rng = np.random.default_rng(0)
n = 10000
obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
act = rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32)
rew = rng.uniform(size=n).astype(np.float32)
term = np.zeros(n, np.float32); term[399::400] = 1.0
ds = d3rlpy.dataset.MDPDataset(obs, act, rew, term)
enc = d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=[256, 256])
crr = d3rlpy.algos.CRRConfig(batch_size=64, actor_encoder_factory=enc,
                             critic_encoder_factory=enc).create(device='cpu:0')
crr.build_with_dataset(ds)
warm = min(200, steps)
crr.fit(ds, n_steps=warm, n_steps_per_epoch=warm, show_progress=False,
        save_interval=10**9, experiment_name='bench', with_timestamp=False)
t = time.perf_counter()
crr.fit(ds, n_steps=steps, n_steps_per_epoch=steps, show_progress=False,
        save_interval=10**9, experiment_name='bench', with_timestamp=False)
print(json.dumps({'steps_per_s': steps / (time.perf_counter() - t),
                  'd3rlpy': d3rlpy.__version__, 'torch': torch.__version__,
                  'torch_threads': torch.get_num_threads()}))
'''


class _Teacher:
  """A cheap linear teacher (R-CRR needs one); same protocol as envs.policy."""
  name = 'bench'

  def __init__(self):
    rng = np.random.default_rng(0)
    self._w = rng.normal(0, 0.2, (specs.PROPRIO_DIM + specs.OBJECT_POSES_DIM,
                                  specs.ACTION_DIM)).astype(np.float32)

  def distribution(self, observation):
    from envs import policy  # pylint: disable=g-import-not-at-top
    x = np.concatenate([observation[k] for k in specs.TEACHER_KEYS], axis=-1)
    mean = np.tanh(x @ self._w)
    return policy.GaussianAction(mean, np.full_like(mean, 0.1))


def _batches(obs_mode: str, image_size: int):
  rng = np.random.default_rng(0)
  out = []
  for _ in range(POOL):
    def obs():
      return {k: (rng.normal(size=(BATCH,) + s.shape).astype(np.float32)
                  if s.dtype == np.float32 else
                  rng.integers(0, 256, (BATCH,) + s.shape, dtype=np.uint8))
              for k, s in specs.observation_spec(obs_mode, image_size).items()}
    out.append(types.Batch(
        observation=obs(), next_observation=obs(),
        action=rng.uniform(-1, 1, (BATCH, specs.ACTION_DIM)).astype(np.float32),
        reward=rng.uniform(size=BATCH).astype(np.float32),
        discount=np.full(BATCH, 0.95, np.float32),
        is_offline=(np.arange(BATCH) < BATCH // 2).astype(np.float32)))
  return out


TEACHER = 'mastery'  # The shipped network: labels inside the compiled step.


def _teacher():
  if TEACHER == 'linear':
    return _Teacher()
  import envs  # pylint: disable=g-import-not-at-top
  return envs.make_teacher(TEACHER)


def _learner(method: str, obs_mode: str, image_size: int) -> learner_lib.Learner:
  config = learner_lib.LearnerConfig(obs_mode=obs_mode, image_size=image_size)
  return learner_lib.Learner(method, config, teacher=_teacher())


def measure(method: str, obs_mode: str, steps: int, per_call: int,
            image_size: int = 64) -> dict:
  learner = _learner(method, obs_mode, image_size)
  pool = _batches(obs_mode, image_size)
  calls = [types.stack([pool[(i * per_call + j) % POOL] for j in range(per_call)])
           for i in range(max(1, POOL // per_call))]
  labels = [learner.teacher_labels(c) for c in calls]
  for i in range(max(2, 20 // per_call)):  # Trace and warm up.
    learner.steps(calls[i % len(calls)], labels[i % len(calls)])
  num_calls = max(1, steps // per_call)
  start = time.perf_counter()
  for i in range(num_calls):
    learner.steps(calls[i % len(calls)], labels[i % len(calls)])
  rate = num_calls * per_call / (time.perf_counter() - start)
  relabel = (None if not learner.method.uses_teacher else
             'numpy, input side' if labels[0] is not None else 'in the compiled step')
  return {'figure': 'learner_steps_per_s', 'method': method, 'obs_mode': obs_mode,
          'teacher': TEACHER if relabel else None, 'teacher_relabel': relabel,
          'batch': BATCH, 'nets': '256x256', 'image_size': image_size if obs_mode == 'vision'
          else None, 'steps_per_call': per_call, 'steps': num_calls * per_call,
          'steps_per_s': round(rate, 1), 'device': _device()}


def step_flops(method: str, obs_mode: str = 'state', image_size: int = 64) -> int:
  """Floating-point operations of one grad step, counted by TF's profiler on its graph."""
  from tensorflow.python.profiler import model_analyzer  # pylint: disable=g-import-not-at-top
  from tensorflow.python.profiler import option_builder  # pylint: disable=g-import-not-at-top
  learner = _learner(method, obs_mode, image_size)
  batch = _batches(obs_mode, image_size)[0]
  keys = specs.STUDENT_KEYS[obs_mode]
  student = batch._replace(observation={k: batch.observation[k] for k in keys},
                           next_observation={k: batch.next_observation[k] for k in keys})
  graph = tf.function(learner._one_step).get_concrete_function(  # pylint: disable=protected-access
      student, tf.constant(1.0), tf.constant(0.5), learner.teacher_labels(batch)).graph
  options = option_builder.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  return int(model_analyzer.profile(graph, options=options).total_float_ops)


def matmul_gflops(seconds: float = 2.0) -> float:
  """A 64x256 @ 256x256 matmul (the nets' shape) in a compiled loop, in GFLOP/s."""
  a = tf.random.normal([BATCH, 256])
  b = tf.random.normal([256, 256])
  reps = 200

  @tf.function
  def loop(x):
    for _ in tf.range(reps):
      x = tf.matmul(x, b) * 1e-3  # Chained, so no call can be skipped.
    return x
  loop(a).numpy()
  calls, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    loop(a).numpy()
    calls += 1
  return calls * reps * 2 * BATCH * 256 * 256 / (time.perf_counter() - start) / 1e9


def _device() -> str:
  gpus = tf.config.list_logical_devices('GPU')
  return gpus[0].name if gpus else 'CPU'


def d3rlpy_crr(python: str, steps: int) -> dict:
  obs_dim = specs.PROPRIO_DIM + specs.OBJECT_POSES_DIM
  if not os.path.exists(python):
    return {'figure': 'd3rlpy_crr_steps_per_s', 'skipped': f'no side venv at {python}'}
  workdir = os.path.join('/tmp', 'd3rlpy_bench')
  os.makedirs(workdir, exist_ok=True)
  proc = subprocess.run([python, '-c', D3RLPY_SCRIPT, str(steps), str(obs_dim),
                         str(specs.ACTION_DIM)], capture_output=True, text=True,
                        cwd=workdir, check=False)
  if proc.returncode != 0:
    return {'figure': 'd3rlpy_crr_steps_per_s', 'skipped': 'd3rlpy run failed',
            'stderr_tail': proc.stderr[-500:]}
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  return {'figure': 'd3rlpy_crr_steps_per_s', 'batch': BATCH, 'nets': '256x256',
          'steps': steps, 'steps_per_s': round(result.pop('steps_per_s'), 1), **result}


def main():
  global TEACHER
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=1000)
  parser.add_argument('--steps_per_call', type=int, default=50)
  parser.add_argument('--vision_steps', type=int, default=None,
                      help='steps for the vision figure (default: steps // 5)')
  parser.add_argument('--device', default=None, help='e.g. /CPU:0 or /GPU:0')
  parser.add_argument('--d3rlpy_python', default='/tmp/d3/bin/python')
  parser.add_argument('--methods', default='CRR,R-CRR,MPO')
  parser.add_argument('--skip_vision', action='store_true')
  parser.add_argument('--intra_op', type=int, default=0, help='0: TF default')
  parser.add_argument('--inter_op', type=int, default=0, help='0: TF default')
  parser.add_argument('--teacher', default=TEACHER,
                      help='a teacher name or SavedModel path, or "linear" (numpy labels)')
  args = parser.parse_args()
  TEACHER = args.teacher
  tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
  tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
  vision_steps = args.vision_steps or max(10, args.steps // 5)

  def run(method, obs_mode, steps, per_call):
    if args.device:
      with tf.device(args.device):
        return measure(method, obs_mode, steps, per_call)
    return measure(method, obs_mode, steps, per_call)

  def emit(line):
    line['loadavg_1m'] = os.getloadavg()[0]  # The CPU is shared: context for the figure.
    line['threads'] = [args.intra_op, args.inter_op]
    print(json.dumps(line), flush=True)

  # Ours and d3rlpy's CRR back to back, so both see the same machine load.
  method_list = args.methods.split(',')
  ours = {}
  for method in method_list[:1]:
    line = run(method, 'state', args.steps, args.steps_per_call)
    ours[method] = line['steps_per_s']
    emit(line)
  d3 = d3rlpy_crr(args.d3rlpy_python, args.steps)
  emit(d3)
  if 'steps_per_s' in d3 and 'CRR' in ours:
    emit({'figure': 'crr_ratio_ours_over_d3rlpy',
          'ratio': round(ours['CRR'] / d3['steps_per_s'], 2)})
  matmul = None

  def roofline(figure, flops, steps_per_s):
    nonlocal matmul
    matmul = matmul or matmul_gflops()
    achieved = flops * steps_per_s / 1e9
    emit({'figure': figure, 'flops_per_step': flops,
          'achieved_gflops': round(achieved, 1), 'matmul_gflops': round(matmul, 1),
          'fraction_of_matmul_rate': round(achieved / matmul, 3),
          'floor_steps_per_s': round(matmul * 1e9 / flops, 1)})
  if 'CRR' in ours:
    roofline('crr_roofline', step_flops('CRR'), ours['CRR'])
  for method in method_list:
    if method not in ours:
      emit(run(method, 'state', args.steps, args.steps_per_call))
    emit(run(method, 'state', args.steps, 1))
  if not args.skip_vision:
    line = run('CRR', 'vision', vision_steps, max(1, min(args.steps_per_call, vision_steps // 4)))
    emit(line)
    # The conv torsos' FLOPs: how far the CPU figure can go without changing the nets.
    roofline('crr_vision_roofline', step_flops('CRR', 'vision'), line['steps_per_s'])


if __name__ == '__main__':
  main()
