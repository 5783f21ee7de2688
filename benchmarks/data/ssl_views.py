"""SimCLR-style view augmentation shared by the contrastive methods."""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from matssl_bench.data.patches import IMAGENET_MEAN, IMAGENET_STD


def simclr_view_transform(size: int, crop_scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1),
                          jitter_p: float = 0.8, grayscale_p: float = 0.2, blur_p: float = 0.5,
                          blur_sigma=(0.1, 2.0), resize=None) -> v2.Compose:
    """uint8 3xHxW tensor -> normalised float view. The blur kernel scales as 23 px at 224 px.
    ``resize``: resize the patch to this size first (the authors' code: 224 before the crop)."""
    kernel = max(3, int(round(23 * size / 224)) | 1)
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
