"""U-Net++ (segmentation-models-pytorch) with a plugin's encoder, as an mmengine model."""
from __future__ import annotations

import contextlib
from typing import Mapping, Optional, Sequence

import segmentation_models_pytorch as smp
import torch
from mmengine.model import BaseModel

from matssl_bench.models.encoders import load_encoder_state
from matssl_bench.registry import MODELS


@MODELS.register_module()
class UNetPlusPlusSegmenter(BaseModel):
    """U-Net++ with a random decoder and an encoder taken from a pretraining method.

    ``forward`` modes follow mmengine: ``loss`` returns the Dice loss, ``predict``
    returns mmseg-style samples (``pred_sem_seg``/``gt_sem_seg``) for IoUMetric.
    """

    def __init__(self, encoder: str, num_classes: int,
                 encoder_state: Optional[Mapping[str, torch.Tensor]] = None,
                 encoder_source: str = 'encoder state',
                 decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
                 channels_last: bool = False,
                 data_preprocessor: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.net = smp.UnetPlusPlus(encoder_name=encoder, encoder_weights=None, in_channels=3,
                                    classes=num_classes, decoder_channels=tuple(decoder_channels))
        if encoder_state is not None:
            load_encoder_state(self.net.encoder, encoder_state, encoder_source)
        self.loss_fn = smp.losses.DiceLoss(mode='multiclass', from_logits=True)
        # NHWC convolutions are faster with oneDNN on CPU and with tensor cores on GPU
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)

    # Inference-time wrapper of :meth:`logits` (test-time augmentation, input downscaling;
    # benchmarks/tta.py); None: the plain network. Training ('loss') never uses it.
    test_time = None
    # Forward passes outside training ('tensor', 'predict') run under autocast to this dtype
    # (:func:`set_inference_precision`; training's autocast is the optimiser wrapper's).
    inference_dtype: Optional[torch.dtype] = None

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs.contiguous(memory_format=self.memory_format))

    def forward(self, inputs: torch.Tensor, data_samples: Optional[dict] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return dict(loss=self.loss_fn(self.logits(inputs), data_samples['gt']))
        with (torch.autocast(inputs.device.type, dtype=self.inference_dtype)
              if self.inference_dtype is not None else contextlib.nullcontext()):
            logits = (self.test_time or self.logits)(inputs)
        if mode == 'tensor':
            return logits
        if mode == 'predict':
            preds = logits.argmax(dim=1)
            return [dict(pred_sem_seg=dict(data=p[None]), gt_sem_seg=dict(data=g[None]))
                    for p, g in zip(preds, data_samples['gt'])]
        raise ValueError(f'unknown mode {mode!r}')


AUTOCAST_DTYPES = dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)


def set_inference_precision(model: UNetPlusPlusSegmenter, precision: str) -> None:
    """Evaluate ``model`` at a resolved ``precision`` ('fp32', 'bf16' or 'fp16')."""
    model.inference_dtype = AUTOCAST_DTYPES[precision]
