"""MetalDAM (Luengo et al. 2022): SEM micrographs of additively manufactured steel, 5 classes.

Layouts read (the first that matches):

- redistributed: ``labeled_img/*.jpg``, ``GT/*.png``, ``unlabeled_img/*.jpg`` and
  the list files ``labeled_list.txt`` / ``unlabeled_list.txt``;
- original release: ``images/*.jpg`` and ``labels/*.png`` (``MetalDAM_labeled.zip``)
  plus, when present, an unlabeled folder (``unlabeled/``, ``unlabeled_img/``,
  ``unlabeled_images/`` or ``MetalDAM_unlabeled/``);
- a copy written by ``tools/prepare_data.py``.

Repairs (each with a ``DataWarning``): the files on disk are authoritative and the
list files only cross-checked; an image without a mask joins the unlabeled pool;
a mask without an image is ignored; a mask 1-2 px smaller than its image crops
both (two such masks in the shared copy). Full SEM frames (1024x768, 1280x960)
lose the 65-row info bar at the bottom; the released images (1024x703, 1280x895)
already have it removed. Splits: seeded 8:2 train/test of the labeled images
(42 -> 33/9 as the paper), then ``val_fraction`` of train for the clean protocol.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from matssl_bench.data.file_sets import (FileMicrographSet, LabeledFile, UnlabeledFile, require_dir,
                                    seeded_split)
from matssl_bench.data.image_io import DataWarning, list_images, natural_key
from matssl_bench.registry import MICROGRAPH_SETS

# Full SEM frame size -> rows of the instrument's info bar at the bottom.
INFO_BAR_ROWS = {(1024, 768): 65, (1280, 960): 65}
UNLABELED_FOLDERS = ('unlabeled_img', 'unlabeled', 'unlabeled_images', 'MetalDAM_unlabeled')


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@MICROGRAPH_SETS.register_module()
class MetalDAM(FileMicrographSet):
    """MetalDAM: 42 labeled SEM micrographs (5 classes) plus unlabeled ones."""

    source = 'MetalDAM'
    classes = ('matrix', 'austenite', 'martensite/austenite', 'precipitate', 'defect')
    palette = ((0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 0), (0, 255, 255))
    published_selection_split = 'test'
    published_mean_classes = (0, 1, 2, 4)
    pretrain_overlap = 0.7
    download_url = 'https://github.com/ari-dasci/OD-MetalDAM/releases'
    download_note = ('download MetalDAM_labeled.zip (and the unlabeled archive) from the '
                     'release page and unpack them into')

    def __init__(self, root, seed: int = 0, test_fraction: float = 0.2, val_fraction: float = 0.15):
        self.seed, self.test_fraction, self.val_fraction = seed, test_fraction, val_fraction
        super().__init__(root)

    def options(self) -> dict:
        return dict(seed=self.seed, test_fraction=self.test_fraction,
                    val_fraction=self.val_fraction)

    def crop_image(self, image: np.ndarray, path: Path) -> np.ndarray:
        rows = INFO_BAR_ROWS.get((image.shape[1], image.shape[0]), 0)
        return image[:-rows] if rows else image

    def _layout(self) -> tuple[Path, Path, Path | None]:
        for images, masks in (('labeled_img', 'GT'), ('images', 'labels')):
            if (self.root / images).is_dir() or (self.root / masks).is_dir():
                image_dir = require_dir(self.root / images, 'MetalDAM labeled images')
                mask_dir = require_dir(self.root / masks, 'MetalDAM masks')
                unlabeled = next((self.root / d for d in UNLABELED_FOLDERS
                                  if (self.root / d).is_dir()), None)
                return image_dir, mask_dir, unlabeled
        require_dir(self.root / 'labeled_img', 'MetalDAM labeled images (or images/ + labels/)')
        raise AssertionError('unreachable')

    def _cross_check(self, list_file: Path, stems: list[str]) -> None:
        if not list_file.is_file():
            return
        listed = set(_read_list(list_file))
        for stem in sorted(set(stems) - listed, key=natural_key):
            warnings.warn(f'{list_file}: {stem} is on disk but not listed; used anyway', DataWarning)
        for stem in sorted(listed - set(stems), key=natural_key):
            warnings.warn(f'{list_file}: {stem} is listed but has no file; skipped', DataWarning)

    def index_source(self):
        image_dir, mask_dir, unlabeled_dir = self._layout()
        images = {p.stem: p for p in list_images(image_dir)}
        masks = {p.stem: p for p in list_images(mask_dir)}
        self._cross_check(self.root / 'labeled_list.txt', list(images))
        unlabeled = []
        for stem in sorted(set(images) - set(masks), key=natural_key):
            warnings.warn(f'{images[stem]}: no mask in {mask_dir}; used as an unlabeled image',
                          DataWarning)
            unlabeled.append(UnlabeledFile(f'{self.source}/{stem}', images[stem]))
        for stem in sorted(set(masks) - set(images), key=natural_key):
            warnings.warn(f'{masks[stem]}: no image in {image_dir}; ignored', DataWarning)
        labeled = {stem: LabeledFile(f'{self.source}/{stem}', images[stem], masks[stem])
                   for stem in images if stem in masks}
        trainval, test = seeded_split(list(labeled), self.test_fraction, self.seed)
        train, val = seeded_split(trainval, self.val_fraction, self.seed + 1)
        files = {split: [labeled[s] for s in stems]
                 for split, stems in (('train', train), ('val', val), ('test', test))}
        if unlabeled_dir is not None:
            extra = list_images(unlabeled_dir)
            self._cross_check(self.root / 'unlabeled_list.txt', [p.stem for p in extra])
            unlabeled += [UnlabeledFile(f'{self.source}/unlabeled/{p.stem}', p) for p in extra]
        return files, unlabeled
