r"""Beam job: build nested teacher datasets of several sizes in one pass.

  python -m pipelines.build_teacher_datasets --triplets triplet1 \
    --teachers generalization --obs state --sizes 1000,2500,5000 \
    --data_dir ~/tensorflow_datasets [--num_workers 2] [standard Beam options]

For each (triplet, teacher, obs mode) the job simulates the episodes of the
largest size once.  Episodes are cut into shards whose boundaries include every
requested size, so the size-k dataset is exactly the first shards of the
largest one: each size gets its own TFDS version folder whose shard files are
hard links to shared files (copies where the filesystem has no links), plus its
own `dataset_info.json`, data card and manifest.  All sizes together take about
the bytes of the largest.

Local runs use Beam's portable FnApiRunner with N worker processes (the
DirectRunner would try to download a runner binary); any other runner
(`--runner DataflowRunner ...`) is passed through unchanged.  A killed job
leaves only `*.incomplete*` folders, which never load as datasets.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Iterator, Optional, Sequence

from absl import logging
import apache_beam as beam
from apache_beam.options import pipeline_options
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer
import tqdm

from envs import specs
from envs import teachers
from envs import triplets
from pipelines import rlds_spec
from pipelines import teacher_config
from pipelines import teacher_dataset
from pipelines import teacher_episodes

# Shards stay a few hundred MB at most: one shard is held in a worker's memory
# while it is written.
DEFAULT_EPISODES_PER_SHARD = {'state': 500, 'vision': 50}
_BLOCKS_FILE = 'blocks.json'


@dataclasses.dataclass(frozen=True)
class JobConfig:
  triplets: Sequence[str]
  teachers: Sequence[str]
  obs_modes: Sequence[str]
  sizes: Sequence[int]
  data_dir: str
  policy_mode: str = teacher_config.DEFAULT_POLICY_MODE
  episode_steps: int = specs.EPISODE_STEPS
  image_size: int = specs.DEFAULT_IMAGE_SIZE
  episodes_per_shard: Optional[int] = None  # None: DEFAULT_EPISODES_PER_SHARD
  overwrite: bool = False

  def groups(self) -> list[teacher_config.TeacherConfig]:
    """The largest config of every nested group."""
    return [teacher_config.make_config(t, teacher, obs, max(self.sizes),
                                       self.policy_mode, self.episode_steps,
                                       self.image_size)
            for t in self.triplets for teacher in self.teachers
            for obs in self.obs_modes]


def shard_boundaries(sizes: Sequence[int], per_shard: int) -> list[tuple[int, int]]:
  """[start, end) episode ranges; every size in `sizes` is a boundary."""
  largest = max(sizes)
  cuts = set(range(per_shard, largest, per_shard)) | set(sizes) | {largest}
  ends = sorted(c for c in cuts if 0 < c <= largest)
  return list(zip([0] + ends[:-1], ends))


def pool_dir(data_dir: str, group: teacher_config.TeacherConfig) -> str:
  return os.path.join(data_dir, rlds_spec.DATASET_NAME,
                      f'.shared-{group.group}.incomplete')


class SerializeIntoBlock(beam.DoFn):
  """(index, example, stats) -> (block, (index, serialized example, stats)).

  Serializes exactly as TFDS's own writer does, so records are byte-identical
  to a `tfds build` of the same episodes.
  """

  def __init__(self, obs_mode: str, image_size: int,
               boundaries: Sequence[tuple[int, int]]):
    self._obs_mode, self._image_size = obs_mode, image_size
    self._ends = [end for _, end in boundaries]

  def setup(self):
    self._features = rlds_spec.features(self._obs_mode, self._image_size)
    self._serializer = example_serializer.ExampleSerializer(
        self._features.get_serialized_info())

  def process(self, item) -> Iterator[tuple[int, tuple]]:
    index, example, stats = item
    block = next(b for b, end in enumerate(self._ends) if index < end)
    record = self._serializer.serialize_example(
        self._features.encode_example(example))
    yield block, (index, record, stats)


def write_block(item, directory: str,
                boundaries: Sequence[tuple[int, int]]) -> dict:
  """Writes one block's records in episode order; returns its summary."""
  block, records = item
  records = sorted(records, key=lambda r: r[0])
  start, end = boundaries[block]
  indices = [r[0] for r in records]
  if indices != list(range(start, end)):
    raise RuntimeError(f'Block {block} expected episodes [{start}, {end}), '
                       f'got {len(indices)} episodes.')
  path = os.path.join(directory, f'block-{start:08d}-{end:08d}.tfrecord')
  with tf.io.TFRecordWriter(path + '.tmp') as writer:
    for _, record, _ in records:
      writer.write(record)
  tf.io.gfile.rename(path + '.tmp', path, overwrite=True)
  stats = teacher_episodes.EpisodeStats()
  for _, _, s in records:
    stats = stats + s
  return dict(block=block, start=start, end=end, path=os.path.basename(path),
              num_bytes=sum(len(r[1]) for r in records),
              stats=dataclasses.asdict(stats))


