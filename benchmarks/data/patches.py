"""PyTorch datasets over micrograph sources: fixed patch grids for fine-tuning, two views for SSL."""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from matssl_bench.data_api import LabeledImage, UnlabeledImage
from matssl_bench.errors import DataError
from matssl_bench.data.patching import crop, patch_grid
from matssl_bench.data.sampling import SampleKey, sample_randomness
from matssl_bench.registry import DATASETS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_normalized_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float normalised with ImageNet statistics."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (tensor - mean) / std


def _target_size(shape: tuple[int, ...], size: Optional[int], factor: Optional[float]):
    if size:
        return (size, size)
    return (max(1, round(shape[1] * factor)), max(1, round(shape[0] * factor)))


def resize_items(items: Sequence, size: Optional[int] = None,
                 factor: Optional[float] = None) -> list:
    """Resize labeled or unlabeled images: to ``size x size`` (the authors' EBC input) or by
    ``factor`` (CPU-sized suites). Images bilinear, masks nearest; no-op when both are unset."""
    if not size and not factor:
        return list(items)
    out = []
    for item in items:
        wh = _target_size(item.image.shape, size, factor)
        image = np.asarray(Image.fromarray(item.image).resize(wh, Image.BILINEAR))
        if isinstance(item, LabeledImage):
            mask = np.asarray(Image.fromarray(item.mask).resize(wh, Image.NEAREST))
            out.append(LabeledImage(item.name, image, mask))
        else:
            out.append(UnlabeledImage(item.name, image, item.overlap))
    return out


def _patch_index(sizes: Sequence[tuple[int, int]], names: Sequence[str], patch: int,
                 overlaps: Sequence[float]) -> list[tuple[int, int, int]]:
    index = []
    for i, ((h, w), name, overlap) in enumerate(zip(sizes, names, overlaps)):
        grid = patch_grid(h, w, patch, overlap)
        if not grid:
            raise DataError(f'{name}: image of {w}x{h} is smaller than the {patch}x{patch} patch')
        index += [(i, y, x) for y, x in grid]
    return index


@DATASETS.register_module()
class SegmentationPatches(Dataset):
    """Every patch of a fixed grid over labeled images (non-overlapping by default, as the paper)."""

    def __init__(self, items: Sequence[LabeledImage], patch_size: int, overlap: float = 0.0):
        self.items = list(items)
        self.patch_size = patch_size
        self.index = _patch_index([it.image.shape[:2] for it in self.items],
                                  [it.name for it in self.items], patch_size,
                                  [overlap] * len(self.items))

    def __len__(self) -> int:
        return len(self.index)

    def patch(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw (image, mask) arrays of patch ``idx``."""
        i, top, left = self.index[idx]
        item = self.items[i]
        return crop(item.image, top, left, self.patch_size), crop(item.mask, top, left,
                                                                  self.patch_size)

    def __getitem__(self, idx: int) -> dict:
        image, mask = self.patch(idx)
        return dict(inputs=to_normalized_tensor(image),
                    data_samples=dict(gt=torch.from_numpy(np.ascontiguousarray(mask)).long(),
                                      index=idx))


@DATASETS.register_module()
class TwoViewPatches(Dataset):
    """Patches of unlabeled images, each returned as two random augmented views, or, with
    no ``view_transform``, as the uint8 patch itself (3 x H x W), whose views the training
    device makes from the batch (``ssl_views.DeviceViews``).

    An image's own ``overlap`` (its source's pretraining overlap) takes
    precedence over ``default_overlap``. An index may be a :class:`SampleKey` (loader
    workers): its views are then drawn from that sample's own random stream.
    """

    random_samples = True  # a loader with workers hands out SampleKeys (sampling.py)

    def __init__(self, items: Sequence[UnlabeledImage], patch_size: int, default_overlap: float,
                 view_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        self.items = list(items)
        self.patch_size = patch_size
        self.view_transform = view_transform
        self.index = _patch_index(
            [it.image.shape[:2] for it in self.items], [it.name for it in self.items], patch_size,
            [default_overlap if it.overlap is None else it.overlap for it in self.items])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: Union[int, SampleKey]) -> dict:
        with sample_randomness(key) as idx:
            i, top, left = self.index[idx]
            patch = crop(self.items[i].image, top, left, self.patch_size)
            uint8 = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)
            if self.view_transform is None:
                return dict(inputs=uint8, data_samples=dict(index=idx))
            return dict(inputs=[self.view_transform(uint8), self.view_transform(uint8)],
                        data_samples=dict(index=idx))
