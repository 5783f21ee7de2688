"""Your own micrographs with no code: ``images/`` and ``masks/`` folders paired by file stem.

```python
dict(type='Folder', root='data/my_steel', classes=['ferrite', 'pearlite'],
     images='images', masks='masks', unlabeled='unlabeled')
```

Masks: 8-bit class ids, or RGB colours mapped through ``palette``. Splits, first
that applies: ``splits`` given as ``{'train': [stems], 'val': [...], 'test': [...]}``;
``<root>/splits/{train,val,test}.txt`` (stems, one per line); otherwise a seeded
``test_fraction`` / ``val_fraction`` split. An image without a mask joins the
unlabeled pool with a warning; a mask without an image is a ``DataError``.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

from matssl_bench.errors import DataError
from matssl_bench.file_sets import (FileMicrographSet, LabeledFile, UnlabeledFile, require_dir,
                                    seeded_split)
from matssl_bench.image_io import DataWarning, list_images
from matssl_bench.registry import MICROGRAPH_SETS

SPLITS = ('train', 'val', 'test')


@MICROGRAPH_SETS.register_module()
class Folder(FileMicrographSet):
    """Generic images/ + masks/ folders with your own class names."""

    source = 'Folder'

    def __init__(self, root, classes: Sequence[str], images: str = 'images', masks: str = 'masks',
                 unlabeled: Optional[str] = None, palette: Optional[Sequence] = None,
                 splits: Optional[dict] = None, seed: int = 0, test_fraction: float = 0.2,
                 val_fraction: float = 0.15, pretrain_overlap: Optional[float] = None,
                 published_mean_classes: Optional[Sequence[int]] = None,
                 selection_split: str = 'val', source: Optional[str] = None):
        if not classes:
            raise DataError('Folder: give the class names (index = class id)')
        self.classes = tuple(classes)
        self.palette = tuple(tuple(c) for c in palette) if palette else ()
        self.image_folder, self.mask_folder, self.unlabeled_folder = images, masks, unlabeled
        self.split_lists = splits
        self.seed, self.test_fraction, self.val_fraction = seed, test_fraction, val_fraction
        self.pretrain_overlap = pretrain_overlap
        self.published_mean_classes = (tuple(published_mean_classes)
                                       if published_mean_classes is not None else None)
        self.published_selection_split = selection_split
        self.source = source or 'Folder'
        super().__init__(root)

    def options(self) -> dict:
        return dict(classes=list(self.classes), seed=self.seed, test_fraction=self.test_fraction,
                    val_fraction=self.val_fraction)

    def _split_stems(self, stems: list[str]) -> dict[str, list[str]]:
        lists = self.split_lists
        if lists is None and (self.root / 'splits').is_dir():
            lists = {s: (self.root / 'splits' / f'{s}.txt').read_text().split()
                     for s in SPLITS if (self.root / 'splits' / f'{s}.txt').is_file()}
        if lists is not None:
            known = set(stems)
            for split, names in lists.items():
                if split not in SPLITS:
                    raise DataError(f'{self.root}: unknown split {split!r} in the split lists')
                for stem in names:
                    if stem not in known:
                        raise DataError(f'{self.root}: split {split} names {stem}, which has no '
                                        'image with a mask')
            return {s: list(lists.get(s, [])) for s in SPLITS}
        rest, test = seeded_split(stems, self.test_fraction, self.seed)
        train, val = seeded_split(rest, self.val_fraction, self.seed + 1)
        return dict(train=train, val=val, test=test)

    def index_source(self):
        image_dir = require_dir(self.root / self.image_folder, 'Folder images')
        mask_dir = require_dir(self.root / self.mask_folder, 'Folder masks')
        images = {p.stem: p for p in list_images(image_dir)}
        masks = {p.stem: p for p in list_images(mask_dir)}
        for stem in masks.keys() - images.keys():
            raise DataError(f'{masks[stem]}: no image with this stem in {image_dir}')
        unlabeled = []
        for stem, path in images.items():
            if stem not in masks:
                warnings.warn(f'{path}: no mask in {mask_dir}; used as an unlabeled image',
                              DataWarning)
                unlabeled.append(UnlabeledFile(f'{self.source}/{stem}', path))
        records = {stem: LabeledFile(f'{self.source}/{stem}', path, masks[stem])
                   for stem, path in images.items() if stem in masks}
        files = {split: [records[s] for s in stems]
                 for split, stems in self._split_stems(list(records)).items()}
        if self.unlabeled_folder:
            folder = require_dir(self.root / self.unlabeled_folder, 'Folder unlabeled images')
            unlabeled += [UnlabeledFile(f'{self.source}/unlabeled/{p.stem}', p)
                          for p in list_images(folder)]
        return files, unlabeled
