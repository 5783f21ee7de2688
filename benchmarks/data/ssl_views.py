"""SimCLR-style view augmentation shared by the contrastive methods, made in one of two places:

- ``'workers'``: :func:`simclr_view_transform` (torchvision) per patch in the data-loader
  workers, on the CPU; float views travel to the device.
- ``'device'``: :func:`simclr_batch_views` (kornia, per-sample random parameters) on the
  training device, from the uint8 patch batch the loader delivers (:class:`DeviceViews`, the
  model's data preprocessor): the loader only cuts and collates patches, and a quarter of
  the bytes travel (uint8, pinned, non-blocking). On a GPU the CPU cannot keep up otherwise
  (docs/gpu.md).

Both draw the same distributions (crop scale, flip, colour jitter, grey, blur sigma); the
kernels differ in detail (kornia resizes crops without antialiasing), so the pretraining
scale's ``views`` setting is part of a job's config.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from mmengine.model import BaseDataPreprocessor
from torch import nn
from torchvision.transforms import v2

from matssl_bench.data.patches import IMAGENET_MEAN, IMAGENET_STD
from matssl_bench.registry import MODELS

VIEW_PLACES = ('workers', 'device')


def blur_kernel(size: int) -> int:
    """The Gaussian blur's odd kernel side: 23 px at 224 px, scaled with the view."""
    return max(3, int(round(23 * size / 224)) | 1)


def simclr_view_transform(size: int, crop_scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1),
                          jitter_p: float = 0.8, grayscale_p: float = 0.2, blur_p: float = 0.5,
                          blur_sigma=(0.1, 2.0), resize=None) -> v2.Compose:
    """uint8 3xHxW tensor -> normalised float view. The blur kernel scales as 23 px at 224 px.
    ``resize``: resize the patch to this size first (the authors' code: 224 before the crop)."""
    kernel = blur_kernel(size)
    return v2.Compose([
        *([v2.Resize((resize, resize), antialias=True)] if resize else []),
        v2.RandomResizedCrop(size, scale=tuple(crop_scale), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(*jitter)], p=jitter_p),
        v2.RandomGrayscale(p=grayscale_p),
        v2.RandomApply([v2.GaussianBlur(kernel, sigma=tuple(blur_sigma))], p=blur_p),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def simclr_batch_views(size: int, crop_scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1),
                       jitter_p: float = 0.8, grayscale_p: float = 0.2, blur_p: float = 0.5,
                       blur_sigma=(0.1, 2.0), resize=None) -> nn.Module:
    """The views of :func:`simclr_view_transform` on a batch (N x 3 x H x W floats in [0, 1],
    any device), each sample with its own random parameters (kornia)."""
    import kornia.augmentation as K

    kernel = blur_kernel(size)
    return K.AugmentationSequential(
        *([K.Resize((resize, resize), antialias=True)] if resize else []),
        K.RandomResizedCrop((size, size), scale=tuple(crop_scale), align_corners=False),
        K.RandomHorizontalFlip(),
        K.ColorJitter(*jitter, p=jitter_p),
        K.RandomGrayscale(p=grayscale_p),
        K.RandomGaussianBlur((kernel, kernel), sigma=tuple(blur_sigma), p=blur_p),
        K.Normalize(mean=torch.tensor(IMAGENET_MEAN), std=torch.tensor(IMAGENET_STD)),
    )


@MODELS.register_module()
class DeviceViews(BaseDataPreprocessor):
    """An SSL model's data preprocessor making two views of each uint8 patch on the model's
    device: the batch moves there (non-blocking), becomes floats in [0, 1] and goes through
    ``views`` twice (channels-last with ``channels_last``).

    The views' random parameters come from a stream seeded with (``seed``, rank, batches made
    so far); the count is a buffer, so it travels in resume checkpoints: a resumed run draws
    what the uninterrupted one would, and each rank of a distributed run draws its own.
    """

    def __init__(self, views: nn.Module, channels_last: bool = False, seed: int = 0):
        super().__init__(non_blocking=True)
        self.views = views
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.seed = int(seed)
        self.register_buffer('batches_made', torch.zeros((), dtype=torch.int64))

    def _batch_seed(self) -> int:
        from mmengine.dist import get_rank

        words = np.random.SeedSequence([self.seed, get_rank(), int(self.batches_made)])
        return int(words.generate_state(1, np.uint64)[0] >> np.uint64(1))

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        images = data['inputs']
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f'DeviceViews expects N x 3 x H x W uint8 patches, got '
                             f'{images.dtype} {tuple(images.shape)}')
        images = images.float().div_(255.0)
        devices = [images.device] if images.device.type == 'cuda' else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(self._batch_seed())
            views = [self.views(images).contiguous(memory_format=self.memory_format)
                     for _ in range(2)]
        if training:
            self.batches_made += 1
        return dict(inputs=views, data_samples=data.get('data_samples'))


def view_place(scale: dict, where: Optional[str] = None) -> str:
    """A pretraining scale's ``views`` ('workers' by default), checked."""
    place = scale.get('views') or 'workers'
    if place not in VIEW_PLACES:
        raise ValueError(f'{where or "scale.pretrain"}: views must be one of '
                         f'{", ".join(VIEW_PLACES)}, got {place!r}')
    return place
