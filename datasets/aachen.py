"""Aachen-Heerlen annotated steel microstructures (Figshare, CC0): MA islands as polygons.

Layout read (our reading of the Figshare release; the real files are not on these
machines, so this is the documented contract the tests exercise):

- ``images/<stem>.<png|tif|jpg>``: the SEM images (1,705 in the release);
- polygons, in one of
  - ``annotations.csv``: one row per vertex, columns ``image`` (file name or
    stem), ``polygon`` (id within the image), ``x``, ``y`` (pixels); or one row
    per polygon with a ``points`` column holding ``[[x, y], ...]`` as JSON;
  - ``annotations.pkl`` (this name only): ``{image stem: [array of shape (N, 2) in
    (x, y)], ...}``, read by a restricted unpickler that builds only plain
    containers, numbers, strings and numpy arrays (a pickle naming any other
    callable is refused, so the file cannot run code);
- optional ``test.txt`` (stems) fixing the test split; otherwise a
  seeded split with 302 of 1,705 images in test (the paper's 1,403/302).

Polygons are filled (PIL, vertices included) into binary masks: 0 background,
1 martensite-austenite. An image with no polygon is all background; a polygon
naming an unknown image or with fewer than 3 vertices is a ``DataError``.
"""
from __future__ import annotations

import csv
import json
import pickle
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from matssl_bench.errors import DataError, MissingResourceError
from matssl_bench.data.file_sets import FileMicrographSet, LabeledFile, require_dir, seeded_split
from matssl_bench.data.image_io import image_size, list_images
from matssl_bench.registry import MICROGRAPH_SETS

Polygons = dict[str, list[np.ndarray]]


def _column(header: list[str], choices: tuple[str, ...], path: Path, required: bool = True):
    lowered = [h.strip().lower() for h in header]
    for choice in choices:
        if choice in lowered:
            return lowered.index(choice)
    if required:
        raise DataError(f'{path}: no column named {" or ".join(choices)} (header: {header})')
    return None


def read_polygon_csv(path: Path) -> Polygons:
    """Polygons per image stem from the vertex-per-row or the points-per-row CSV."""
    _check_file_size(path)
    try:
        with open(path, newline='') as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f'{path}: unreadable CSV ({err})') from None
    if not rows:
        raise DataError(f'{path}: empty CSV')
    header, body = rows[0], rows[1:]
    col_image = _column(header, ('image', 'filename', 'file', 'image_name'), path)
    col_points = _column(header, ('points', 'coordinates'), path, required=False)
    polygons: Polygons = defaultdict(list)
    try:
        if col_points is not None:
            for row in body:
                pts = np.asarray(json.loads(row[col_points]), np.float64).reshape(-1, 2)
                polygons[Path(row[col_image]).stem].append(pts)
        else:
            col_poly = _column(header, ('polygon', 'polygon_id', 'object', 'id', 'instance'), path)
            col_x, col_y = _column(header, ('x',), path), _column(header, ('y',), path)
            vertices = defaultdict(list)
            for row in body:
                vertices[(Path(row[col_image]).stem, row[col_poly])].append(
                    (float(row[col_x]), float(row[col_y])))
            for (stem, _), pts in vertices.items():
                polygons[stem].append(np.asarray(pts, np.float64))
    except (ValueError, IndexError, RecursionError) as err:  # RecursionError: nested JSON
        raise DataError(f'{path}: malformed polygon row ({str(err)[:200]})') from None
    return dict(polygons)


PICKLE_NAME = 'annotations.pkl'
# The only callables a polygon pickle may name: what numpy needs to rebuild arrays.
_PICKLE_GLOBALS = {
    (module, name)
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray')
    for name in ('_reconstruct', 'scalar')
} | {(module, '_frombuffer') for module in ('numpy.core.numeric', 'numpy._core.numeric')
     } | {('numpy', 'ndarray'), ('numpy', 'dtype'), ('builtins', 'list'), ('builtins', 'dict'),
     ('builtins', 'tuple'), ('builtins', 'set'), ('builtins', 'frozenset'),
     ('collections', 'OrderedDict'), ('_codecs', 'encode')}


class _PolygonUnpickler(pickle.Unpickler):
    """pickle's documented way to restrict globals ("Restricting Globals"); no maintained
    library does this for numpy arrays."""

    def find_class(self, module, name):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f'refused {module}.{name} (only containers, numbers, '
                                         'strings and numpy arrays are read)')
        return super().find_class(module, name)


# Bounds of a polygon file, checked before anything is built from it. A pickle may reuse one
# list by reference at every level: 220 bytes then stand for 2**25 numbers, which
# ``np.asarray`` would expand (9.5 GB). The limits are far above the real release's.
MAX_ANNOTATION_BYTES = 256 * 2**20      # file size
MAX_POLYGON_VALUES = 50_000_000         # containers, numbers and array elements, expanded
MAX_POLYGON_NESTING = 8                 # {stem: [polygon: [[x, y], ...]]} needs 4


class _TooLarge(Exception):
    pass


