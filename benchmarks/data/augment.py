"""Fine-tuning tricks on the training batches: augmentation, class-balanced random crops
and input downscaling. Every default keeps today's behaviour (the fixed patch grid, no
augmentation, full resolution).

Augmentation levels are cumulative: ``flips`` (horizontal and vertical, p 0.5 each),
``flips+rot90`` (+ a random multiple of 90 degrees), ``photometric`` (+ brightness and
contrast jitter, as the training-tricks paper's photometric distortion), ``strong``
(+ random scale, zooming in by up to 1/0.75, and elastic deformation). Geometric
transforms move image and mask together (torchvision.transforms.v2 with a ``Mask``,
nearest-neighbour for the mask). Class-balanced crops are mmseg's ``RandomCrop`` with
``cat_max_ratio`` (the paper: no class above 75 % of a crop).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from mmseg.datasets.transforms import RandomCrop
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from matssl_bench.data.patches import IMAGENET_MEAN, IMAGENET_STD, SegmentationPatches, resize_items
from matssl_bench.data.sampling import sample_randomness

AUGMENTATIONS = ('none', 'flips', 'flips+rot90', 'photometric', 'strong')


def augmentation(level: str, patch_size: int) -> Optional[v2.Transform]:
    """The transform of an augmentation level on (uint8 image tensor, Mask); None for 'none'."""
    if level not in AUGMENTATIONS:
        raise ValueError(f'unknown augmentation {level!r}; choose one of {", ".join(AUGMENTATIONS)}')
    rank = AUGMENTATIONS.index(level)
    steps = []
    if rank >= AUGMENTATIONS.index('flips'):
        steps += [v2.RandomHorizontalFlip(0.5), v2.RandomVerticalFlip(0.5)]
    if rank >= AUGMENTATIONS.index('flips+rot90'):
        steps.append(v2.RandomChoice([v2.RandomRotation((a, a)) for a in (0, 90, 180, 270)]))
    if rank >= AUGMENTATIONS.index('photometric'):
        steps.append(v2.RandomApply([v2.ColorJitter(brightness=0.3, contrast=0.3)], p=0.5))
    if rank >= AUGMENTATIONS.index('strong'):
        steps += [v2.RandomResizedCrop(patch_size, scale=(0.5625, 1.0), ratio=(1.0, 1.0),
                                       antialias=True),
                  v2.RandomApply([v2.ElasticTransform(alpha=30.0, sigma=5.0)], p=0.5)]
    return v2.Compose(steps) if steps else None


def _normalize(image: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image.float() / 255.0 - mean) / std


class AugmentedPatches(Dataset):
    """Training samples with the scale's tricks; as many per epoch as the patch grid has.

    ``balanced_crops`` replaces each grid patch by a random crop of the same image whose
    largest class covers at most ``cat_max_ratio`` of it (mmseg's RandomCrop, 10 tries).
    An index may be a ``sampling.SampleKey`` (loader workers): the sample's randomness
    then comes from its own stream.
    """

    random_samples = True  # a loader with workers hands out SampleKeys (sampling.py)

    def __init__(self, grid: SegmentationPatches, level: str = 'none',
                 balanced_crops: bool = False, cat_max_ratio: float = 0.75):
        self.grid = grid
        self.transform = augmentation(level, grid.patch_size)
        self.crop = (RandomCrop(crop_size=(grid.patch_size, grid.patch_size),
                                cat_max_ratio=cat_max_ratio) if balanced_crops else None)

    def __len__(self) -> int:
        return len(self.grid)

    def sample(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw (image, mask) the model is trained on for index ``idx`` this time."""
        if self.crop is None:
            image, mask = self.grid.patch(idx)
        else:
            item = self.grid.items[self.grid.index[idx][0]]
            out = self.crop.transform(dict(img=item.image, gt_seg_map=item.mask,
                                           seg_fields=['gt_seg_map']))
            image, mask = out['img'], out['gt_seg_map']
        if self.transform is None:
            return image, mask
        image_t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        mask_t = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask)))
        image_t, mask_t = self.transform(image_t, mask_t)
        return image_t.permute(1, 2, 0).numpy(), mask_t.numpy()

    def __getitem__(self, key) -> dict:
        with sample_randomness(key) as idx:
            image, mask = self.sample(idx)
        return dict(inputs=_normalize(torch.from_numpy(np.ascontiguousarray(image))
                                      .permute(2, 0, 1)),
                    data_samples=dict(gt=torch.from_numpy(np.ascontiguousarray(mask)).long(),
                                      index=idx))


def training_patches(grid: SegmentationPatches, scale: dict) -> Dataset:
    """The training set of a fine-tuning scale: ``grid`` itself unless a trick is set."""
    down = float(scale.get('downscale', 1.0))
    if down != 1.0:  # train on downscaled images; tta.py downscales at inference to match
        grid = SegmentationPatches(resize_items(grid.items, factor=down), grid.patch_size)
    level = scale.get('augment', 'none')
    balanced = bool(scale.get('balanced_crops', False))
    if level == 'none' and not balanced:
        return grid
    return AugmentedPatches(grid, level, balanced, scale.get('cat_max_ratio', 0.75))
