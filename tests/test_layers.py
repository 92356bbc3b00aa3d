"""The tree's three layers: what each may import, and how big a module may grow."""

import ast
import glob
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The algorithm layer is what a researcher reads to check the maths.
_NOT_IN_ALGORITHM = ('reverb', 'envlogger', 'apache_beam', 'envs.stacking', 'envs.scene')


def _imports(path: str) -> set:
  """Every module a file imports, at any depth of its code."""
  names = set()
  for node in ast.walk(ast.parse(open(path).read(), path)):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
      names.update(f'{node.module}.{alias.name}' for alias in node.names)
  return names


def test_algorithm_layer_imports_no_runtime_or_simulator():
  files = sorted(glob.glob(os.path.join(REPO, 'learners', '*.py')))
  assert len(files) >= 10
  bad = {}
  for path in files:
    hits = sorted(n for n in _imports(path) for banned in _NOT_IN_ALGORITHM
                  if n == banned or n.startswith(banned + '.'))
    if hits:
      bad[os.path.relpath(path, REPO)] = hits
  assert not bad, bad


def test_layers_point_one_way():
  """The algorithm imports neither layer above it; the run layer not the study."""
  for path in glob.glob(os.path.join(REPO, 'learners', '*.py')):
    assert not {n for n in _imports(path)
                if n.startswith(('learners.training', 'learners.study'))}, path
  for path in glob.glob(os.path.join(REPO, 'learners', 'training', '*.py')):
    assert not {n for n in _imports(path) if n.startswith('learners.study')}, path


def test_study_dry_run_imports_no_tensorflow():
  code = ('import sys\n'
          'from learners.study import runner\n'
          "rc = runner.main(['--spec', 'studies/laptop.yaml', '--dry_run'])\n"
          "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
          "{'tensorflow', 'reverb', 'envlogger', 'apache_beam', 'tensorflow_datasets'})\n"
          "print('HEAVY', heavy)\n"
          'sys.exit(rc)\n')
  proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'estimated time' in proc.stdout
  assert 'HEAVY []' in proc.stdout, proc.stdout[-500:]


def test_no_module_over_400_lines():
  sources = [p for d in ('envs', 'learners', 'pipelines', 'datasets', 'benchmarks')
             for p in glob.glob(os.path.join(REPO, d, '**', '*.py'), recursive=True)]
  long = {os.path.relpath(p, REPO): n for p in sources
          if (n := sum(1 for _ in open(p))) > 400}
  assert not long, long
