"""Pretraining-method plugins. Every module in this folder is imported and registers itself."""
from matssl_bench.plugins import import_package_modules

import_package_modules(__name__, __path__)
