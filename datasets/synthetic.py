"""Procedural multi-phase micrographs with exact labels: the embedded default data set.

Each image is a Voronoi grain structure: matrix grains at slightly different
grey levels, some grains of a lamellar second phase, dark grain boundaries and
a few round pores with bright rims, then blur, an illumination gradient and
noise, like an etched SEM micrograph. Image ``i`` of split ``s`` depends only
on ``(seed, s, i)``, so every split is reproducible on its own.
"""
from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

from matssl_bench.data_api import LabeledImage, MicrographSet, UnlabeledImage
from matssl_bench.registry import MICROGRAPH_SETS

MATRIX, SECOND_PHASE, BOUNDARY, PORE = range(4)


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


def _box_blur(img: np.ndarray, radius: int) -> np.ndarray:
    if radius < 1:
        return img
    padded = np.pad(img, radius, mode='edge')
    size = 2 * radius + 1
    out = np.zeros_like(img)
    for dy in range(size):
        for dx in range(size):
            out += padded[dy:dy + img.shape[0], dx:dx + img.shape[1]]
    return out / size ** 2


# Two synthetic "materials" with the same classes but a different look (grain size, lamella
# spacing, contrast, blur, noise), so transfer between data sets is defined; 'A' is the default.
MATERIALS = dict(
    A=dict(grain_density=1.0, lamella_period=(3.0, 6.0), matrix_grey=(0.38, 0.5),
           phase_grey=(0.62, 0.18), boundary_grey=0.22, blur=1, noise=(0.02, 0.05)),
    B=dict(grain_density=0.5, lamella_period=(6.0, 10.0), matrix_grey=(0.5, 0.6),
           phase_grey=(0.3, 0.25), boundary_grey=0.85, blur=2, noise=(0.05, 0.08)),
)


def generate_micrograph(rng: np.random.Generator, size: int,
                        material: str = 'A') -> tuple[np.ndarray, np.ndarray]:
    """One ``size x size`` micrograph (HxWx3 uint8) and its mask (HxW uint8)."""
    look = MATERIALS[material]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    n_grains = int(rng.integers(12, 28) * look['grain_density'] * (size / 128) ** 2) + 4
    centres = rng.uniform(0, size, size=(n_grains, 2)).astype(np.float32)
    stretch = rng.uniform(0.7, 1.4)  # mildly elongated grains, as after rolling
    dist = (yy[..., None] - centres[:, 0]) ** 2 * stretch + (xx[..., None] - centres[:, 1]) ** 2
    grain = dist.argmin(axis=-1)

    is_second = rng.random(n_grains) < rng.uniform(0.25, 0.45)
    mask = np.where(is_second[grain], SECOND_PHASE, MATRIX).astype(np.uint8)

    edge = np.zeros((size, size), bool)
    edge[:, :-1] |= grain[:, :-1] != grain[:, 1:]
    edge[:-1, :] |= grain[:-1, :] != grain[1:, :]
    edge[:, 1:] |= edge[:, :-1].copy()
    mask[edge] = BOUNDARY

    grey = rng.uniform(*look['matrix_grey'], n_grains)[grain]
    angle = rng.uniform(0, np.pi, n_grains)[grain]
    period = rng.uniform(*look['lamella_period'], n_grains)[grain]
    lamellae = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    base, amplitude = look['phase_grey']
    img = np.where(mask == SECOND_PHASE, base + amplitude * lamellae, grey)
    img[edge] = look['boundary_grey']

    for _ in range(int(rng.integers(0, 4))):
        cy, cx = rng.uniform(0, size, 2)
        radius = rng.uniform(2.0, 5.0) * size / 128
        r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        img[(r >= radius) & (r < radius + 1.5)] = 0.85
        img[r < radius] = 0.06
        mask[r < radius] = PORE

    img = _box_blur(img.astype(np.float32), look['blur'])
    gy, gx = rng.normal(0, 0.08, 2)
    img = img + gy * (yy / size - 0.5) + gx * (xx / size - 0.5)
    img = img + rng.normal(0, rng.uniform(*look['noise']), img.shape)
    tint = 1.0 + rng.normal(0, 0.02, 3)
    rgb = np.clip(img[..., None] * tint * 255.0, 0, 255).astype(np.uint8)
    return rgb, mask


@lru_cache(maxsize=64)
def _split_cached(seed: int, split: str, count: int, size: int, material: str = 'A') -> tuple:
    stream = split if material == 'A' else f'{material}-{split}'
    return tuple(generate_micrograph(_rng(seed, stream, i), size, material) for i in range(count))


@MICROGRAPH_SETS.register_module()
class SyntheticMicrographs(MicrographSet):
    """Embedded default: labeled train/val/test splits and an unlabeled pool, no files needed."""

    classes = ('matrix', 'second phase', 'grain boundary', 'pore')
    palette = ((40, 40, 40), (230, 180, 60), (60, 120, 230), (220, 60, 60))

    def __init__(self, size: int = 128, train: int = 12, val: int = 4, test: int = 4,
                 unlabeled: int = 48, seed: int = 0, material: str = 'A'):
        if material not in MATERIALS:
            raise ValueError(f'SyntheticMicrographs: unknown material {material!r}; '
                             f'choose one of {", ".join(MATERIALS)}')
        self.size = size
        self.counts = dict(train=train, val=val, test=test, unlabeled=unlabeled)
        self.seed = seed
        self.material = material
        # image names stay global: material B's images are named apart from A's
        self.prefix = 'synthetic' if material == 'A' else f'synthetic{material}'

    def _images(self, split: str):
        return _split_cached(self.seed, split, self.counts[split], self.size, self.material)

    def labeled_split(self, split: str) -> list[LabeledImage]:
        self.check_split(split)
        return [LabeledImage(f'{self.prefix}-{split}-{i:03d}', img, mask)
                for i, (img, mask) in enumerate(self._images(split))]

    def unlabeled_pool(self, exclude=()) -> list[UnlabeledImage]:
        """The unlabeled split plus the training images (as MetalDAM's pool includes them)."""
        pool = [UnlabeledImage(f'{self.prefix}-unlabeled-{i:03d}', img)
                for i, (img, _) in enumerate(self._images('unlabeled'))]
        pool += [UnlabeledImage(item.name, item.image) for item in self.labeled_split('train')]
        excluded = set(exclude)
        return [item for item in pool if item.name not in excluded]
