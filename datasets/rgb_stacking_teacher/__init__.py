"""rgb_stacking_teacher dataset (TFDS folder layout; not an importable package)."""
