"""Builds mmselfsup's algorithms on a ResNet of any depth, starting from a given encoder."""
from __future__ import annotations

from typing import Optional

import torch
from mmengine.model import BaseAveragedModel
from torch import nn

from matssl_bench.models.encoders import load_encoder_state, stage_channels
from matssl_bench.models.float32_loss import compute_loss_in_float32


def mmselfsup_resnet(arch: str, zero_init_residual: bool = False) -> dict:
    depth = int(arch.replace('resnet', ''))
    return dict(type='mmselfsup.ResNet', depth=depth, in_channels=3, out_indices=[4],
                norm_cfg=dict(type='BN'), zero_init_residual=zero_init_residual)


def build_mmselfsup_model(cfg: dict, initial_state: Optional[dict[str, torch.Tensor]],
                          source: str, float32_loss: bool = False) -> nn.Module:
    """Build an mmselfsup algorithm, run its weight init, load the initial encoder, sync its
    momentum (EMA) copies.

    mmselfsup copies the online network into its momentum copy (MoCo's key
    encoder, BYOL's target, MoCo v3's momentum encoder) when the model is built,
    before any weights are loaded; as in the original methods, that copy must
    start equal to the online network, so it is synced here. ``init_weights``
    runs first and marks the model initialised, so the Runner's own call is a
    no-op and cannot overwrite the loaded encoder. The copies are mmengine
    ``ExponentialMovingAverage`` modules (MoCo: mmselfsup 1.0.0 passes
    ``1 - momentum``) or mmselfsup's ``CosineEMA`` (BYOL, MoCo v3).
    ``float32_loss``: see :func:`compute_loss_in_float32`.
    """
    from mmselfsup.registry import MODELS as SELFSUP_MODELS

    model = SELFSUP_MODELS.build(cfg)
    model.init_weights()  # done now so that the Runner's own call cannot overwrite loaded weights
    if initial_state is not None:
        load_encoder_state(model.backbone, initial_state, source)
    online = nn.Sequential(model.backbone, model.neck)
    for copy in (m for m in model.modules() if isinstance(m, BaseAveragedModel)):
        copy.module.load_state_dict(online.state_dict())
        for p in copy.parameters():
            p.requires_grad_(False)
    if float32_loss:
        compute_loss_in_float32(model)
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


def nonlinear_neck(in_channels: int, hid_channels: int, out_channels: int, **options) -> dict:
    """mmselfsup's ``NonLinearNeck`` (an MLP) with plain batch norm (``BN1d``).

    mmselfsup's default is ``SyncBN``; the suite converts every batch norm to
    ``SyncBatchNorm`` itself where several GPUs train (``stages.uses_sync_bn``).
    """
    return dict(type='mmselfsup.NonLinearNeck', in_channels=in_channels,
                hid_channels=hid_channels, out_channels=out_channels,
                norm_cfg=dict(type='BN1d'), **options)


def selfsup_cfg(algorithm: str, arch: str, neck: dict, head: dict,
                zero_init_residual: bool = False, **extra) -> dict:
    """Config of an mmselfsup algorithm on ``arch``; the views arrive normalised."""
    return dict(type=f'mmselfsup.{algorithm}',
                backbone=mmselfsup_resnet(arch, zero_init_residual), neck=neck, head=head,
                data_preprocessor=dict(type='mmengine.BaseDataPreprocessor'), **extra)
