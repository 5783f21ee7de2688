"""Tiny files in the public layouts, written by the data-set tests themselves."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_DATA = Path(os.environ.get('MATSSL_SHARED_DATA',
                                  Path(__file__).resolve().parents[2] / 'shared' / 'data'))


def texture(seed: int, h: int, w: int) -> np.ndarray:
    """A distinct random grey micrograph (distinct seeds are never near-duplicates)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(h // 8, 4), max(w // 8, 4)), dtype=np.uint8)
    grey = np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))
    return np.repeat(grey[..., None], 3, axis=2)


def labels(seed: int, h: int, w: int, num_classes: int) -> np.ndarray:
    return np.random.default_rng(seed + 1000).integers(0, num_classes, (h, w), dtype=np.uint8)


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


GREY_LEVELS = np.array([0, 85, 170, 255], np.uint8)  # four classes stored as grey values


def grey_folder(root: Path, labeled: int, unlabeled: int = 0, size=(64, 64), stem: str = 's',
                unlabeled_stem: str = 'u') -> Path:
    """A Folder set: images/ + masks/ (classes 0-3 stored as grey 0/85/170/255), unlabeled/."""
    h, w = size
    for i in range(labeled):
        save(root / 'images' / f'{stem}{i}.png', texture(i, h, w))
        save(root / 'masks' / f'{stem}{i}.png', GREY_LEVELS[labels(i, h, w, 4)])
    for i in range(unlabeled):
        save(root / 'unlabeled' / f'{unlabeled_stem}{i}.png', texture(100 + i, h, w))
    return root


def fake_metaldam(root: Path, labeled: int = 5, unlabeled: int = 3, size=(40, 60)) -> Path:
    """Original-release layout: images/, labels/, unlabeled/."""
    h, w = size
    for i in range(labeled):
        save(root / 'images' / f'micrograph{i}.jpg', texture(i, h, w), quality=95)
        save(root / 'labels' / f'micrograph{i}.png', labels(i, h, w, 5))
    for i in range(unlabeled):
        save(root / 'unlabeled' / f'micrograph{i}.jpg', texture(100 + i, h, w), quality=95)
    return root
