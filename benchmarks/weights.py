"""Supervised ImageNet weights: found on disk, never downloaded behind the user's back."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
import torchvision

from .encoders import build_resnet, check_encoder_state, encoder_only, read_state_dict
from .errors import MissingResourceError


def torch_checkpoint_dir() -> Path:
    """The standard torch cache folder for weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / 'checkpoints'


def imagenet_weight_urls(arch: str) -> list[str]:
    """Published URLs of torchvision's ImageNet weights for ``arch``, newest enum first."""
    weights_enum = torchvision.models.get_model_weights(arch)
    urls = [w.url for w in weights_enum]
    # smp's historical ResNet-50 file, which the MatSSL authors' code used.
    if arch == 'resnet50':
        urls.append('https://download.pytorch.org/models/resnet50-19c8e357.pth')
    return urls


def find_imagenet_weights(arch: str, path: Optional[os.PathLike] = None) -> Path:
    """Return the ImageNet weight file for ``arch`` or raise MissingResourceError saying where to put it."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise MissingResourceError(f'ImageNet weights for {arch}: {path} does not exist')
        return path
    folder = torch_checkpoint_dir()
    urls = imagenet_weight_urls(arch)
    for url in urls:
        candidate = folder / url.rsplit('/', 1)[-1]
        if candidate.is_file():
            return candidate
    raise MissingResourceError(
        f'ImageNet weights for {arch} not found: download {urls[0]} and place it at '
        f'{folder / urls[0].rsplit("/", 1)[-1]} (or pass weights_path=...)')


def load_imagenet_encoder(arch: str, path: Optional[os.PathLike] = None) -> dict[str, torch.Tensor]:
    """Read and verify the torchvision ImageNet state dict of ``arch`` (classifier dropped)."""
    file = find_imagenet_weights(arch, path)
    state = read_state_dict(file)
    check_encoder_state(build_resnet(arch), state, source=str(file))
    return encoder_only(state)
