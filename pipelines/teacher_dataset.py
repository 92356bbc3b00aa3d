"""Teacher datasets on disk: layout, data card, shard manifest, checked loading.

A built dataset lives where TFDS puts it,
`{data_dir}/rgb_stacking_teacher/{config}/{version}/`, and loads with plain
TFDS.  On top of TFDS's files each version directory holds a manifest of its
shard files (bytes and sha256), written last, so `load_teacher_dataset` can
tell a complete dataset from a missing, truncated or corrupted one and say
which command rebuilds it.
"""

import hashlib
import json
import os
from typing import Any, Optional

import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import rlds_spec
from pipelines import teacher_config

MANIFEST = 'robot_time_manifest.json'
HOMEPAGE = 'https://arxiv.org/abs/2211.13143'
CITATION = """@inproceedings{hansen2023robottime,
  title={How to Spend Your Robot Time: Bridging Kickstarting and Offline
         Reinforcement Learning for Vision-based Robotic Manipulation},
  booktitle={IROS}, year={2022}}"""


class TeacherDatasetError(RuntimeError):
  """A teacher dataset is missing, incomplete, corrupted or of another version."""


def config_dir(data_dir: str, config: teacher_config.TeacherConfig) -> str:
  return os.path.join(data_dir, rlds_spec.DATASET_NAME, config.name)


def version_dir(data_dir: str, config: teacher_config.TeacherConfig,
                version: str = rlds_spec.VERSION) -> str:
  return os.path.join(config_dir(data_dir, config), version)


def dataset_info(config: teacher_config.TeacherConfig, data_dir: str,
                 description: Optional[str] = None,
                 metadata: Optional[dict] = None) -> tfds.core.DatasetInfo:
  """DatasetInfo of a teacher dataset, features from the shared RLDS spec."""
  identity = tfds.core.dataset_info.DatasetIdentity(
      name=rlds_spec.DATASET_NAME,
      version=tfds.core.Version(rlds_spec.VERSION),
      data_dir=data_dir,
      module_name='rgb_stacking_teacher_dataset_builder',
      config_name=config.name,
      config_description=config.description,
      release_notes=rlds_spec.RELEASE_NOTES)
  return tfds.core.DatasetInfo(
      builder=identity,
      description=description or config.description,
      features=rlds_spec.features(config.obs_mode, config.image_size),
      disable_shuffling=True,  # examples stay in key (= episode index) order
      homepage=HOMEPAGE,
      citation=CITATION,
      metadata=tfds.core.MetadataDict(metadata or {}))


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(path, 'rb') as f:
    while chunk := f.read(1 << 22):
      digest.update(chunk)
  return digest.hexdigest()


def shard_files(directory: str) -> list[str]:
  prefix = f'{rlds_spec.DATASET_NAME}-train.tfrecord-'
  return sorted(n for n in tf.io.gfile.listdir(directory)
                if n.startswith(prefix))


def write_manifest(directory: str, config: teacher_config.TeacherConfig,
                   num_episodes: int) -> None:
  """Lists every shard's bytes and sha256; written last, atomically."""
  files = {name: {'bytes': tf.io.gfile.stat(os.path.join(directory, name)).length,
                  'sha256': _sha256(os.path.join(directory, name))}
           for name in shard_files(directory)}
  manifest = {'config': config.name, 'version': rlds_spec.VERSION,
              'episodes': int(num_episodes), 'files': files}
  tmp = os.path.join(directory, MANIFEST + '.tmp')
  with tf.io.gfile.GFile(tmp, 'w') as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
  tf.io.gfile.rename(tmp, os.path.join(directory, MANIFEST), overwrite=True)


def _available_versions(cdir: str) -> list[str]:
  if not tf.io.gfile.isdir(cdir):
    return []
  return sorted(n.rstrip('/') for n in tf.io.gfile.listdir(cdir)
                if n[:1].isdigit() and 'incomplete' not in n)


def _load_manifest(vdir: str) -> dict:
  with tf.io.gfile.GFile(os.path.join(vdir, MANIFEST)) as f:
    return json.load(f)


