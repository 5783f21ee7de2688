"""Frozen-encoder variants: is the representation better, or only the starting point?

- ``frozen-decoder``: U-Net++ whose encoder is frozen, batch-norm running statistics
  included (encoder kept in eval mode during training, no gradients); only the decoder
  and head train.
- ``linear-probe``: a per-pixel linear classifier on the frozen encoder's multi-scale
  features (each stage upsampled to the input size and concatenated), no decoder.
"""
from __future__ import annotations

from typing import Mapping, Optional

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from matssl_bench.models.encoders import load_encoder_state
from matssl_bench.registry import MODELS
from matssl_bench.models.segmenters import UNetPlusPlusSegmenter


def freeze(module: nn.Module) -> None:
    """No gradients and eval-mode batch norm for ``module``; call :func:`keep_frozen`
    after every ``train()`` (mmengine's loop calls ``model.train()`` each epoch)."""
    for param in module.parameters():
        param.requires_grad_(False)
    module.eval()


def keep_frozen(module: nn.Module) -> None:
    module.eval()


@MODELS.register_module()
class FrozenEncoderSegmenter(UNetPlusPlusSegmenter):
    """U-Net++ with a frozen encoder: only the decoder and segmentation head learn."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        freeze(self.net.encoder)

    def train(self, mode: bool = True):
        super().train(mode)
        keep_frozen(self.net.encoder)
        return self


@MODELS.register_module()
class LinearProbeSegmenter(UNetPlusPlusSegmenter):
    """A 1x1 convolution on the concatenated, upsampled features of a frozen encoder.

    Upsampling is linear and per channel, so a linear map of the concatenated upsampled
    features equals the sum of per-stage linear maps upsampled: the probe computes the
    latter, which needs no full-resolution copy of thousands of feature channels.
    Trained with cross-entropy (the usual linear-probe loss).
    """

    def __init__(self, encoder: str, num_classes: int,
                 encoder_state: Optional[Mapping[str, torch.Tensor]] = None,
                 encoder_source: str = 'encoder state', channels_last: bool = False,
                 data_preprocessor: Optional[dict] = None, **_unused_decoder_settings):
        # BaseModel's init: this probe has no U-Net++ to build
        super(UNetPlusPlusSegmenter, self).__init__(data_preprocessor=data_preprocessor)
        self.encoder = smp.encoders.get_encoder(encoder, in_channels=3, depth=5, weights=None)
        if encoder_state is not None:
            load_encoder_state(self.encoder, encoder_state, encoder_source)
        freeze(self.encoder)
        # one linear map per stage (stem, layer1..layer4) = one map on their concatenation
        self.heads = nn.ModuleList(nn.Conv2d(c, num_classes, 1, bias=(i == 0))
                                   for i, c in enumerate(self.encoder.out_channels[1:]))
        self.loss_fn = nn.CrossEntropyLoss()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def train(self, mode: bool = True):
        super().train(mode)
        keep_frozen(self.encoder)
        return self

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.encoder(inputs.contiguous(memory_format=self.memory_format))[1:]
        size = inputs.shape[-2:]
        return sum(F.interpolate(head(f), size=size, mode='bilinear', align_corners=False)
                   for head, f in zip(self.heads, features))


SEGMENTERS = {'full': UNetPlusPlusSegmenter, 'frozen-decoder': FrozenEncoderSegmenter,
              'linear-probe': LinearProbeSegmenter}


def segmenter_class(scale: dict) -> type:
    """The model class of a fine-tuning scale's ``encoder_mode`` (default ``full``)."""
    return SEGMENTERS[scale.get('encoder_mode', 'full')]
