"""TFDS builder of RGB-stacking teacher datasets (RLDS episodes, built with Beam).

Build one config with the TFDS CLI (FnApiRunner: DirectRunner would download a
runner binary here):

  tfds build datasets/rgb_stacking_teacher \
    --config triplet1_generalization_state_1000 --data_dir ~/tensorflow_datasets \
    --beam_pipeline_options="runner=FnApiRunner,direct_running_mode=multi_processing,direct_num_workers=2,pickle_library=cloudpickle"

A size outside the listed configs: --config '{"name": "triplet1_mastery_state_1234"}'.
Several nested sizes in one job (each episode simulated once, shards shared):
`python -m pipelines.build_teacher_datasets` (see docs/datasets.md).

Everything Beam runs lives in `pipelines/` (workers cannot import this file).
"""

import os

import apache_beam as beam
import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import rlds_spec
from pipelines import teacher_config
from pipelines import teacher_dataset
from pipelines import teacher_episodes

_STATS_FILE = '.episode_stats.json'


class Builder(tfds.core.GeneratorBasedBuilder):
  """RGB-stacking teacher episodes; one config per (triplet, teacher, obs, size)."""

  VERSION = tfds.core.Version(rlds_spec.VERSION)
  RELEASE_NOTES = rlds_spec.RELEASE_NOTES
  BUILDER_CONFIGS = teacher_config.standard_configs()
  DEFAULT_CONFIG_NAME = 'triplet1_generalization_state_1000'

  def _info(self) -> tfds.core.DatasetInfo:
    info = teacher_dataset.dataset_info(self.builder_config, self._data_dir)
    return self.dataset_info_from_configs(
        description=info.description,
        features=info.features,
        disable_shuffling=True,
        homepage=info.homepage,
        citation=info.citation,
        metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager, pipeline):
    del dl_manager
    config = self.builder_config
    episodes = pipeline | config.name >> (
        teacher_episodes.SimulateTeacherEpisodes(config, config.size))
    _ = (episodes
         | 'Stats' >> beam.Map(teacher_episodes.stats_of)
         | 'SumStats' >> beam.CombineGlobally(teacher_episodes.SumStats())
         | 'WriteStats' >> beam.Map(teacher_episodes.write_stats_json,
                                    path=os.path.join(self.data_dir,
                                                      _STATS_FILE)))
    return {'train': episodes | 'Examples' >> beam.Map(
        teacher_episodes.keyed_example)}

  def _generate_examples(self, *args, **kwargs):
    raise NotImplementedError('Built only through _split_generators (Beam).')

  def _download_and_prepare(self, dl_manager, download_config):
    # self.data_dir is TFDS's temporary folder here; it is renamed only after
    # this returns, so the card and manifest are in place before the dataset
    # becomes visible.
    super()._download_and_prepare(dl_manager, download_config)
    config = self.builder_config
    stats_path = os.path.join(self.data_dir, _STATS_FILE)
    stats = teacher_episodes.read_stats_json(stats_path)
    tf.io.gfile.remove(stats_path)
    self.info.as_proto.description = teacher_episodes.card_text(
        config, stats, teacher_episodes.env_version())
    self.info.metadata.update(teacher_episodes.card_metadata(config, stats))
    teacher_dataset.write_manifest(self.data_dir, config, stats.episodes)
