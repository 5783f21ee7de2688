"""matssl_bench: a benchmark suite comparing encoder pretraining for micrograph segmentation."""
from . import compat

compat.apply()

__version__ = '0.1.0'
