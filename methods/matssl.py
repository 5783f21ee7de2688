"""MatSSL: gated multi-stage feature fusion on a ResNet, trained with in-batch NT-Xent.

As in the paper and the authors' code: each of the four stage outputs (stage 1
includes the stem) is globally average-pooled and multiplied by
``sigmoid(gate_i)``, a learnable per-channel vector of shape (1, C_i)
initialised to ones; the gated vectors are concatenated (3840 features for
ResNet-50) and projected by Linear(no bias)-BN-ReLU-Linear(no bias)-BN
(3840-2048-128). Both views pass through the same network; the loss is
NT-Xent at temperature 0.07, over the global batch when the batch is split over
ranks (``nt_xent`` gathers every rank's embeddings). Training: SGD lr 0.1, momentum 0.9, weight decay
1e-6, cosine schedule to 1e-4, SimCLR views (``ssl_transforms``), starting
from ImageNet weights (``init='imagenet'``) of any ResNet depth.
"""
from __future__ import annotations

from typing import Optional

import torch
from mmengine.model import BaseModel
from torch import nn

from matssl_bench.models.foreign_checkpoints import load_authors_matssl
from matssl_bench.models.encoders import build_resnet, load_encoder_state, stage_channels
from matssl_bench.models.losses import nt_xent
from matssl_bench.method_api import SSLMethod
from matssl_bench.registry import METHODS, MODELS


class GatedMultiStageEncoder(nn.Module):
    """A torchvision ResNet whose four pooled stage outputs are gated and concatenated."""

    def __init__(self, arch: str):
        super().__init__()
        self.backbone = build_resnet(arch)
        self.backbone.fc = nn.Identity()  # unused; DDP refuses parameters without gradients
        self.gates = nn.ParameterList(nn.Parameter(torch.ones(1, c)) for c in stage_channels(arch))

    @property
    def out_features(self) -> int:
        return sum(g.shape[1] for g in self.gates)

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        net = self.backbone
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        features = []
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            x = layer(x)
            features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [f.mean(dim=(2, 3)) for f in self.stage_features(x)]
        return torch.cat([torch.sigmoid(g) * p for g, p in zip(self.gates, pooled)], dim=1)


def projection_head(in_features: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, out, bias=False), nn.BatchNorm1d(out))


@MODELS.register_module()
class MatSSLModel(BaseModel):
    """Both views pass through the same encoder and head; the loss is NT-Xent."""

    def __init__(self, arch: str = 'resnet50', hidden_dim: int = 2048, out_dim: int = 128,
                 temperature: float = 0.07, data_preprocessor: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.encoder = GatedMultiStageEncoder(arch)
        self.head = projection_head(self.encoder.out_features, hidden_dim, out_dim)
        self.temperature = temperature

    @property
    def backbone(self) -> nn.Module:
        return self.encoder.backbone

    def load_authors_checkpoint(self, checkpoint) -> None:
        """Load the MatSSL authors' checkpoint (backbone, gates and head), strictly."""
        load_authors_matssl(self, checkpoint)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        if mode == 'tensor':
            return self.embed(inputs)
        if mode == 'loss':
            view1, view2 = inputs
            return dict(loss=nt_xent(self.embed(view1), self.embed(view2), self.temperature))
        raise ValueError(f'MatSSLModel has no {mode!r} mode')


@METHODS.register_module()
class MatSSL(SSLMethod):
    """The paper's method: ImageNet-initialised ResNet adapted by gated multi-stage NT-Xent."""

    source = "this suite, after the authors' code (checked against their module)"

    # SGD 0.1 / 0.9 / 1e-6, cosine to 1e-4 and SimCLR views come from SSLMethod.defaults.
    defaults = dict(SSLMethod.defaults, hidden_dim=2048, out_dim=128, temperature=0.07)

    def build_model(self, arch, initial_state):
        model = MatSSLModel(arch, hidden_dim=self.hparams['hidden_dim'],
                            out_dim=self.hparams['out_dim'],
                            temperature=self.hparams['temperature'])
        if initial_state is not None:
            load_encoder_state(model.backbone, initial_state, 'MatSSL initial encoder')
        return model