def write_blocks_summary(blocks: list[dict], directory: str) -> None:
  with tf.io.gfile.GFile(os.path.join(directory, _BLOCKS_FILE), 'w') as f:
    json.dump(sorted(blocks, key=lambda b: b['block']), f)


def add_group(pipeline: beam.Pipeline, job: JobConfig,
              group: teacher_config.TeacherConfig) -> None:
  per_shard = job.episodes_per_shard or DEFAULT_EPISODES_PER_SHARD[
      group.obs_mode]
  boundaries = shard_boundaries(job.sizes, per_shard)
  directory = pool_dir(job.data_dir, group)
  _ = (pipeline
       | f'{group.group}/Episodes' >> teacher_episodes.SimulateTeacherEpisodes(
           group, group.size)
       | f'{group.group}/Serialize' >> beam.ParDo(SerializeIntoBlock(
           group.obs_mode, group.image_size, boundaries))
       | f'{group.group}/GroupBlocks' >> beam.GroupByKey()
       | f'{group.group}/WriteBlocks' >> beam.Map(
           write_block, directory=directory, boundaries=boundaries)
       | f'{group.group}/AllBlocks' >> beam.combiners.ToList()
       | f'{group.group}/Summary' >> beam.Map(write_blocks_summary,
                                              directory=directory))


def _link_or_copy(src: str, dst: str) -> None:
  try:
    os.link(src, dst)
  except OSError:  # no hard links (other filesystem, object store)
    tf.io.gfile.copy(src, dst, overwrite=True)


def assemble_size(job: JobConfig, group: teacher_config.TeacherConfig,
                  size: int, blocks: list[dict]) -> str:
  """Makes the size-`size` dataset folder from shared blocks; returns it."""
  config = group.resized(size)
  final = teacher_dataset.version_dir(job.data_dir, config)
  tmp = final + '.incomplete-build'
  if tf.io.gfile.exists(tmp):
    tf.io.gfile.rmtree(tmp)
  tf.io.gfile.makedirs(tmp)
  used = [b for b in blocks if b['end'] <= size]
  template = tfds.core.ShardedFileTemplate(
      data_dir=tmp, dataset_name=rlds_spec.DATASET_NAME, split='train',
      filetype_suffix='tfrecord')
  source = pool_dir(job.data_dir, group)
  for i, block in enumerate(used):
    _link_or_copy(os.path.join(source, block['path']),
                  os.fspath(template.sharded_filepath(
                      shard_index=i, num_shards=len(used))))
  stats = teacher_episodes.EpisodeStats()
  for block in used:
    stats = stats + teacher_episodes.EpisodeStats(**block['stats'])
  info = teacher_dataset.dataset_info(
      config, tmp,
      description=teacher_episodes.card_text(config, stats,
                                             teacher_episodes.env_version()),
      metadata=teacher_episodes.card_metadata(config, stats))
  info.set_file_format('tfrecord')
  info.set_splits(tfds.core.SplitDict([tfds.core.SplitInfo(
      name='train', shard_lengths=[b['end'] - b['start'] for b in used],
      num_bytes=sum(b['num_bytes'] for b in used),
      filename_template=template)]))
  info.write_to_directory(tmp)
  teacher_dataset.write_manifest(tmp, config, stats.episodes)
  _replace_dir(tmp, final)
  return final


