"""Inference-time tricks as a wrapper of a logits callable: input downscaling and
test-time augmentation (flips, several scales).

``downscale`` (0.5 halves the input, enlarging the receptive field relative to the
structures, as the training-tricks paper does) resizes the input, runs the network and
upsamples the logits to the input size, so metrics stay at full resolution. TTA averages
softmax probabilities over flips and/or scales and returns their log (argmax-equivalent).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

Logits = Callable[[torch.Tensor], torch.Tensor]
MULTISCALE = (0.75, 1.0, 1.25)
STRIDE = 32  # U-Net++ needs sides divisible by the encoder's output stride


def _side(length: int, factor: float) -> int:
    return max(STRIDE, round(length * factor / STRIDE) * STRIDE)


def at_scale(logits: Logits, inputs: torch.Tensor, factor: float) -> torch.Tensor:
    """Logits of ``inputs`` resized by ``factor`` (sides rounded to multiples of 32),
    resized back to the input size; ``factor`` 1 runs the network as is."""
    if factor == 1.0:
        return logits(inputs)
    h, w = inputs.shape[-2:]
    small = F.interpolate(inputs, size=(_side(h, factor), _side(w, factor)), mode='bilinear',
                          align_corners=False, antialias=factor < 1)
    return F.interpolate(logits(small), size=(h, w), mode='bilinear', align_corners=False)


def test_time_logits(logits: Logits, scale: dict) -> Optional[Logits]:
    """The inference callable of a fine-tuning scale (``downscale``, ``tta``, ``tta_scales``);
    None when neither is set (today's behaviour)."""
    down = float(scale.get('downscale', 1.0))
    mode = scale.get('tta', 'none')
    if down == 1.0 and mode == 'none':
        return None
    if mode == 'none':
        return lambda inputs: at_scale(logits, inputs, down)
    factors = [down * f for f in (scale.get('tta_scales', MULTISCALE)
                                  if 'multiscale' in mode else (1.0,))]
    flips = [(), (-1,), (-2,)] if 'flips' in mode else [()]

    def averaged(inputs: torch.Tensor) -> torch.Tensor:
        probs = 0.0
        for factor in factors:
            for dims in flips:
                out = at_scale(logits, inputs.flip(dims) if dims else inputs, factor)
                probs = probs + (out.flip(dims) if dims else out).float().softmax(dim=1)
        return (probs / (len(factors) * len(flips))).clamp_min(1e-12).log()

    return averaged


def attach(model, scale: dict):
    """Give a segmenter the inference wrapper of ``scale`` (training is never affected)."""
    model.test_time = test_time_logits(model.logits, scale)
    return model
