"""NASA environmental-barrier-coating benchmark (Stuckner et al. 2022), subsets EBC1-3.

Layout: ``EBC{1,2,3}/{train,val,test}/<stem>.tif`` (some ``.png``) with masks
``{split}_annot/<stem>.<tif|png>``: 0 background, 1 oxide, 2 crack. The benchmark's
own splits are used as published; an image without a mask (or a mask without
an image) is a ``DataError``, since dropping it would change the benchmark.
``binary=True`` (the paper's variant) merges oxide and crack into foreground.
A prepared copy has one folder per subset (``<out>/EBC1`` ...).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from matssl_bench.errors import DataError
from matssl_bench.data.file_sets import FileMicrographSet, LabeledFile, require_dir
from matssl_bench.data.image_io import list_images
from matssl_bench.registry import MICROGRAPH_SETS

SUBSETS = ('EBC1', 'EBC2', 'EBC3')


@MICROGRAPH_SETS.register_module()
class EBC(FileMicrographSet):
    """NASA EBC few-shot benchmark: 1024x1024 coatings, background/oxide/crack."""

    source = 'EBC'
    published_selection_split = 'val'
    # Prepared copies keep the native 3-class masks; ``binary`` applies when reading.
    prepare_variants = tuple((s, dict(subset=s, binary=False)) for s in SUBSETS)
    # A commit, not a moving branch. Its sha256 is not pinned: GitHub builds these archives
    # on request and the file could not be fetched here, so --download asks for --sha256.
    download_url = ('https://github.com/nasa/pretrained-microscopy-models/archive/'
                    '63ef39f50220db4c4baad8777fbf1f80d6689442.zip')
    download_sha256 = None
    download_subdir = 'benchmark_segmentation_data'
    download_note = 'unpack its benchmark_segmentation_data/ folder (EBC1, EBC2, EBC3) into'

    def __init__(self, root, subset: str = 'EBC1', binary: bool = True):
        if subset not in SUBSETS:
            raise DataError(f'EBC: unknown subset {subset!r}; use one of {", ".join(SUBSETS)}')
        self.subset, self.binary = subset, binary
        self.classes = ('background', 'foreground') if binary else ('background', 'oxide', 'crack')
        self.palette = (((0, 0, 0), (255, 255, 255)) if binary
                        else ((0, 0, 0), (0, 160, 255), (255, 60, 0)))
        super().__init__(root)

    @property
    def source_num_classes(self) -> int:
        return 3

    def prepared_dir(self):
        return self.root / self.subset

    @classmethod
    def manifest_file(cls, cfg):
        return Path(cfg['root']) / cfg.get('subset', 'EBC1') / 'manifest.json'

    def convert_mask(self, mask: np.ndarray) -> np.ndarray:
        return (mask > 0).astype(np.uint8) if self.binary else mask

    def index_source(self):
        base = require_dir(self.root / self.subset, f'EBC subset {self.subset}')
        files = {}
        for split in self.splits:
            image_dir = require_dir(base / split, f'{self.subset} {split} images')
            mask_dir = require_dir(base / f'{split}_annot', f'{self.subset} {split} masks')
            images = {p.stem: p for p in list_images(image_dir)}
            masks = {p.stem: p for p in list_images(mask_dir)}
            for stem in images.keys() - masks.keys():
                raise DataError(f'{images[stem]}: no mask in {mask_dir}')
            for stem in masks.keys() - images.keys():
                raise DataError(f'{masks[stem]}: no image in {image_dir}')
            files[split] = [LabeledFile(f'{self.subset}/{split}/{stem}', path, masks[stem])
                            for stem, path in images.items()]
        return files, []
