"""Settings of the protocols beyond Tables 4-5, checked once when a suite is expanded.

- label efficiency: fine-tune on ``n`` of the labelled training images, drawn with a seed
  that depends on the fine-tuning set, ``n`` and the draw index only, so every method
  sees the same images (paired comparisons);
- encoder modes: ``full`` fine-tuning, ``frozen-decoder`` (encoder and its batch-norm
  statistics frozen) and ``linear-probe`` (:mod:`.probe`);
- fine-tuning tricks (:mod:`.augment`, :mod:`.tta`) and transfer targets.
"""
from __future__ import annotations

import zlib
from typing import Optional, Sequence

import numpy as np

from .data_api import LabeledImage, MicrographSet

ENCODER_MODES = ('full', 'frozen-decoder', 'linear-probe')
AUGMENTATIONS = ('none', 'flips', 'flips+rot90', 'photometric', 'strong')
TTA_MODES = ('none', 'flips', 'multiscale', 'flips+multiscale')
ALL = 'all'


def check_finetune_settings(scale: dict, where: str) -> None:
    """Raise ValueError naming the suite entry when a protocol or trick setting is invalid."""
    def bad(key, value, allowed):
        raise ValueError(f'{where}: {key}={value!r} is not one of {", ".join(map(str, allowed))}')

    if scale.get('encoder_mode', 'full') not in ENCODER_MODES:
        bad('encoder_mode', scale['encoder_mode'], ENCODER_MODES)
    if scale.get('augment', 'none') not in AUGMENTATIONS:
        bad('augment', scale['augment'], AUGMENTATIONS)
    if scale.get('tta', 'none') not in TTA_MODES:
        bad('tta', scale['tta'], TTA_MODES)
    for key in ('downscale', 'encoder_lr_mult'):
        value = scale.get(key, 1.0)
        if not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f'{where}: {key} must be a positive number, got {value!r}')
    if scale.get('downscale', 1.0) > 1:
        raise ValueError(f'{where}: downscale must be at most 1 (0.5 halves the input)')
    if scale.get('encoder_lr_mult', 1.0) != 1.0 and scale.get('encoder_mode', 'full') != 'full':
        raise ValueError(f'{where}: encoder_lr_mult needs encoder_mode="full" (the encoder '
                         'is not trained otherwise)')


def encoder_paramwise_cfg(scale: dict) -> dict:
    """mmengine ``paramwise_cfg`` giving the encoder ``encoder_lr_mult`` times the decoder's
    learning rate; empty (today's optimiser) when the multiplier is 1."""
    mult = float(scale.get('encoder_lr_mult', 1.0))
    if mult == 1.0:
        return {}
    return dict(paramwise_cfg=dict(custom_keys={'net.encoder': dict(lr_mult=mult)}))


def label_draws(cfg: Optional[dict], where: str) -> list[Optional[dict]]:
    """``[dict(n=..., draw=...)]`` of a suite's ``label_efficiency=dict(n_labelled=[...],
    draws=k)``; ``None`` stands for all images (today's run, so its job is shared with the
    plain row) and is listed once, as every draw of it would be the same images."""
    if not cfg:
        return [None]
    sizes, draws = cfg.get('n_labelled'), cfg.get('draws', 1)
    if not sizes or not isinstance(draws, int) or draws < 1:
        raise ValueError(f'{where}: label_efficiency needs n_labelled=[...] and draws >= 1')
    out = []
    for n in sizes:
        if n != ALL and not (isinstance(n, int) and n >= 1):
            raise ValueError(f'{where}: n_labelled entries are positive integers or "all", '
                             f'got {n!r}')
        out += [None] if n == ALL else [dict(n=n, draw=d) for d in range(draws)]
    return out


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