def _replace_dir(tmp: str, final: str) -> None:
  """Publishes `tmp` as `final` by rename (the old one goes only afterwards)."""
  old = None
  if tf.io.gfile.exists(final):
    old = final + '.incomplete-old'
    if tf.io.gfile.exists(old):
      tf.io.gfile.rmtree(old)
    tf.io.gfile.rename(final, old)
  tf.io.gfile.rename(tmp, final)
  if old:
    tf.io.gfile.rmtree(old)


def _targets(job: JobConfig) -> list[str]:
  return [teacher_dataset.version_dir(job.data_dir, g.resized(s))
          for g in job.groups() for s in job.sizes]


def check_targets(job: JobConfig) -> None:
  """Refuses to replace built datasets unless the job says `overwrite`."""
  existing = [t for t in _targets(job) if tf.io.gfile.exists(t)]
  if existing and not job.overwrite:
    raise FileExistsError(
        'Already built (pass --overwrite to rebuild): ' + ', '.join(existing))


def run(job: JobConfig, beam_options: pipeline_options.PipelineOptions
        ) -> list[str]:
  """Runs the job; returns the version folders of the datasets it built."""
  check_targets(job)
  for group in job.groups():
    directory = pool_dir(job.data_dir, group)
    if tf.io.gfile.exists(directory):
      logging.warning('Removing %s, left over from an interrupted build.',
                      directory)
      tf.io.gfile.rmtree(directory)
    tf.io.gfile.makedirs(directory)
  start = time.time()
  with beam.Pipeline(options=beam_options) as pipeline:
    for group in job.groups():
      add_group(pipeline, job, group)
  logging.info('Simulated and wrote shards in %.1f s.', time.time() - start)
  built = []
  work = [(g, s) for g in job.groups() for s in sorted(job.sizes)]
  for group, size in tqdm.tqdm(work, desc='assembling datasets', unit='ds'):
    directory = pool_dir(job.data_dir, group)
    with tf.io.gfile.GFile(os.path.join(directory, _BLOCKS_FILE)) as f:
      blocks = json.load(f)
    built.append(assemble_size(job, group, size, blocks))
  for group in job.groups():
    # The datasets hold hard links; dropping the pool frees nothing they use.
    tf.io.gfile.rmtree(pool_dir(job.data_dir, group))
  return built


def local_beam_options(beam_args: Sequence[str], num_workers: int
                       ) -> pipeline_options.PipelineOptions:
  """Beam options: user flags win; local defaults name runner and pickler."""
  args = list(beam_args)
  given = {a.split('=')[0].lstrip('-') for a in args if a.startswith('--')}
  defaults = {'runner': 'FnApiRunner',
              'direct_running_mode': 'multi_processing',
              'direct_num_workers': str(num_workers),
              'num_workers': str(num_workers),
              'pickle_library': 'cloudpickle'}
  for key, value in defaults.items():
    if key not in given:
      args.append(f'--{key}={value}')
  return pipeline_options.PipelineOptions(args)


def _csv(text: str) -> list[str]:
  return [t.strip() for t in text.split(',') if t.strip()]


def _sizes(text: str) -> list[int]:
  try:
    return [int(x) for x in _csv(text)]
  except ValueError:
    raise argparse.ArgumentTypeError(
        f'expected comma-separated episode counts, got {text!r}') from None


