"""Settings of the variants beyond Tables 4-5, checked once when a suite is expanded.

- label efficiency: fine-tune on ``n`` of the labelled training images, drawn with a seed
  that depends on the fine-tuning set, ``n`` and the draw index only, so every method
  sees the same images (paired comparisons);
- encoder modes: ``full`` fine-tuning, ``frozen-decoder`` (encoder and its batch-norm
  statistics frozen) and ``linear-probe`` (:mod:`.probe`);
- fine-tuning tricks (:mod:`.augment`, :mod:`.tta`) and transfer targets.
"""
from __future__ import annotations

from typing import Optional

from matssl_bench.data.augment import AUGMENTATIONS
from matssl_bench.data.subsets import ALL

ENCODER_MODES = ('full', 'frozen-decoder', 'linear-probe')
TTA_MODES = ('none', 'flips', 'multiscale', 'flips+multiscale')


def check_finetune_settings(scale: dict, where: str) -> None:
    """Raise ValueError naming the suite entry when a variant or trick setting is invalid."""
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
