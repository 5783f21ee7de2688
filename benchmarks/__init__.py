"""matssl_bench: a benchmark suite comparing encoder pretraining for micrograph segmentation.

The plugin contract sits at this level (``method_api``, ``data_api``, ``registry``,
``errors``, ``plugins``); the core lives in subpackages by concern, layered one way:
commands > report > engine > suite > evaluation / method_api > data > models >
fileio / registry / errors.
"""
import importlib
import sys

from matssl_bench.models import compat

compat.apply()

__version__ = '0.1.0'

# Plugin-facing modules under their names before the regroup, so that plugins written
# against earlier READMEs (``from matssl_bench.losses import nt_xent``) keep working.
_MOVED_PLUGIN_MODULES = {
    'losses': 'matssl_bench.models.losses',
    'encoders': 'matssl_bench.models.encoders',
    'mmselfsup_bridge': 'matssl_bench.models.mmselfsup_bridge',
    'file_sets': 'matssl_bench.data.file_sets',
    'image_io': 'matssl_bench.data.image_io',
}
for _old, _new in _MOVED_PLUGIN_MODULES.items():
    sys.modules.setdefault(f'{__name__}.{_old}', importlib.import_module(_new))
