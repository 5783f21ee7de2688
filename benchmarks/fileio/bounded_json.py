"""JSON files read within limits and checked by type: a bad file is one ``JsonProblem``.

Records, manifests and suite metadata are data the suite did not necessarily write
(copied work dirs, edited files). Each read here is bounded in size and nesting
and, given a schema, validated with ``jsonschema`` (a maintained validator) so
code that reads a field gets the type it expects, never a ``TypeError`` deep in
a table or a ``RecursionError``. ``fastjsonschema`` (compiled validators, ~30x faster:
5,000 records are read per report) answers "valid?"; only data it rejects goes to
``jsonschema``, which has the last word and names the field.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

MAX_JSON_BYTES = 256 * 2**20   # a record with per-image areas of thousands of images: a few MB
MAX_JSON_DEPTH = 64            # records nest 6 levels; manifests 4


class JsonProblem(ValueError):
    """Why a JSON file cannot be used, in a few words (the caller names the file)."""


def nesting_depth(data: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, without recursion; stops at ``limit`` + 1."""
    if not isinstance(data, (dict, list)):
        return 0
    deepest, stack = 0, [(data, 1)]
    while stack:  # only containers are stacked: records hold long lists of numbers
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict)
                                              else value) if isinstance(v, (dict, list)))
    return deepest


_COMPILED: dict[str, Callable[[Any], Any]] = {}


def _passes_compiled(data: Any, schema: dict) -> bool:
    """True when the compiled validator of ``schema`` accepts ``data``."""
    import fastjsonschema

    key = json.dumps(schema, sort_keys=True)
    if key not in _COMPILED:
        _COMPILED[key] = fastjsonschema.compile(schema)
    try:
        _COMPILED[key](data)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def schema_problem(data: Any, schema: dict) -> Optional[str]:
    """The first way ``data`` breaks ``schema`` (field path and reason), or None."""
    import jsonschema

    if _passes_compiled(data, schema):
        return None
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if error is None:
        return None
    where = '.'.join(str(p) for p in error.absolute_path) or 'top level'
    message = ' '.join(error.message.split())
    return f'{where}: {message[:160]}{"..." if len(message) > 160 else ""}'


def read_json(path: Path, schema: Optional[dict] = None, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON document at ``path``; ``JsonProblem`` when it is too large, too deeply nested,
    not JSON or (with ``schema``) of the wrong shape. ``OSError``s (a missing file) pass."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise JsonProblem(f'{size:,} bytes, more than the {max_bytes:,} allowed')
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except RecursionError:
        raise JsonProblem(f'nested deeper than {max_depth} levels') from None
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise JsonProblem(f'not valid JSON ({" ".join(str(err).split())[:120]})') from None
    if nesting_depth(data, max_depth) > max_depth:
        raise JsonProblem(f'nested deeper than {max_depth} levels')
    if schema is not None:
        problem = schema_problem(data, schema)
        if problem:
            raise JsonProblem(f'wrong shape at {problem}')
    return data
