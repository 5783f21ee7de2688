"""Your own micrographs with no code: ``images/`` and ``masks/`` folders paired by file stem.

```python
dict(type='Folder', root='data/my_steel', classes=['ferrite', 'pearlite', 'pore'],
     label_map={0: 0, 128: 1, 255: 2})   # masks stored as grey values 0/128/255
```

Masks: 8-bit class ids; or any grey values mapped through ``label_map`` (value ->
class id; a value not in it is an error naming the file and the values); or RGB
colours mapped through ``palette``. Unlabeled images for pretraining: ``<root>/unlabeled/``
when it exists (``unlabeled='other_folder'`` names another one, which must exist;
``unlabeled=False`` ignores it). Splits, first that applies: ``splits`` given as
``{'train': [stems], 'val': [...], 'test': [...]}``; ``<root>/splits/{train,val,test}.txt``
(stems, one per line); otherwise a seeded ``test_fraction`` / ``val_fraction`` split.
An image without a mask joins the unlabeled pool with a warning; a mask without an
image is a ``DataError``.
"""
from __future__ import annotations

import warnings
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from matssl_bench.errors import ConfigError, DataError
from matssl_bench.data.file_sets import (FileMicrographSet, LabeledFile, UnlabeledFile, require_dir,
                                    seeded_split)
from matssl_bench.data.image_io import DataWarning, list_images, read_mask
from matssl_bench.registry import MICROGRAPH_SETS

SPLITS = ('train', 'val', 'test')
DEFAULT_UNLABELED = 'unlabeled'


@MICROGRAPH_SETS.register_module()
class Folder(FileMicrographSet):
    """Generic images/ + masks/ folders with your own class names."""

    source = 'Folder'

    def __init__(self, root, classes: Sequence[str], images: str = 'images', masks: str = 'masks',
                 unlabeled: Union[str, bool, None] = None, palette: Optional[Sequence] = None,
                 label_map: Optional[Mapping] = None,
                 splits: Optional[dict] = None, seed: int = 0, test_fraction: float = 0.2,
                 val_fraction: float = 0.15, pretrain_overlap: Optional[float] = None,
                 published_mean_classes: Optional[Sequence[int]] = None,
                 selection_split: str = 'val', source: Optional[str] = None):
        if not classes:
            raise DataError('Folder: give the class names (index = class id)')
        self.classes = tuple(classes)
        self.palette = tuple(tuple(c) for c in palette) if palette else ()
        self.label_lut = self._label_lut(label_map, root)
        self.image_folder, self.mask_folder, self.unlabeled_folder = images, masks, unlabeled
        self.split_lists = splits
        self.seed, self.test_fraction, self.val_fraction = seed, test_fraction, val_fraction
        self.pretrain_overlap = pretrain_overlap
        self.published_mean_classes = (tuple(published_mean_classes)
                                       if published_mean_classes is not None else None)
        self.published_selection_split = selection_split
        self.source = source or 'Folder'
        super().__init__(root)

    def _label_lut(self, label_map: Optional[Mapping], root) -> Optional[np.ndarray]:
        """label_map as a 256-entry lookup table (255 = value not mapped)."""
        if label_map is None:
            return None
        lut = np.full(256, 255, np.uint8)
        for value, class_id in dict(label_map).items():
            try:
                value, class_id = int(value), int(class_id)
            except (TypeError, ValueError):
                raise ConfigError(f'Folder {root}: label_map entry {value!r}: {class_id!r} is '
                                  'not mask value (0-255) -> class id (integers)') from None
            if not 0 <= value <= 255 or not 0 <= class_id < len(self.classes):
                raise ConfigError(f'Folder {root}: label_map maps {value} to {class_id}; values '
                                  f'are 0-255 and class ids 0-{len(self.classes) - 1} '
                                  f'({", ".join(self.classes)})')
            lut[value] = class_id
        return lut

    def read_mask_file(self, record: LabeledFile) -> np.ndarray:
        mask = read_mask(record.mask, self.palette)
        if self.label_lut is None or self.prepared:  # a prepared copy holds class ids
            return mask
        mapped = self.label_lut[mask]
        unknown = np.unique(mask[mapped == 255]) if (self.label_lut == 255).any() else []
        if len(unknown):
            known = np.nonzero(self.label_lut != 255)[0]
            raise DataError(f'{record.mask}: mask values {[int(v) for v in unknown]} are not in '
                            f'label_map (it maps {", ".join(map(str, known))})')
        return mapped

    def mask_label_values(self, record: LabeledFile) -> list[int]:
        if self.label_lut is None or self.prepared:
            return super().mask_label_values(record)
        return np.unique(read_mask(record.mask, self.palette)).tolist()  # before label_map

    def declared_label_values(self) -> set[int]:
        if self.label_lut is None or self.prepared:
            return super().declared_label_values()
        return {int(v) for v in np.nonzero(self.label_lut != 255)[0]}

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
        folder = self.root / (self.unlabeled_folder or DEFAULT_UNLABELED)
        if self.unlabeled_folder or (self.unlabeled_folder is None and folder.is_dir()):
            require_dir(folder, 'Folder unlabeled images')
            unlabeled += [UnlabeledFile(f'{self.source}/unlabeled/{p.stem}', p)
                          for p in list_images(folder)]
        return files, unlabeled
