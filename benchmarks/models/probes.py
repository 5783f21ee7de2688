"""Frozen-encoder variants: is the representation better, or only the starting point?

- ``frozen-decoder``: U-Net++ whose encoder is frozen, batch-norm running statistics
  included (encoder kept in eval mode during training, no gradients); only the decoder
  and head train.
- ``linear-probe``: a per-pixel linear classifier on the frozen encoder's multi-scale
  features (each stage upsampled to the input size and concatenated), no decoder.

The probe trains with deterministic ops only (CUDA's bilinear-upsampling backward and its
4-D NLL loss are not; see ``engine/determinism.py``): its upsampling is two matrix products
with :func:`bilinear_matrix` and its loss :func:`pixel_cross_entropy`.
"""
from __future__ import annotations

from typing import Mapping, Optional

import segmentation_models_pytorch as smp
import torch
from torch import nn

from matssl_bench.models.encoders import load_encoder_state
from matssl_bench.registry import MODELS
from matssl_bench.models.segmenters import UNetPlusPlusSegmenter


def bilinear_matrix(out_size: int, in_size: int) -> torch.Tensor:
    """(out_size, in_size) float64 weights of ``F.interpolate(mode='bilinear',
    align_corners=False)`` along one axis: ``A @ x`` upsamples the rows of ``x``."""
    scale = in_size / out_size
    source = ((torch.arange(out_size, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0)
    low = source.floor().long().clamp(max=in_size - 1)
    high = (low + 1).clamp(max=in_size - 1)
    frac = source - low
    rows = torch.arange(out_size)
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    weights.index_put_((rows, low), 1 - frac, accumulate=True)
    weights.index_put_((rows, high), frac, accumulate=True)
    return weights


def bilinear_upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(x, size, mode='bilinear', align_corners=False)`` as two matrix
    products, whose backward is deterministic on CUDA (interpolate's is not)."""
    rows = bilinear_matrix(size[0], x.shape[-2]).to(x.device, x.dtype)
    cols = bilinear_matrix(size[1], x.shape[-1]).to(x.device, x.dtype)
    return rows @ x @ cols.T


def pixel_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel cross-entropy of N x C x H x W logits against N x H x W class ids,
    as ``nn.CrossEntropyLoss`` but through ``gather`` (torch's NLL loss has no deterministic
    CUDA kernel; gather's backward has one under deterministic algorithms)."""
    log_probs = logits.float().log_softmax(1)
    return -log_probs.gather(1, target[:, None].long()).mean()


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
    Trained with cross-entropy (the usual linear-probe loss), deterministic on CUDA.
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
        self.loss_fn = pixel_cross_entropy
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
        return sum(bilinear_upsample(head(f), size) for head, f in zip(self.heads, features))


SEGMENTERS = {'full': UNetPlusPlusSegmenter, 'frozen-decoder': FrozenEncoderSegmenter,
              'linear-probe': LinearProbeSegmenter}


def segmenter_class(scale: dict) -> type:
    """The model class of a fine-tuning scale's ``encoder_mode`` (default ``full``)."""
    return SEGMENTERS[scale.get('encoder_mode', 'full')]