def _expanded_size(obj, depth: int, sizes: dict) -> int:
    """How many values ``obj`` holds once every shared reference is expanded, counted
    per distinct object (``sizes``, by id), so a shared-reference bomb costs its own size."""
    if depth > MAX_POLYGON_NESTING:
        raise _TooLarge(f'nested deeper than {MAX_POLYGON_NESTING} levels '
                        '(limit MAX_POLYGON_NESTING)')
    known = sizes.get(id(obj))
    if known is not None:
        return known
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise _TooLarge('holds an array of Python objects (polygons are numbers)')
        size = 1 + obj.size
    elif isinstance(obj, dict):
        size = 1 + sum(_expanded_size(k, depth + 1, sizes) + _expanded_size(v, depth + 1, sizes)
                       for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        size = 1 + sum(_expanded_size(item, depth + 1, sizes) for item in obj)
    else:
        size = 1
    if size > MAX_POLYGON_VALUES:
        raise _TooLarge(f'expands to more than {MAX_POLYGON_VALUES:,} values '
                        '(limit MAX_POLYGON_VALUES)')
    sizes[id(obj)] = size
    return size


def _check_file_size(path: Path) -> None:
    size = Path(path).stat().st_size
    if size > MAX_ANNOTATION_BYTES:
        raise DataError(f'{path}: {size:,} bytes, more than the {MAX_ANNOTATION_BYTES:,} a '
                        'polygon file may have (limit MAX_ANNOTATION_BYTES); refused')


def read_polygon_pickle(path: Path) -> Polygons:
    """Polygons per image stem from ``annotations.pkl``, bounded: the file size, nesting and
    expanded value count are checked (one-line ``DataError`` naming the file and the limit)
    before any array is built."""
    if Path(path).name != PICKLE_NAME:
        raise DataError(f'{path}: only {PICKLE_NAME} is read as a polygon pickle')
    _check_file_size(path)
    try:
        with open(path, 'rb') as f:
            data = _PolygonUnpickler(f).load()
        if not isinstance(data, dict):
            raise DataError(f'{path}: expected {{image stem: [polygons]}}, got '
                            f'{type(data).__name__}')
        _expanded_size(data, 0, {})
        return {Path(str(k)).stem: [np.asarray(p, np.float64).reshape(-1, 2) for p in v]
                for k, v in data.items()}
    except DataError:
        raise
    except _TooLarge as err:
        raise DataError(f'{path}: polygon pickle refused: {err}') from None
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a data problem
        raise DataError(f'{path}: unreadable polygon pickle ({" ".join(str(err).split())[:200]})') from None


def rasterise(polygons: list[np.ndarray], width: int, height: int, source='') -> np.ndarray:
    """Binary mask (1 inside any polygon) of ``height x width``."""
    canvas = Image.new('L', (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for pts in polygons:
        if len(pts) < 3:
            raise DataError(f'{source}: polygon with {len(pts)} vertices (needs 3 or more)')
        draw.polygon([tuple(p) for p in pts.tolist()], fill=1, outline=1)
    return np.asarray(canvas, np.uint8)


@MICROGRAPH_SETS.register_module()
class AachenHeerlen(FileMicrographSet):
    """Aachen-Heerlen bainite SEM images with martensite-austenite island polygons."""

    source = 'Aachen'
    classes = ('background', 'martensite-austenite')
    palette = ((0, 0, 0), (255, 255, 255))
    published_selection_split = 'test'
    pretrain_overlap = 0.0
    download_url = 'https://figshare.com/ (search: Aachen-Heerlen annotated steel microstructure)'
    download_note = 'download the images and the polygon annotations and unpack them into'

    def __init__(self, root, seed: int = 0, test_fraction: float = 302 / 1705,
                 val_fraction: float = 0.15):
        self.seed, self.test_fraction, self.val_fraction = seed, test_fraction, val_fraction
        self.polygons: Polygons = {}
        super().__init__(root)

    def options(self) -> dict:
        return dict(seed=self.seed, test_fraction=self.test_fraction,
                    val_fraction=self.val_fraction)

    def _annotation_file(self) -> Path:
        for name in ('annotations.csv', PICKLE_NAME):
            if (self.root / name).is_file():
                return self.root / name
        found = sorted(self.root.glob('*.csv'))  # no other pickle is ever opened
        if not found:
            raise MissingResourceError(f'{self.root / "annotations.csv"}: missing polygon '
                                       f'annotations (CSV or {PICKLE_NAME})')
        return found[0]

    def index_source(self):
        image_dir = require_dir(self.root / 'images', 'Aachen-Heerlen images')
        images = {p.stem: p for p in list_images(image_dir)}
        ann = self._annotation_file()
        self.polygons = (read_polygon_pickle(ann) if ann.suffix == '.pkl'
                         else read_polygon_csv(ann))
        for stem in self.polygons.keys() - images.keys():
            raise DataError(f'{ann}: polygons for {stem}, which has no image in {image_dir}')
        records = {stem: LabeledFile(f'{self.source}/{stem}', path, ann)
                   for stem, path in images.items()}
        if (self.root / 'test.txt').is_file():
            test = [s.strip() for s in (self.root / 'test.txt').read_text().split() if s.strip()]
            missing = [s for s in test if s not in records]
            if missing:
                raise DataError(f'{self.root / "test.txt"}: {missing[0]} has no image')
            rest = [s for s in records if s not in set(test)]
        else:
            rest, test = seeded_split(list(records), self.test_fraction, self.seed)
        train, val = seeded_split(rest, self.val_fraction, self.seed + 1)
        return {split: [records[s] for s in stems] for split, stems in
                (('train', train), ('val', val), ('test', test))}, []

    @property
    def masks_are_files(self) -> bool:
        return self.prepared  # the public layout's masks are drawn from polygons (0/1)

    def read_mask_file(self, record: LabeledFile) -> np.ndarray:
        if self.prepared:
            return super().read_mask_file(record)
        width, height = image_size(record.image)
        stem = record.name.split('/', 1)[1]
        return rasterise(self.polygons.get(stem, []), width, height, f'{record.mask} ({stem})')
