"""Base of data sets read from files: an index of (image, mask) files per split, loaded lazily.

A reader subclasses :class:`FileMicrographSet` and implements :meth:`index_source`
for its public layout. The base then gives it, with no more code:

- the prepared layout: when ``prepared_dir()/manifest.json`` exists (written by
  ``tools/prepare_data.py``), the index comes from that manifest instead;
- loading with the documented policies of :mod:`matssl_bench.data.image_io`
  (size reconciliation, label check naming the file);
- a pretraining pool of every image (labeled ones included), where images named
  in ``exclude`` and every near-duplicate of them are left out, and near-duplicates
  are kept once. Near-duplicate: correlation >= 0.95 of 32x32 grey thumbnails
  (MetalDAM ships 29 of its labeled micrographs again, re-encoded and renamed,
  among its unlabeled images: those must leave the pool with their test copy).

Image names are global across sources (``<source>/<stem>``) so exclusion lists
from several fine-tuning sets never hit another source's image by accident.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from matssl_bench.data_api import LabeledImage, MicrographSet, UnlabeledImage
from matssl_bench.errors import DataError, MissingResourceError
from matssl_bench.fileio.bounded_json import JsonProblem, read_json
from matssl_bench.data.image_io import (check_labels, fingerprint, read_image, read_mask, reconcile_sizes,
                       natural_key)

PREPARED_FORMAT = 'matssl-prepared/1'
# Types of what the readers use from a prepared copy's manifest.json (JSON Schema; the file
# is read bounded in size and depth, fileio/bounded_json.py).
_NAME = {'type': 'string'}
MANIFEST_SCHEMA = {
    'type': 'object',
    'required': ['format', 'dataset'],
    'properties': {
        'format': _NAME, 'dataset': _NAME, 'options': {'type': 'object'},
        'splits': {'type': 'object', 'additionalProperties': {'type': 'array', 'items': {
            'type': 'object', 'required': ['name', 'image', 'mask'],
            'properties': {'name': _NAME, 'image': _NAME, 'mask': _NAME}}}},
        'unlabeled': {'type': 'array', 'items': {
            'type': 'object', 'required': ['name', 'image'],
            'properties': {'name': _NAME, 'image': _NAME}}},
        'files': {'type': 'object', 'additionalProperties': _NAME},
        'sizes': {'type': 'object', 'additionalProperties': {'type': 'integer', 'minimum': 0}},
    },
}


def read_manifest(path: Path) -> dict:
    """A prepared copy's manifest.json, bounded and typed; a ``DataError`` naming it otherwise."""
    try:
        return read_json(path, MANIFEST_SCHEMA)
    except JsonProblem as err:
        raise DataError(f'{path}: unusable manifest: {err}') from None
    except OSError as err:
        raise DataError(f'{path}: unreadable manifest ({err.strerror or type(err).__name__})') from None
DUPLICATE_THRESHOLD = 0.95


@dataclass(frozen=True)
class LabeledFile:
    name: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class UnlabeledFile:
    name: str
    image: Path


