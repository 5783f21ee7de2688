"""The label values of every mask of a data set, read once, checked before any training.

A mask holding a value its data set does not declare (a 7 in a 5-class set, a grey
value a ``Folder``'s ``label_map`` does not map) would otherwise surface only when the
file is first read, possibly after hours of pretraining. The plan reads each mask's
values once: a prepared copy lists them in its manifest (``label_values``), other
masks are read and their values cached in a JSON file keyed by path, size and
modification time, so an edited mask is read again.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from matssl_bench.data.file_sets import FileMicrographSet
from matssl_bench.errors import DataError
from matssl_bench.fileio.atomic import write_json_atomic

FIX = 'add it to classes or map it with label_map'


class LabelValueCache:
    """Label values of mask files by file state; ``path=None`` keeps them in memory only."""

    def __init__(self, path: Optional[Path] = None):
        self.path = Path(path) if path is not None else None
        self.entries: dict[str, dict] = {}
        self.changed = False
        if self.path is not None and self.path.is_file():
            try:
                self.entries = dict(json.loads(self.path.read_text()))
            except (OSError, ValueError, TypeError):
                self.entries = {}  # a damaged cache is rebuilt, never trusted

    def values(self, data: FileMicrographSet, record) -> dict:
        """``{'values': [...]}`` or ``{'error': message}`` for one labelled record."""
        listed = getattr(data, 'listed_label_values', {}).get(Path(record.mask))
        if listed is not None:
            return dict(values=list(listed))
        try:
            stat = Path(record.mask).stat()
        except OSError:
            return dict(error=f'{record.mask}: mask file not found')
        key = json.dumps([type(data).__name__, str(record.mask), stat.st_size, stat.st_mtime_ns,
                          [list(c) for c in data.palette]])
        if key not in self.entries:
            try:
                self.entries[key] = dict(values=data.mask_label_values(record))
            except DataError as err:
                self.entries[key] = dict(error=str(err))
            self.changed = True
        return self.entries[key]

    def save(self) -> None:
        """Write the cache when it grew; a folder that cannot be written only loses the
        cache (the values are read again next time), never the plan."""
        if self.path is not None and self.changed:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_json_atomic(self.path, self.entries)
            except OSError:
                return
            self.changed = False


def label_problems(data, cache: LabelValueCache) -> list[str]:
    """One line per mask of ``data`` whose values are undeclared or that cannot be read."""
    if not isinstance(data, FileMicrographSet) or not data.masks_are_files:
        return []
    known = data.declared_label_values()
    problems = []
    for split in data.splits:
        for record in data.files.get(split, []):
            found = cache.values(data, record)
            if 'error' in found:
                problems.append(found['error'])
                continue
            unknown = sorted(set(found['values']) - known)
            if unknown:
                problems.append(f'{record.mask}: label value(s) {unknown} not declared by '
                                f'{data.name} (declared: {_ranges(sorted(known))}); {FIX}')
    return problems


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 4]`` -> ``0..2, 4``."""
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(start) if start == v else f'{start}..{v}')
            start = None
    return ', '.join(parts) or 'none'