def check_teacher_dataset(name: str, data_dir: str,
                          version: str = rlds_spec.VERSION,
                          verify: str = 'size') -> str:
  """Checks a built teacher dataset; returns its version directory.

  Args:
    name: config name, e.g. 'triplet1_generalization_state_5000' (an optional
      'rgb_stacking_teacher/' prefix is accepted).
    data_dir: the TFDS data dir it was built into.
    version: expected dataset version.
    verify: 'none', 'size' (shard files present with the listed sizes; cheap)
      or 'sha256' (also reads every byte; catches bit flips).

  Raises:
    TeacherDatasetError: naming the bad file and the command that rebuilds it.
  """
  name = name.split('/')[-1]
  config = teacher_config.TeacherConfig(name=name)
  fix = teacher_config.rebuild_command(config, data_dir)
  vdir = version_dir(data_dir, config, version)
  if not tf.io.gfile.isdir(vdir):
    found = _available_versions(config_dir(data_dir, config))
    if found:
      raise TeacherDatasetError(
          f'Teacher dataset {name} has version(s) {", ".join(found)} in '
          f'{config_dir(data_dir, config)}, but version {version} is needed '
          f'(release notes: {rlds_spec.RELEASE_NOTES.get(version, "n/a")}). '
          f'Rebuild it with:\n  {fix}')
    raise TeacherDatasetError(
        f'Teacher dataset {name} is not built: {vdir} does not exist (an '
        f'interrupted build leaves only a *.incomplete* folder). Build it '
        f'with:\n  {fix}')
  manifest_path = os.path.join(vdir, MANIFEST)
  if not tf.io.gfile.exists(manifest_path):
    raise TeacherDatasetError(
        f'Teacher dataset {name} in {vdir} is incomplete: {manifest_path} is '
        f'missing (the build did not finish). Rebuild it with:\n  {fix}')
  manifest = _load_manifest(vdir)
  if verify == 'none':
    return vdir
  for fname, expected in sorted(manifest['files'].items()):
    path = os.path.join(vdir, fname)
    if not tf.io.gfile.exists(path):
      raise TeacherDatasetError(
          f'Shard {path} of teacher dataset {name} is missing. Rebuild it '
          f'with:\n  {fix}')
    size = tf.io.gfile.stat(path).length
    if size != expected['bytes']:
      raise TeacherDatasetError(
          f'Shard {path} of teacher dataset {name} is truncated or corrupted '
          f'({size} bytes, expected {expected["bytes"]}). Rebuild it with:\n'
          f'  {fix}')
    if verify == 'sha256' and _sha256(path) != expected['sha256']:
      raise TeacherDatasetError(
          f'Shard {path} of teacher dataset {name} is corrupted (sha256 '
          f'mismatch). Rebuild it with:\n  {fix}')
  return vdir


def read_manifest(name: str, data_dir: str, version: str = rlds_spec.VERSION) -> dict:
  """The manifest of a checked dataset: its config, episodes and each shard's sha256."""
  return _load_manifest(check_teacher_dataset(name, data_dir, version, verify='none'))


def teacher_builder(name: str, data_dir: str, version: str = rlds_spec.VERSION,
                    verify: str = 'size') -> tfds.core.DatasetBuilder:
  """A read-only TFDS builder of a checked teacher dataset (no builder import)."""
  return tfds.builder_from_directory(
      check_teacher_dataset(name, data_dir, version, verify))


def load_teacher_dataset(name: str, data_dir: str, split: str = 'train',
                         version: str = rlds_spec.VERSION,
                         verify: str = 'size', **as_dataset_kwargs: Any
                         ) -> tf.data.Dataset:
  """Episodes of a checked teacher dataset, in episode-index order."""
  builder = teacher_builder(name, data_dir, version, verify)
  return builder.as_dataset(split=split, shuffle_files=False,
                            **as_dataset_kwargs)


def read_card(name: str, data_dir: str) -> dict:
  """The data card numbers of a built dataset (DatasetInfo metadata)."""
  builder = teacher_builder(name, data_dir, verify='none')
  return dict(builder.info.metadata or {})
