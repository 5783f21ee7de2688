"""Patch grids, one formula for every data set.

Along one axis of length ``L`` with patch size ``p`` and overlap ``o`` in [0, 1):
``stride = max(1, round(p * (1 - o)))`` and the number of patches is
``0 if L < p else (L - p) // stride + 1``, with origins ``0, stride, 2*stride, ...``.
The count for an image is the product of its two axes.
"""
from __future__ import annotations

import numpy as np


def patch_stride(patch: int, overlap: float) -> int:
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f'overlap must be in [0, 1), got {overlap}')
    if patch < 1:
        raise ValueError(f'patch size must be positive, got {patch}')
    return max(1, int(round(patch * (1.0 - overlap))))


def patch_origins(length: int, patch: int, overlap: float = 0.0) -> list[int]:
    stride = patch_stride(patch, overlap)
    if length < patch:
        return []
    return list(range(0, length - patch + 1, stride))


def count_patches(height: int, width: int, patch: int, overlap: float = 0.0) -> int:
    return len(patch_origins(height, patch, overlap)) * len(patch_origins(width, patch, overlap))


def patch_grid(height: int, width: int, patch: int, overlap: float = 0.0) -> list[tuple[int, int]]:
    """(top, left) origins of every patch, row by row."""
    return [(y, x) for y in patch_origins(height, patch, overlap)
            for x in patch_origins(width, patch, overlap)]


def crop(array: np.ndarray, top: int, left: int, patch: int) -> np.ndarray:
    return array[top:top + patch, left:left + patch]
