"""UHCS (NIST ultrahigh carbon steel micrographs, DeCost et al.): pretraining pool + 24 labeled.

Layout (public sources, unpacked side by side under one root):

- ``micrographs/micrograph<N>.<tif|png|jpg>``: the UHCSDB micrographs (NIST
  handle 11256/940), the unlabeled pool (``images/`` is accepted too);
- optional, from the segmentation release (handle 11256/964, repository
  ``bdecost/uhcs-segment``): ``uhcs-tif/images/uhcs<NNNN>.tif`` with masks
  ``uhcs-tif/labels/uhcs<NNNN>.tif`` (0 matrix, 1 carbide network,
  2 spheroidite, 3 Widmanstaetten) and ``uhcs-validation-sets.json``: six folds
  of four names ``micrograph<N>`` (``uhcs<NNNN>`` is ``micrograph<N>``).

``fold`` picks the published validation set used as the test split; ``val`` is
``val_fraction`` of the other 20 (seeded). Without the json a seeded 1/6 split
is used. The micron bar at the bottom of UHCSDB frames is cut off
(``crop_bottom`` rows, 38 by default: an assumption, set 0 to keep it) from
images and masks alike. Labeled images also appear among the micrographs: the
pool's near-duplicate check keeps each once and drops excluded ones entirely.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from matssl_bench.errors import DataError, MissingResourceError
from matssl_bench.file_sets import (FileMicrographSet, LabeledFile, UnlabeledFile,
                                    seeded_split)
from matssl_bench.image_io import list_images, natural_key
from matssl_bench.registry import MICROGRAPH_SETS


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
                 crop_bottom: int = 38):
        self.fold, self.seed, self.val_fraction = fold, seed, val_fraction
        self.crop_bottom = crop_bottom
        super().__init__(root)

    def options(self) -> dict:
        return dict(fold=self.fold, seed=self.seed, val_fraction=self.val_fraction,
                    crop_bottom=self.crop_bottom)

    def crop_image(self, image: np.ndarray, path: Path) -> np.ndarray:
        return image[:-self.crop_bottom] if self.crop_bottom else image

    def crop_mask(self, mask: np.ndarray, path: Path) -> np.ndarray:
        return mask[:-self.crop_bottom] if self.crop_bottom else mask

    def _labeled(self) -> dict[str, LabeledFile]:
        image_dir, mask_dir = self.root / 'uhcs-tif' / 'images', self.root / 'uhcs-tif' / 'labels'
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
            folds = json.loads(folds_file.read_text())
            test = list(folds[str(self.fold)])
        except (ValueError, KeyError, TypeError) as err:
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
        pool_dir = next((self.root / d for d in ('micrographs', 'images')
                         if (self.root / d).is_dir()), None)
        if pool_dir is None and not labeled:
            raise MissingResourceError(f'{self.root / "micrographs"}: missing folder '
                                       '(UHCS micrographs)')
        unlabeled = [UnlabeledFile(f'{self.source}/{p.stem}', p)
                     for p in (list_images(pool_dir) if pool_dir else [])]
        return files, unlabeled
