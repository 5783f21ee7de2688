"""The fine-tuning stage's U-Net++ (or probe) as every stage builds it, and saved
fine-tuned weights loaded into it for inference: one place for both."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from mmengine.device import get_device

from matssl_bench.errors import UnreadableFileError
from matssl_bench.evaluation.tta import attach as attach_test_time
from matssl_bench.models.encoders import describe_load_error, load_torch_file
from matssl_bench.models.probes import segmenter_class
from matssl_bench.models.segmenters import UNetPlusPlusSegmenter, set_inference_precision


def build_segmenter(arch: str, num_classes: int, scale: dict,
                    encoder_state: Optional[dict[str, torch.Tensor]] = None,
                    encoder_source: str = 'encoder state',
                    precision: str = 'fp32') -> UNetPlusPlusSegmenter:
    """The U-Net++ of a fine-tuning scale (perf.py times the same model); its inference
    (validation, test) runs at the resolved ``precision``."""
    model = segmenter_class(scale)(arch, num_classes, encoder_state=encoder_state,
                                   encoder_source=encoder_source,
                                   decoder_channels=scale.get('decoder_channels',
                                                              (256, 128, 64, 32, 16)),
                                   channels_last=scale.get('channels_last', False),
                                   data_preprocessor=dict(type='mmengine.BaseDataPreprocessor',
                                                          non_blocking=True))
    set_inference_precision(model, precision)
    return attach_test_time(model, scale)  # downscaling / TTA at inference (tta.py)


def load_segmenter(weights: Path, arch: str, num_classes: int, scale: dict,
                   precision: str = 'fp32'):
    """(model in eval mode on the current device, checkpoint) of saved fine-tuned weights."""
    checkpoint = load_torch_file(weights, 'fine-tuned weights')
    model = build_segmenter(arch, num_classes, scale, precision=precision)
    state = checkpoint.get('state_dict') if isinstance(checkpoint, dict) else None
    try:
        if not isinstance(state, dict):
            raise ValueError('no state_dict')
        model.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError) as err:  # missing or misshapen tensors
        raise UnreadableFileError(f'{weights}: not the fine-tuned weights of this model '
                                  f'({describe_load_error(err)})') from None
    return model.to(get_device()).eval(), checkpoint
