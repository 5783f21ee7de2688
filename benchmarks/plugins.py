"""Plugin discovery: the modules of methods/ and datasets/, plus user modules by name or path."""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from typing import Iterable


def import_package_modules(package: str, path: Iterable[str]) -> list[str]:
    """Import every public module of a package so that its registrations run."""
    names = []
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if info.name.startswith('_'):
            continue
        importlib.import_module(f'{package}.{info.name}')
        names.append(info.name)
    return names


def import_user_plugin(spec: str) -> None:
    """Import a plugin given as a dotted module name or as a path to a .py file."""
    path = Path(spec)
    if spec.endswith('.py'):
        if not path.is_file():
            raise FileNotFoundError(f'plugin file {spec} does not exist')
        name = f'matssl_bench_user_plugin_{path.stem}'
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    else:
        importlib.import_module(spec)


def load_builtin_plugins() -> None:
    from . import compat
    compat.apply()
    importlib.import_module('matssl_bench.datasets')
    importlib.import_module('matssl_bench.methods')
