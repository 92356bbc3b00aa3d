"""RGB-stacking object triplets: the 5 official test triplets and custom ones."""

import dataclasses
import functools

from dm_robotics.manipulation.props.rgb_objects import rgb_object

# Official names in dm_robotics are `rgb_test_triplet1..5`; we expose `triplet1..5`.
TRIPLET_NAMES = tuple(f'triplet{i}' for i in range(1, 6))


@dataclasses.dataclass(frozen=True)
class Triplet:
  """Object ids of a stacking task: put `red` on `blue`; `green` is a distractor."""
  name: str
  red: str
  green: str
  blue: str

  @property
  def ids(self) -> tuple[str, str, str]:
    return (self.red, self.green, self.blue)


@functools.lru_cache(maxsize=None)
def valid_object_ids() -> tuple[str, ...]:
  return tuple(sorted(set(rgb_object.RGB_OBJECTS_FULL_SET)))


def _official(name: str) -> Triplet:
  red, green, blue = rgb_object.PROP_TRIPLETS_TEST[f'rgb_test_{name}'].ids
  return Triplet(name, red, green, blue)


def get_triplet(spec: 'str | tuple[str, str, str]') -> Triplet:
  """`triplet1`..`triplet5`, a custom `'r3,s0,b2'` string, or a (red, green, blue) tuple."""
  if isinstance(spec, Triplet):
    return spec
  if isinstance(spec, str) and spec in TRIPLET_NAMES:
    return _official(spec)
  ids = tuple(spec.split(',')) if isinstance(spec, str) else tuple(spec)
  if len(ids) != 3:
    raise ValueError(
        f'Unknown triplet {spec!r}; valid choices: {", ".join(TRIPLET_NAMES)}, or a '
        'custom "red,green,blue" triple of RGB-object ids such as "r3,s0,b2".')
  valid = valid_object_ids()
  bad = [i for i in ids if i not in valid]
  if bad:
    raise ValueError(f'Unknown RGB-object id(s) {bad} in triplet {spec!r}; '
                     f'valid ids: {", ".join(valid)}.')
  return Triplet(','.join(ids), *ids)
