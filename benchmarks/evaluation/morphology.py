"""Morphology from masks (the carbide quantification of the training-tricks paper): per image,
the number and mean equivalent radius of connected regions of one class in the prediction
and the truth, and their relative errors.

Regions are 8-connected components (scipy.ndimage.label), as contours in OpenCV; the
equivalent radius of a region is that of the disc of the same area, sqrt(area / pi), in
pixels of the evaluated image.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from scipy import ndimage

from matssl_bench.data_api import MicrographSet
from matssl_bench.evaluation.segmenter import load_segmenter
from matssl_bench.evaluation.sharding import sharded
from matssl_bench.evaluation.sliding_window import default_stride, model_logits_fn, slide_logits

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def regions(mask: np.ndarray, class_id: int) -> tuple[int, float]:
    """Number of connected regions of ``class_id`` and their mean equivalent radius (NaN if none)."""
    labels, count = ndimage.label(np.asarray(mask) == class_id, structure=EIGHT_CONNECTED)
    if count == 0:
        return 0, float('nan')
    areas = np.bincount(labels.ravel())[1:]
    return int(count), float(np.sqrt(areas / math.pi).mean())


def _relative(pred: float, true: float) -> float:
    return (pred - true) / true if true and not math.isnan(true) else float('nan')


def region_stats(pred_mask: np.ndarray, true_mask: np.ndarray, class_id: int) -> dict:
    """Counts, mean equivalent radii (px) and relative errors of ``class_id``'s regions."""
    if np.shape(pred_mask) != np.shape(true_mask):
        raise ValueError(f'prediction {np.shape(pred_mask)} and truth {np.shape(true_mask)} '
                         'differ in size')
    count_pred, radius_pred = regions(pred_mask, class_id)
    count_true, radius_true = regions(true_mask, class_id)
    return dict(class_id=int(class_id), count_pred=count_pred, count_true=count_true,
                count_rel_error=_relative(count_pred, count_true),
                mean_radius_pred=radius_pred, mean_radius_true=radius_true,
                radius_rel_error=_relative(radius_pred, radius_true))


def evaluate_morphology(weights: Path, data: MicrographSet, split: str, arch: str, scale: dict,
                        classes: Sequence, precision: str = 'fp32') -> list[dict]:
    """One row per image of ``split`` and chosen class (name or id) with :func:`region_stats`;
    under several processes each rank predicts its share of the images (rows gathered)."""
    from matssl_bench.data.patches import resize_items

    ids = [data.classes.index(c) if isinstance(c, str) else int(c) for c in classes]
    for c, i in zip(classes, ids):
        if not 0 <= i < data.num_classes:
            raise ValueError(f'{data.name}: no class {c!r}; classes: {", ".join(data.classes)}')
    model, _ = load_segmenter(weights, arch, data.num_classes, scale, precision)
    logits_fn = model_logits_fn(model)
    window = scale['patch_size']
    stride = default_stride(window, scale.get('eval_stride'))
    batch = scale.get('eval_batch_size', 8)
    items = resize_items(data.labeled_split(split), scale.get('resize'), scale.get('rescale'))

    def image_rows(item) -> list[dict]:
        with torch.no_grad():
            logits = slide_logits(logits_fn, item.image, window, stride, batch)
        pred = logits.argmax(0).numpy().astype(np.uint8)
        return [dict(image=item.name, class_name=data.classes[class_id],
                     **region_stats(pred, item.mask, class_id)) for class_id in ids]

    per_image = sharded(len(items), lambda positions: [image_rows(items[i]) for i in positions])
    return [row for rows in per_image for row in rows]
