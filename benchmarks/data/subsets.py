"""Subsets of a data set: one labelled split restricted to named images, and the
label-efficiency draws (the same images for every method and seed)."""
from __future__ import annotations

import zlib
from typing import Optional, Sequence

import numpy as np

from matssl_bench.data_api import LabeledImage, MicrographSet

ALL = 'all'


def draw_labelled(names: Sequence[str], dataset: str, n, draw: int) -> list[str]:
    """The ``n`` training images of draw ``draw`` on ``dataset`` (sorted names in, subset out).

    Depends on the set's name, ``n`` and ``draw`` only (never on the method or seed)."""
    names = sorted(names)
    if n == ALL:
        return names
    if n > len(names):
        raise ValueError(f'{dataset}: {n} labelled images asked for, the training split has '
                         f'only {len(names)}')
    rng = np.random.default_rng([zlib.crc32(dataset.encode()), n, draw])
    return sorted(names[i] for i in rng.choice(len(names), size=n, replace=False))


class SplitSubset(MicrographSet):
    """``data`` with one labelled split restricted to the images named ``names``; the other
    splits, the unlabeled pool and everything a reader offers unchanged."""

    def __init__(self, data: MicrographSet, split: str, names):
        self.data = data
        self.classes, self.palette, self.splits = data.classes, data.palette, data.splits
        self.published_selection_split = data.published_selection_split
        self.published_mean_classes = data.published_mean_classes
        self.pretrain_overlap = data.pretrain_overlap
        names = set(names)
        self.split = split
        self.kept: list[LabeledImage] = [it for it in data.labeled_split(split)
                                         if it.name in names]

    @property
    def name(self) -> str:
        return self.data.name

    def __getattr__(self, attribute):  # anything else a reader offers, e.g. its root
        if attribute == 'data':
            raise AttributeError(attribute)
        return getattr(self.data, attribute)

    def labeled_split(self, split: str):
        return self.kept if split == self.split else self.data.labeled_split(split)

    def unlabeled_pool(self, exclude=()):
        return self.data.unlabeled_pool(exclude)

    def meta(self) -> dict:
        return dict(self.data.meta(), **{f'kept_{self.split}_images': [it.name
                                                                      for it in self.kept]})


class LabelSubset(SplitSubset):
    """A data set whose training split is one label-efficiency draw; other splits unchanged."""

    def __init__(self, data: MicrographSet, dataset: str, n, draw: int):
        names = [it.name for it in data.labeled_split('train')]
        super().__init__(data, 'train', draw_labelled(names, dataset, n, draw))
        self.train = self.kept

    def meta(self) -> dict:
        return dict(self.data.meta(), labelled_train_images=[it.name for it in self.train])


def with_labels(data: MicrographSet, dataset: str, labels: Optional[dict]) -> MicrographSet:
    """``data`` restricted to the draw ``labels`` (``dict(n=..., draw=...)``), or as is."""
    return data if not labels else LabelSubset(data, dataset, labels['n'], labels['draw'])
