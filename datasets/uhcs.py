"""UHCS (NIST ultrahigh carbon steel micrographs, DeCost et al.): pretraining pool + 24 labeled.

Layout (public sources, unpacked side by side under one root):

- ``micrographs/micrograph<N>.<tif|png|jpg>``: the UHCSDB micrographs (NIST
  handle 11256/940), the unlabeled pool (``images/`` is accepted too);
- optional, from the segmentation release (handle 11256/964, repository
  ``bdecost/uhcs-segment``): ``uhcs-tif/images/uhcs<NNNN>.tif`` with masks
  ``uhcs-tif/labels/uhcs<NNNN>.tif`` (0 matrix, 1 carbide network,
  2 spheroidite, 3 Widmanstaetten) and ``uhcs-validation-sets.json``: six folds
  of four names ``micrograph<N>`` (``uhcs<NNNN>`` is ``micrograph<N>``).

The widely used redistribution of the labelled set is accepted too:
``labeled_img/*.jpg`` + ``GT/*.png`` (values 0-3, masks covering every row of the
645x484 images, no info bar) + ``unlabeled_img/`` (joins the pool).

``fold`` picks the published validation set used as the test split; ``val`` is
``val_fraction`` of the other 20 (seeded). Without the json a seeded 1/6 split
is used. Info bar: by default (``crop_bottom=None``) each image's bottom rows are
cropped only when they form a uniform bar (:func:`info_bar_rows`), with a
``DataWarning`` naming the first such file; a mask as tall as the uncropped image
loses the same rows, a mask already without them is kept. ``crop_bottom=N`` always
crops N rows, 0 never crops. A prepared copy was cropped when it was written: when
the suite does not set ``crop_bottom`` it is read with the option it was made with.
Labeled images also appear among the micrographs: the pool's near-duplicate check
keeps each once and drops excluded ones entirely.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from matssl_bench.errors import DataError, MissingResourceError
from matssl_bench.fileio.bounded_json import read_json
from matssl_bench.data.file_sets import (FileMicrographSet, LabeledFile, UnlabeledFile,
                                    seeded_split)
from matssl_bench.data.image_io import DataWarning, list_images, natural_key
from matssl_bench.registry import MICROGRAPH_SETS


def info_bar_rows(image: np.ndarray, bottom_uniform: float = 0.95, row_uniform: float = 0.6,
                  tolerance: int = 8, min_rows: int = 4, max_fraction: float = 0.25) -> int:
    """Rows of a uniform info bar at the bottom of ``image`` (0 when there is none).

    The bottom row must be uniform (``bottom_uniform`` of its pixels within
    ``tolerance`` grey levels of its median, the bar colour); the bar extends up while
    at least ``row_uniform`` of a row has that colour (lettering may cover the rest).
    A bar shorter than ``min_rows`` or taller than ``max_fraction`` of the image is
    not taken for one.
    """
    grey = image.mean(axis=2) if image.ndim == 3 else image.astype(np.float64)
    colour = np.median(grey[-1])
    near = np.abs(grey - colour) <= tolerance
    if near[-1].mean() < bottom_uniform:
        return 0
    rows = 0
    for row in near[::-1]:
        if row.mean() < row_uniform:
            break
        rows += 1
    if rows < min_rows or rows > max_fraction * image.shape[0]:
        return 0
    return rows


def micrograph_name(stem: str) -> str:
    """``uhcs0006`` -> ``micrograph6``; other stems unchanged."""
    match = re.fullmatch(r'uhcs0*(\d+)', stem)
    return f'micrograph{int(match.group(1))}' if match else stem


@MICROGRAPH_SETS.register_module()
class UHCS(FileMicrographSet):
    """NIST UHCS: ~960 unlabeled SEM micrographs; 24 labeled with 6 published folds."""

    source = 'UHCS'
    classes = ('matrix', 'carbide network', 'spheroidite', 'widmanstaetten')
    palette = ((0, 0, 255), (255, 0, 0), (0, 255, 0), (255, 255, 0))
    published_selection_split = 'val'
    pretrain_overlap = 0.6
    download_url = 'https://hdl.handle.net/11256/940'
    download_note = ('download the UHCSDB micrographs (and, for the labeled part, handle '
                     '11256/964) and unpack them into')

    def __init__(self, root, fold: int = 0, seed: int = 0, val_fraction: float = 0.15,
                 crop_bottom: Optional[int] = None):
        self.fold, self.seed, self.val_fraction = fold, seed, val_fraction
        if crop_bottom is None:  # not the suite's choice: a prepared copy's own stands
            crop_bottom = self._prepared_option(Path(root), 'crop_bottom')
        self.crop_bottom = crop_bottom
        # image stem -> (height before cropping, rows cropped), for every image read
        self.bar_crops: dict[str, tuple[int, int]] = {}
        super().__init__(root)

    @staticmethod
    def _prepared_option(root: Path, key: str):
        try:
            return read_json(root / 'manifest.json').get('options', {}).get(key)
        except (OSError, ValueError, AttributeError):  # JsonProblem is a ValueError
            return None  # no (readable) prepared copy: the reader reports it if it matters

    def options(self) -> dict:
        return dict(fold=self.fold, seed=self.seed, val_fraction=self.val_fraction,
                    crop_bottom=self.crop_bottom)

    def crop_image(self, image: np.ndarray, path: Path) -> np.ndarray:
        rows = self.crop_bottom if self.crop_bottom is not None else info_bar_rows(image)
        if rows and self.crop_bottom is None and not any(r for _, r in self.bar_crops.values()):
            warnings.warn(f'{path}: the bottom {rows} rows are a uniform info bar; cropped '
                          '(each image is checked; UHCS.bar_crops lists the crops)', DataWarning)
        self.bar_crops[path.stem] = (image.shape[0], rows)
        return image[:-rows] if rows else image

    def crop_mask(self, mask: np.ndarray, path: Path) -> np.ndarray:
        # load_labeled reads the image (same stem) just before its mask
        height, rows = self.bar_crops.get(path.stem, (mask.shape[0], 0))
        return mask[:-rows] if rows and mask.shape[0] == height else mask

    def _labeled(self) -> dict[str, LabeledFile]:
        if (self.root / 'GT').is_dir() or (self.root / 'labeled_img').is_dir():
            image_dir, mask_dir = self.root / 'labeled_img', self.root / 'GT'
            if not mask_dir.is_dir():
                raise MissingResourceError(f'{mask_dir}: missing folder (masks for {image_dir})')
        else:
            image_dir = self.root / 'uhcs-tif' / 'images'
            mask_dir = self.root / 'uhcs-tif' / 'labels'
        if not mask_dir.is_dir():
            return {}
        if not image_dir.is_dir():
            raise MissingResourceError(f'{image_dir}: missing folder (images for {mask_dir})')
        images = {p.stem: p for p in list_images(image_dir)}
        labeled = {}
        for mask in list_images(mask_dir):
            if mask.stem not in images:
                raise DataError(f'{mask}: no image {mask.stem}.* in {image_dir}')
            name = micrograph_name(mask.stem)
            labeled[name] = LabeledFile(f'{self.source}/{name}', images[mask.stem], mask)
        return labeled

    def _test_names(self, names: list[str]) -> list[str]:
        folds_file = next((p for p in (self.root / 'uhcs-validation-sets.json',
                                       self.root / 'uhcs-tif' / 'validation-sets.json')
                           if p.is_file()), None)
        if folds_file is None:
            return seeded_split(names, 1 / 6, self.seed)[1]
        try:
            folds = read_json(folds_file)
            test = [str(name) for name in folds[str(self.fold)]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f'{folds_file}: no validation set for fold {self.fold} ({err})') from None
        for name in test:
            if name not in names:
                raise DataError(f'{folds_file}: fold {self.fold} names {name}, which has no mask')
        return test

    def index_source(self):
        labeled = self._labeled()
        names = sorted(labeled, key=natural_key)
        test = set(self._test_names(names)) if names else set()
        train, val = seeded_split([n for n in names if n not in test], self.val_fraction,
                                  self.seed + 1)
        files = dict(train=[labeled[n] for n in train], val=[labeled[n] for n in val],
                     test=[labeled[n] for n in names if n in test])
        pool_dirs = [self.root / d for d in ('micrographs', 'images', 'unlabeled_img')
                     if (self.root / d).is_dir()]
        if not pool_dirs and not labeled:
            raise MissingResourceError(f'{self.root / "micrographs"}: missing folder '
                                       '(UHCS micrographs; or labeled_img/ + GT/)')
        unlabeled = [UnlabeledFile(f'{self.source}/{"unlabeled/" if folder.name == "unlabeled_img" else ""}'
                                   f'{micrograph_name(p.stem)}', p)
                     for folder in pool_dirs for p in list_images(folder)]
        return files, unlabeled