def check_job(job: JobConfig, num_workers: int) -> None:
  """Every check that needs no work: a bad name would otherwise fail in a Beam worker."""
  for flag, given, valid in (('--triplets', job.triplets, triplets.TRIPLET_NAMES),
                             ('--teachers', job.teachers, teachers.TEACHER_NAMES),
                             ('--obs', job.obs_modes, specs.OBS_MODES)):
    unknown = [g for g in given if g not in valid]
    if unknown or not given:
      raise ValueError(f'{flag}: unknown {unknown or "(none given)"}; valid: '
                       f'{", ".join(valid)}.')
  if not job.sizes or min(job.sizes) < 1:
    raise ValueError(f'--sizes must be episode counts >= 1, got {list(job.sizes)}.')
  per_shard = 1 if job.episodes_per_shard is None else job.episodes_per_shard
  for flag, value, low in (('--episode_steps', job.episode_steps, 1),
                           ('--image_size', job.image_size, 8),
                           ('--episodes_per_shard', per_shard, 1),
                           ('--num_workers', num_workers, 1)):
    if value < low:
      raise ValueError(f'{flag} must be >= {low}, got {value}.')
  for group in job.groups():  # The name round-trips (canonical, parseable).
    teacher_config.TeacherConfig(name=group.name)


def unknown_beam_flags(beam_args: Sequence[str]) -> list[str]:
  """Flags among `beam_args` that Apache Beam does not know either, as typed.

  Beam drops them with a log line: a typo (`--policy-mode deterministic`)
  would build the wrong datasets for minutes.
  """
  options = pipeline_options.PipelineOptions(list(beam_args))
  unknown = (set(options.get_all_options(retain_unknown_options=True))
             - set(options.get_all_options()))
  # Beam's keys have '_' for '-'.
  typed = [a.split('=')[0] for a in beam_args if a.startswith('--')
           and a[2:].split('=')[0].replace('-', '_') in unknown]
  return typed or sorted(unknown)


def parse_args(argv: Sequence[str]) -> tuple[JobConfig, list[str], int]:
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n\n')[0],
      epilog='Unknown flags are passed to Apache Beam.')
  parser.add_argument('--triplets', type=_csv, required=True)
  parser.add_argument('--teachers', type=_csv, required=True)
  parser.add_argument('--obs', type=_csv, default=['state'],
                      help='observation modes: state, vision')
  parser.add_argument('--sizes', type=_sizes,
                      required=True, help='e.g. 1000,2500,5000 (any sizes)')
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--policy_mode', default=teacher_config.DEFAULT_POLICY_MODE,
                      choices=rlds_spec.POLICY_MODES)
  parser.add_argument('--episode_steps', type=int, default=specs.EPISODE_STEPS)
  parser.add_argument('--image_size', type=int, default=specs.DEFAULT_IMAGE_SIZE)
  parser.add_argument('--episodes_per_shard', type=int, default=None)
  parser.add_argument('--num_workers', type=int, default=2,
                      help='local worker processes (also Beam --num_workers)')
  parser.add_argument('--overwrite', action='store_true')
  args, beam_args = parser.parse_known_args(argv)
  unknown = unknown_beam_flags(beam_args)
  if unknown:
    parser.error('unrecognized arguments (neither this job\'s nor Apache Beam\'s): '
                 + ', '.join(unknown))
  job = JobConfig(triplets=args.triplets, teachers=args.teachers,
                  obs_modes=args.obs, sizes=sorted(set(args.sizes)),
                  data_dir=os.path.expanduser(args.data_dir),
                  policy_mode=args.policy_mode,
                  episode_steps=args.episode_steps, image_size=args.image_size,
                  episodes_per_shard=args.episodes_per_shard,
                  overwrite=args.overwrite)
  check_job(job, args.num_workers)
  return job, beam_args, args.num_workers


def main(argv: Sequence[str] = None) -> int:
  logging.set_verbosity(logging.INFO)
  try:
    job, beam_args, num_workers = parse_args(
        sys.argv[1:] if argv is None else argv)
    check_targets(job)  # Before Beam starts, which takes seconds and writes.
  except (ValueError, FileExistsError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  for path in run(job, local_beam_options(beam_args, num_workers)):
    print(path)
  return 0


if __name__ == '__main__':
  sys.exit(main())