def seeded_split(names: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(rest, picked): ``ceil(n * fraction)`` names picked by a seeded permutation of the
    naturally sorted names; both parts in natural order. 42 names at 0.2 -> 33 / 9."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f'split fraction must be in [0, 1), got {fraction}')
    ordered = sorted(names, key=natural_key)
    k = math.ceil(len(ordered) * fraction - 1e-9) if fraction > 0 else 0
    order = np.random.default_rng(seed).permutation(len(ordered))
    picked = {ordered[i] for i in order[:k]}
    return [n for n in ordered if n not in picked], [n for n in ordered if n in picked]


def safe_filename(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9._-]', '_', name.replace('/', '__'))


def inside(folder: Path, relative: str, manifest: Path) -> Path:
    """``folder / relative``, refused when ``relative`` is absolute or leaves ``folder``."""
    if not isinstance(relative, str) or not relative:
        raise DataError(f'{manifest}: file entry {relative!r} is not a relative path')
    candidate = Path(relative)
    resolved_folder = Path(folder).resolve()
    if candidate.is_absolute() or '..' in candidate.parts or not (
            (resolved_folder / candidate).resolve().is_relative_to(resolved_folder)):
        raise DataError(f'{manifest}: file entry {relative!r} leaves the prepared folder; '
                        'refused')
    return Path(folder) / candidate


def require_dir(path: Path, what: str) -> Path:
    if not Path(path).is_dir():
        raise MissingResourceError(f'{path}: missing folder ({what})')
    return Path(path)


def group_duplicates(fingerprints: np.ndarray, threshold: float = DUPLICATE_THRESHOLD) -> list[int]:
    """Cluster id (index of the first member) of each fingerprint, by correlation >= threshold."""
    n = len(fingerprints)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n:
        sim = fingerprints @ fingerprints.T
        for i, j in zip(*np.nonzero(np.triu(sim, 1) >= threshold)):
            a, b = find(int(i)), find(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [find(i) for i in range(n)]


class FileMicrographSet(MicrographSet):
    """Splits of labeled files plus unlabeled files, from a public layout or a prepared copy."""

    size_tolerance: int = 2
    # Source name used as the prefix of image names and in messages.
    source: str = ''
    # Variants written by prepare_data (e.g. one per EBC subset): (subfolder, options).
    prepare_variants: tuple = (('', {}),)
    download_url: Optional[str] = None
    download_note: str = ''

    def __init__(self, root):
        self.root = Path(root)
        self.pool_report: dict = {}
        self._cache: dict[str, list[LabeledImage]] = {}
        self.files, self.unlabeled_files = self._index()

    # -- hooks for readers -----------------------------------------------------
    def options(self) -> dict:
        """Options that decide the splits; a prepared copy must have been made with the same."""
        return {}

    def index_source(self) -> tuple[dict[str, list[LabeledFile]], list[UnlabeledFile]]:
        raise NotImplementedError

    def prepared_dir(self) -> Path:
        return self.root

    @property
    def source_num_classes(self) -> int:
        """Class ids allowed in the files (before :meth:`convert_mask`)."""
        return self.num_classes

    def convert_mask(self, mask: np.ndarray) -> np.ndarray:
        return mask

    def crop_image(self, image: np.ndarray, path: Path) -> np.ndarray:
        """Source-layout repair of an image (info bars); never applied to a prepared copy."""
        return image

    def crop_mask(self, mask: np.ndarray, path: Path) -> np.ndarray:
        return mask

    def read_mask_file(self, record: LabeledFile) -> np.ndarray:
        return read_mask(record.mask, self.palette)

    # Whether masks are files whose values can be wrong (a reader drawing its masks from
    # polygons sets False): only those are checked by ``label_check`` before training.
    masks_are_files: bool = True

    def mask_label_values(self, record: LabeledFile) -> list[int]:
        """The distinct values of a mask file as stored (before any label mapping)."""
        return np.unique(self.read_mask_file(record)).tolist()

    def declared_label_values(self) -> set[int]:
        """The values :meth:`mask_label_values` may hold."""
        return set(range(self.source_num_classes))

    # -- index -----------------------------------------------------------------
    def is_prepared(self) -> bool:
        return (self.prepared_dir() / 'manifest.json').is_file()

    def _index(self):
        self.prepared = self.is_prepared()
        if self.prepared:
            return self._index_prepared()
        require_dir(self.root, f'{self.name} data; see docs/datasets.md')
        files, unlabeled = self.index_source()
        for split in self.splits:
            files.setdefault(split, [])
        return files, unlabeled

    def _index_prepared(self):
        folder = self.prepared_dir()
        path = folder / 'manifest.json'
        manifest = read_manifest(path)
        if manifest.get('format') != PREPARED_FORMAT or manifest.get('dataset') != self.name:
            raise DataError(f'{path}: not a prepared {self.name} copy '
                            f'(format {manifest.get("format")}, data set {manifest.get("dataset")})')
        if manifest.get('options', {}) != json.loads(json.dumps(self.options())):
            raise DataError(f'{path}: prepared with options {manifest.get("options")}, but this '
                            f'configuration asks for {self.options()}; prepare it again')
        try:
            files = {split: [LabeledFile(e['name'], inside(folder, e['image'], path),
                                         inside(folder, e['mask'], path))
                             for e in manifest['splits'].get(split, [])] for split in self.splits}
            unlabeled = [UnlabeledFile(e['name'], inside(folder, e['image'], path))
                         for e in manifest['unlabeled']]
            self._expected_sizes = {inside(folder, rel, path): int(size)
                                    for rel, size in manifest.get('sizes', {}).items()}
            self.listed_label_values = {
                inside(folder, e['mask'], path): [int(v) for v in e['label_values']]
                for split in self.splits for e in manifest['splits'].get(split, [])
                if 'label_values' in e}
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise DataError(f'{path}: malformed manifest ({type(err).__name__}: {err})') from None
        return files, unlabeled

    def _check_size(self, path: Path) -> None:
        """A prepared file must still have the size its manifest recorded."""
        expected = getattr(self, '_expected_sizes', {}).get(Path(path))
        if expected is None:
            return
        try:
            actual = Path(path).stat().st_size
        except FileNotFoundError:
            raise DataError(f'{path}: missing from the prepared copy') from None
        if actual != expected:
            raise DataError(f'{path}: {actual} bytes, but the manifest records {expected}; '
                            'the prepared copy was changed: prepare it again')

    # -- loading ---------------------------------------------------------------
    def load_image(self, path: Path) -> np.ndarray:
        self._check_size(path)
        image = read_image(path)
        return image if self.prepared else self.crop_image(image, path)

    def load_labeled(self, record: LabeledFile) -> LabeledImage:
        image = self.load_image(record.image)
        self._check_size(record.mask)
        mask = self.read_mask_file(record)
        if not self.prepared:
            mask = self.crop_mask(mask, record.mask)
        image, mask = reconcile_sizes(image, mask, record.image, record.mask, self.size_tolerance)
        check_labels(mask, self.source_num_classes, record.mask)
        return LabeledImage(record.name, np.ascontiguousarray(image),
                            np.ascontiguousarray(self.convert_mask(mask)))

    def labeled_split(self, split: str) -> list[LabeledImage]:
        self.check_split(split)
        if split not in self._cache:
            self._cache[split] = [self.load_labeled(r) for r in self.files[split]]
        return self._cache[split]

    def test_image_names(self) -> list[str]:
        return [r.name for r in self.files['test']]

    def unlabeled_pool(self, exclude: Sequence[str] = ()) -> list[UnlabeledImage]:
        """All images once each, leaving out ``exclude`` and their near-duplicates."""
        candidates = [(r.name, r.image) for s in self.splits for r in self.files[s]]
        candidates += [(r.name, r.image) for r in self.unlabeled_files]
        images = [self.load_image(path) for _, path in candidates]
        groups = group_duplicates(np.stack([fingerprint(im) for im in images])
                                  if images else np.zeros((0, 1024), np.float32))
        excluded = set(exclude)
        dropped_groups = {g for (name, _), g in zip(candidates, groups) if name in excluded}
        pool, seen = [], set()
        for (name, _), image, group in zip(candidates, images, groups):
            if group in dropped_groups or group in seen:
                continue
            seen.add(group)
            pool.append(UnlabeledImage(name, image, overlap=self.pretrain_overlap))
        self.pool_report = dict(
            candidates=len(candidates), kept=len(pool),
            excluded=sum(1 for g in groups if g in dropped_groups),
            duplicates=len(candidates) - len(pool) - sum(1 for g in groups if g in dropped_groups))
        return pool
