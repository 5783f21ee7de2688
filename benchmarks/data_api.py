"""What a micrograph data source gives the pipeline: labeled splits and an unlabeled pool.

Data-set plugins under ``datasets/`` subclass :class:`MicrographSet` and
register in ``MICROGRAPH_SETS``. Images are ``HxWx3 uint8`` arrays, masks
``HxW uint8`` arrays of class ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from matssl_bench.errors import DataError


@dataclass(frozen=True)
class LabeledImage:
    name: str
    image: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class UnlabeledImage:
    name: str
    image: np.ndarray
    # Patch overlap for pretraining (the paper: UHCS 0.6, MetalDAM 0.7, Aachen 0.0);
    # None takes the suite's pretraining scale.
    overlap: Optional[float] = None


class MicrographSet:
    """Base of data sources.

    Subclasses set ``classes`` (names, index = class id) and ``palette``, and
    implement :meth:`labeled_split` and :meth:`unlabeled_pool`.
    """

    classes: tuple[str, ...] = ()
    palette: tuple[tuple[int, int, int], ...] = ()
    splits: tuple[str, ...] = ('train', 'val', 'test')
    # Split the authors' code selected the best epoch on ('test' for MetalDAM and Aachen).
    published_selection_split: str = 'val'
    # Classes averaged in the published mIoU (None: all classes).
    published_mean_classes: Optional[tuple[int, ...]] = None
    # Patch overlap of this source's images in SSL pretraining (None: the suite's scale).
    pretrain_overlap: Optional[float] = None
    # Micrometres per pixel of the original images (None: unknown); figures draw a scale bar.
    pixel_size_um: Optional[float] = None

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def labeled_split(self, split: str) -> Sequence[LabeledImage]:
        raise NotImplementedError

    def unlabeled_pool(self, exclude: Sequence[str] = ()) -> Sequence[UnlabeledImage]:
        """Images for self-supervised pretraining, leaving out the named images."""
        raise NotImplementedError

    def test_image_names(self) -> list[str]:
        return [item.name for item in self.labeled_split('test')]

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise DataError(f'{self.name}: no split {split!r}; it has {", ".join(self.splits)}')

    @classmethod
    def manifest_file(cls, cfg: dict) -> Optional[Path]:
        """Where a prepared copy of ``cfg``'s data keeps its manifest (None: not file based)."""
        return Path(cfg['root']) / 'manifest.json' if cfg.get('root') else None

    def meta(self) -> dict:
        return dict(name=self.name, classes=list(self.classes),
                    palette=[list(c) for c in self.palette],
                    published_mean_classes=(list(self.published_mean_classes)
                                            if self.published_mean_classes is not None else None),
                    **({} if self.pixel_size_um is None
                       else dict(pixel_size_um=self.pixel_size_um)))


def validate_pair(item: LabeledImage, num_classes: int, source: str = '') -> None:
    """Raise DataError naming the image when its mask cannot belong to it."""
    where = f'{source}: ' if source else ''
    if item.image.ndim != 3 or item.image.shape[2] != 3 or item.image.dtype != np.uint8:
        raise DataError(f'{where}{item.name}: image must be HxWx3 uint8, '
                        f'got shape {item.image.shape} dtype {item.image.dtype}')
    if item.mask.shape != item.image.shape[:2]:
        raise DataError(f'{where}{item.name}: mask size {item.mask.shape[::-1]} differs from '
                        f'image size {item.image.shape[1::-1]}')
    labels = np.unique(item.mask)
    unknown = labels[labels >= num_classes]
    if unknown.size:
        raise DataError(f'{where}{item.name}: unknown label values {unknown.tolist()} '
                        f'(expected 0..{num_classes - 1})')


# Helpers for file-backed readers, offered here so that a data-set plugin imports the
# contract only; resolved lazily because those modules build on this one.
_FILE_HELPERS = {
    'FileMicrographSet': 'file_sets', 'LabeledFile': 'file_sets', 'UnlabeledFile': 'file_sets',
    'require_dir': 'file_sets', 'seeded_split': 'file_sets',
    'DataWarning': 'image_io', 'list_images': 'image_io', 'natural_key': 'image_io',
    'read_mask': 'image_io', 'image_size': 'image_io',
}


def __getattr__(name: str):
    module = _FILE_HELPERS.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    import importlib
    return getattr(importlib.import_module(f'matssl_bench.data.{module}'), name)
