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

import numpy as np
import orjson

MAX_JSON_BYTES = 256 * 2**20   # a record with per-image areas of thousands of images: a few MB
MAX_JSON_DEPTH = 64            # records nest 6 levels; manifests 4


class JsonProblem(ValueError):
    """Why a JSON file cannot be used, in a few words (the caller names the file)."""


def nesting_depth(raw: bytes, limit: int) -> int:
    """Nesting depth of a JSON text (its deepest open ``[``/``{`` outside strings), from the
    raw bytes with numpy, before parsing: 5,000 records are read per plan."""
    text = np.frombuffer(raw, np.uint8)
    quotes = text == ord('"')
    if b'\\"' in raw:  # a quote after an odd run of backslashes is text, not a delimiter
        for at in np.flatnonzero(quotes[1:] & (text[:-1] == ord('\\'))) + 1:
            run = 1
            while run < at and text[at - 1 - run] == ord('\\'):
                run += 1
            quotes[at] = run % 2 == 0
    outside = (np.cumsum(quotes) & 1) == 0
    steps = (((text == ord('[')) | (text == ord('{'))) & outside).astype(np.int32)
    steps -= ((text == ord(']')) | (text == ord('}'))) & outside
    return min(int(np.cumsum(steps).max(initial=0)), limit + 1)


_COMPILED: dict[str, Callable[[Any], Any]] = {}
_SCHEMA_TEXT: dict[int, tuple[dict, str]] = {}  # id -> (the schema, kept alive; its text)


def _passes_compiled(data: Any, schema: dict) -> bool:
    """True when the compiled validator of ``schema`` accepts ``data``."""
    import fastjsonschema

    known = _SCHEMA_TEXT.get(id(schema))
    if known is None or known[0] is not schema:
        known = _SCHEMA_TEXT[id(schema)] = (schema, json.dumps(schema, sort_keys=True))
    key = known[1]
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


def parse_json(raw: bytes) -> Any:
    """``raw`` parsed by orjson (1.4x faster than the standard library on the suite's
    records; planning reads thousands), or by ``json`` where orjson refuses what ``json`` writes
    (``NaN``, ``Infinity``). Unlike ``json``, orjson returns an integer beyond 64 bits as a
    float; the suite writes none (areas are pixel counts)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def read_json(path: Path, schema: Optional[dict] = None, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON document at ``path``; ``JsonProblem`` when it is too large, too deeply nested,
    not JSON or (with ``schema``) of the wrong shape. ``OSError``s (a missing file) pass."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise JsonProblem(f'{size:,} bytes, more than the {max_bytes:,} allowed')
    raw = path.read_bytes()
    if nesting_depth(raw, max_depth) > max_depth:
        raise JsonProblem(f'nested deeper than {max_depth} levels')
    try:
        data = parse_json(raw)
    except RecursionError:
        raise JsonProblem(f'nested deeper than {max_depth} levels') from None
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise JsonProblem(f'not valid JSON ({" ".join(str(err).split())[:120]})') from None
    if schema is not None:
        problem = schema_problem(data, schema)
        if problem:
            raise JsonProblem(f'wrong shape at {problem}')
    return data
