"""A digest of the code that defines a method, part of its job keys.

Editing a method's plugin file (its loss, model, augmentation) must rerun its
jobs rather than reuse records of the old code. The digest covers the source
files of the method class's module, of every class in its MRO, and of the
project or plugin modules its module imports names from (e.g. ``losses.py``
for ``nt_xent``, ``encoders.py``). Installed libraries (site-packages) and the
standard library are left out: their versions are in every record instead.

Each file is hashed as its normalised syntax tree (``ast.dump`` without comments,
docstrings, blank lines or formatting), so editing a comment or a docstring keeps the
cached jobs and only a change of the code itself reruns them. A file that does not parse
is hashed by its bytes (importing it would have failed anyway).
"""
from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import sys
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import Optional

_LIBRARY_DIRS = tuple(str(Path(p).resolve()) for p in
                      {sysconfig.get_paths()['stdlib'], sysconfig.get_paths()['purelib'],
                       sysconfig.get_paths()['platlib']})


def _own_source_file(module: Optional[ModuleType]) -> Optional[Path]:
    """The module's .py file, or None for installed libraries, builtins and the stdlib."""
    if module is None:
        return None
    try:
        path = inspect.getsourcefile(module)
    except TypeError:
        return None
    if path is None:
        return None
    resolved = str(Path(path).resolve())
    if any(resolved.startswith(d) for d in _LIBRARY_DIRS) or 'site-packages' in resolved:
        return None
    return Path(resolved)


def method_source_files(cls: type) -> list[Path]:
    """Source files that define ``cls``: see the module docstring."""
    modules = [sys.modules.get(c.__module__) for c in cls.__mro__ if c is not object]
    home = sys.modules.get(cls.__module__)
    if home is not None:
        for value in vars(home).values():
            owner = value if isinstance(value, ModuleType) else sys.modules.get(
                getattr(value, '__module__', None) or '')
            modules.append(owner)
    files = {f for f in map(_own_source_file, modules) if f is not None}
    return sorted(files)


def _without_docstrings(tree: ast.AST) -> ast.AST:
    """``tree`` with the docstring of the module and of every class and function removed."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalised_source(source: bytes) -> bytes:
    """What of a Python source changes its behaviour: the syntax tree without comments,
    docstrings and layout; the bytes themselves where the source does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source
    return ast.dump(_without_docstrings(tree), annotate_fields=False,
                    include_attributes=False).encode()


def method_code_digest(cls: type) -> str:
    """sha256 (16 hex digits) over the normalised sources (:func:`normalised_source`) of
    :func:`method_source_files`, read from disk."""
    digest = hashlib.sha256()
    for path in method_source_files(cls):
        stat = path.stat()
        digest.update(path.name.encode())
        digest.update(_normalised_file(path, stat.st_mtime_ns, stat.st_size))
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1024)
def _normalised_file(path: Path, mtime_ns: int, size: int) -> bytes:
    """:func:`normalised_source` of a file, parsed again only when its mtime or size changes."""
    return normalised_source(path.read_bytes())


_CORE = Path(__file__).resolve().parent.parent
# Core modules whose code computes a record's numbers; the rest only plans (its output is
# the key itself), reports, measures or parses options.
PIPELINE_PARTS = ('data', 'models', 'evaluation', 'engine/runner.py', 'engine/stages.py',
                  'engine/hooks.py', 'engine/transfer.py', 'suite/precision.py',
                  'suite/variants.py', 'method_api.py', 'data_api.py')


@functools.lru_cache(maxsize=1)
def _core_files() -> tuple:
    files = []
    for part in PIPELINE_PARTS:
        path = _CORE / part
        files += sorted(path.rglob('*.py')) if path.is_dir() else [path]
    return tuple(files)


def pipeline_code_digest(reader_types) -> str:
    """sha256 (16 hex digits) over the pipeline's modules (:data:`PIPELINE_PARTS`) and the
    source files of the data-set readers named by ``reader_types`` (registered type names):
    editing the training loop, the metrics or a reader reruns the jobs they computed."""
    from matssl_bench.registry import MICROGRAPH_SETS

    files = set(_core_files())
    for name in sorted(set(reader_types)):
        cls = MICROGRAPH_SETS.get(name)
        if cls is not None:
            files.update(method_source_files(cls))
    digest = hashlib.sha256()
    for path in sorted(files):
        stat = path.stat()
        digest.update(str(path.relative_to(_CORE) if path.is_relative_to(_CORE) else path.name)
                      .encode())
        digest.update(_file_sha256(path, stat.st_mtime_ns, stat.st_size).encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=4096)
def _file_sha256(path: Path, mtime_ns: int, size: int) -> str:
    """sha256 of a file's normalised source (comments and docstrings left out), read again
    only when its mtime or size changes (a plan of hundreds of jobs hashes each file once)."""
    return hashlib.sha256(_normalised_file(path, mtime_ns, size)).hexdigest()
