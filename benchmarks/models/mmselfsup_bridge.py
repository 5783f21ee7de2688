"""Builds mmselfsup's MoCo/DenseCL on a ResNet of any depth, starting from a given encoder."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from matssl_bench.models.encoders import load_encoder_state, stage_channels


def mmselfsup_resnet(arch: str) -> dict:
    depth = int(arch.replace('resnet', ''))
    return dict(type='mmselfsup.ResNet', depth=depth, in_channels=3, out_indices=[4],
                norm_cfg=dict(type='BN'), zero_init_residual=False)


def build_mmselfsup_model(cfg: dict, initial_state: Optional[dict[str, torch.Tensor]],
                          source: str) -> nn.Module:
    """Build an mmselfsup algorithm, run its weight init, load the initial encoder, sync the key encoder.

    mmselfsup copies the query encoder into the momentum (key) encoder when the
    model is built, before any weights are loaded; like the original MoCo, the
    key encoder must start equal to the query encoder, so it is synced here.
    ``init_weights`` runs first and marks the model initialised, so the
    Runner's own call is a no-op and cannot overwrite the loaded encoder.
    The key encoder is mmengine's ``ExponentialMovingAverage``, to which
    mmselfsup 1.0.0 passes ``1 - momentum`` (0.001 for MoCo's 0.999).
    """
    from mmselfsup.registry import MODELS as SELFSUP_MODELS

    model = SELFSUP_MODELS.build(cfg)
    model.init_weights()  # done now so that the Runner's own call cannot overwrite loaded weights
    if initial_state is not None:
        load_encoder_state(model.backbone, initial_state, source)
    query = nn.Sequential(model.backbone, model.neck)
    model.encoder_k.module.load_state_dict(query.state_dict())
    for p in model.encoder_k.parameters():
        p.requires_grad_(False)
    return model


def neck_in_channels(arch: str) -> int:
    return stage_channels(arch)[-1]


def momentum_contrast_cfg(algorithm: str, arch: str, neck: dict, hparams: dict, **extra) -> dict:
    """Config of an mmselfsup momentum-contrast algorithm (``MoCo``, ``DenseCL``) on ``arch``.

    The views arrive normalised, so the data preprocessor only moves them to the device.
    """
    return dict(
        type=f'mmselfsup.{algorithm}', queue_len=hparams['queue_len'],
        feat_dim=hparams['feat_dim'], momentum=hparams['momentum'],
        backbone=mmselfsup_resnet(arch),
        neck=dict(in_channels=neck_in_channels(arch), hid_channels=hparams['hidden_dim'],
                  out_channels=hparams['feat_dim'], **neck),
        head=dict(type='mmselfsup.ContrastiveHead', temperature=hparams['temperature'],
                  loss=dict(type='mmcls.CrossEntropyLoss')),
        data_preprocessor=dict(type='mmengine.BaseDataPreprocessor'), **extra)
