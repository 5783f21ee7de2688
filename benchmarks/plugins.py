"""Plugin discovery: the modules of methods/ and datasets/, plus user modules by name or path."""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from typing import Iterable


def import_package_modules(package: str, path: Iterable[str]) -> list[str]:
    """Import every public module of a package so that its registrations run.

    A file that disappears between the listing and its import (an editor's or another
    run's temporary plugin) is skipped; a module that fails to import is a
    :class:`ConfigError` of one line naming its file.
    """
    from matssl_bench.errors import ConfigError

    names = []
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if info.name.startswith('_'):
            continue
        source = _module_file(info)
        try:
            importlib.import_module(f'{package}.{info.name}')
        except (ModuleNotFoundError, FileNotFoundError) as err:
            gone = not source.exists()
            if gone and getattr(err, 'name', None) in (None, f'{package}.{info.name}'):
                continue  # listed, then removed before its import: not a plugin any more
            raise ConfigError(_import_failure(source, err)) from err
        except Exception as err:  # noqa: BLE001 - any failure of a plugin file is one line
            raise ConfigError(_import_failure(source, err)) from err
        names.append(info.name)
    return names


def _module_file(info: pkgutil.ModuleInfo) -> Path:
    folder = Path(getattr(info.module_finder, 'path', '.'))
    return folder / info.name / '__init__.py' if info.ispkg else folder / f'{info.name}.py'


def _import_failure(source: Path, err: BaseException) -> str:
    return (f'{source}: cannot import this plugin ({type(err).__name__}: '
            f'{" ".join(str(err).split())}); fix or remove the file')


def _loaded_from(name: str, path: Path) -> bool:
    module = sys.modules.get(name)
    origin = getattr(getattr(module, '__spec__', None), 'origin', None)
    return origin is not None and Path(origin).resolve() == path.resolve()


def import_user_plugin(spec: str, origin: str = '--plugin') -> None:
    """Import a plugin given as a dotted module name or as a path to a .py file.

    A module that cannot be imported, or registers a name that already exists, is a
    :class:`ConfigError` naming the plugin and ``origin`` (``--plugin`` or the suite's
    ``plugins`` entry). A file already imported (named by the suite and by ``--plugin``)
    is not imported twice.
    """
    from matssl_bench.errors import ConfigError

    path = Path(spec)
    try:
        if spec.endswith('.py'):
            if not path.is_file():
                raise ConfigError(f'{origin} {spec}: no such file')
            name = f'matssl_bench_user_plugin_{path.stem}'
            if _loaded_from(name, path):
                return
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except KeyError as err:  # mmengine: '<name> is already registered in <registry> at <module>'
        raise ConfigError(f'{origin} {spec}: {err.args[0] if err.args else err}; rename the '
                          'class, or register it with register_module(force=True) to replace '
                          'the existing one') from err
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of the user's module is reported as one line
        hint = ('give a dotted module name importable from PYTHONPATH or the path of a .py file'
                if isinstance(err, ImportError) else 'fix the module')
        raise ConfigError(f'{origin} {spec}: cannot import it ({type(err).__name__}: '
                          f'{" ".join(str(err).split())}); {hint}') from err


def load_builtin_plugins() -> None:
    from matssl_bench.models import compat
    compat.apply()
    importlib.import_module('matssl_bench.datasets')
    importlib.import_module('matssl_bench.methods')
