"""Published encoder weights found on disk, never downloaded behind the user's back.

Two families: torchvision's supervised ImageNet ResNets and NASA's MicroNet
ResNets (pretrained-microscopy-models). A file is looked for under its
published name in ``$MATSSL_WEIGHTS`` (when set) and then in the torch cache
``$TORCH_HOME/hub/checkpoints``; a missing file is a MissingResourceError
naming the file and the folder to put it in.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import torch
import torchvision

from .errors import MissingResourceError

WEIGHTS_ENV = 'MATSSL_WEIGHTS'
MICRONET_URL = 'https://nasa-public-data.s3.amazonaws.com/microscopy_segmentation_models/'
MICRONET_VARIANTS = {'micronet': 'microscopynet', 'image-micronet': 'imagenet-microscopynet'}


def torch_checkpoint_dir() -> Path:
    """The standard torch cache folder for weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / 'checkpoints'


def weight_dirs(folder: Optional[os.PathLike] = None) -> list[Path]:
    """Folders searched for weight files, in order: ``folder``, ``$MATSSL_WEIGHTS``, the torch cache."""
    dirs = [Path(folder).expanduser()] if folder else []
    if os.environ.get(WEIGHTS_ENV):
        dirs.append(Path(os.environ[WEIGHTS_ENV]).expanduser())
    dirs.append(torch_checkpoint_dir())
    return dirs


def find_weight_file(what: str, names: Sequence[str], urls: Sequence[str],
                     path: Optional[os.PathLike] = None,
                     folder: Optional[os.PathLike] = None) -> Path:
    """``path`` if given, else the first of ``names`` found in :func:`weight_dirs`."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise MissingResourceError(f'{what}: {path} does not exist')
        return path
    dirs = weight_dirs(folder)
    for d in dirs:
        for name in names:
            if (d / name).is_file():
                return d / name
    target = dirs[0] / names[0]
    raise MissingResourceError(
        f'{what} not found: download {urls[0]} and place it at {target} '
        f'(searched {", ".join(map(str, dirs))} for {", ".join(names)}; or pass weights_path=...)')


def imagenet_weight_urls(arch: str) -> list[str]:
    """Published URLs of torchvision's ImageNet weights for ``arch``, newest enum first."""
    urls = [w.url for w in torchvision.models.get_model_weights(arch)]
    if arch == 'resnet50':  # the historical file smp and the MatSSL authors' code used
        urls.append('https://download.pytorch.org/models/resnet50-19c8e357.pth')
    return urls


def find_imagenet_weights(arch: str, path: Optional[os.PathLike] = None,
                          folder: Optional[os.PathLike] = None) -> Path:
    urls = imagenet_weight_urls(arch)
    return find_weight_file(f'ImageNet weights for {arch}', [u.rsplit('/', 1)[-1] for u in urls],
                            urls, path, folder)


def micronet_file_names(arch: str, variant: str = 'micronet') -> list[str]:
    """Published MicroNet file names for ``arch``, preferred first.

    As pretrained-microscopy-models names them: ``<arch>_pretrained_<set>_v<version>.pth.tar``
    with set ``microscopynet`` (variant ``micronet``) or ``imagenet-microscopynet``
    (``image-micronet``); only ResNet-50 MicroNet has version 1.1.
    """
    if variant not in MICRONET_VARIANTS:
        raise ValueError(f'MicroNet variant must be one of {sorted(MICRONET_VARIANTS)}, got {variant!r}')
    versions = ('1.1', '1.0') if (arch, variant) == ('resnet50', 'micronet') else ('1.0',)
    return [f'{arch}_pretrained_{MICRONET_VARIANTS[variant]}_v{v}.pth.tar' for v in versions]


def find_micronet_weights(arch: str, variant: str = 'micronet', path: Optional[os.PathLike] = None,
                          folder: Optional[os.PathLike] = None) -> Path:
    names = micronet_file_names(arch, variant)
    return find_weight_file(f'MicroNet ({variant}) weights for {arch}', names,
                            [MICRONET_URL + n for n in names], path, folder)


def load_imagenet_encoder(arch: str, path: Optional[os.PathLike] = None,
                          folder: Optional[os.PathLike] = None) -> dict[str, torch.Tensor]:
    """The verified torchvision ImageNet encoder of ``arch`` (classifier dropped)."""
    from .checkpoints import convert_file
    return convert_file(find_imagenet_weights(arch, path, folder), arch, layout='torchvision').state


def load_micronet_encoder(arch: str, variant: str = 'micronet', path: Optional[os.PathLike] = None,
                          folder: Optional[os.PathLike] = None) -> dict[str, torch.Tensor]:
    """The verified MicroNet encoder of ``arch`` (a ``module.`` prefix and the classifier dropped)."""
    from .checkpoints import convert_file
    return convert_file(find_micronet_weights(arch, variant, path, folder), arch,
                        layout='torchvision').state
