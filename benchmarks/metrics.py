"""Per-class IoU pooled over every pixel of the evaluated set (mmseg's IoUMetric accumulation).

Two conventions:
- ``clean``: mIoU is the mean over classes present in prediction or truth
  (mmseg's default, NaN for an empty union, ignored in the mean).
- ``published``: as the MatSSL authors' code: an empty union scores 0, and the
  mean runs over ``mean_classes`` only (MetalDAM leaves out class 3).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from mmseg.evaluation import IoUMetric

from .registry import METRICS


def iou_from_areas(intersect: np.ndarray, union: np.ndarray, convention: str,
                   mean_classes: Optional[Sequence[int]] = None) -> tuple[np.ndarray, float]:
    """Per-class IoU and mIoU from pooled intersection/union pixel counts."""
    intersect = np.asarray(intersect, dtype=np.float64)
    union = np.asarray(union, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = intersect / union
    if convention == 'published':
        iou = np.where(union > 0, iou, 0.0)
        chosen = iou if mean_classes is None else iou[list(mean_classes)]
        return iou, float(chosen.mean())
    if convention == 'clean':
        chosen = iou if mean_classes is None else iou[list(mean_classes)]
        return iou, float(np.nanmean(chosen)) if np.isfinite(chosen).any() else float('nan')
    raise ValueError(f'unknown mIoU convention {convention!r}')


@METRICS.register_module()
class PooledIoUMetric(IoUMetric):
    """mmseg IoUMetric that also reports per-class IoU, under a named convention."""

    def __init__(self, num_classes: int, class_names: Sequence[str], convention: str = 'clean',
                 mean_classes: Optional[Sequence[int]] = None, ignore_index: int = 255, **kwargs):
        super().__init__(ignore_index=ignore_index, iou_metrics=['mIoU'], **kwargs)
        self.num_classes = num_classes
        self.class_names = list(class_names)
        self.convention = convention
        self.mean_classes = list(mean_classes) if mean_classes is not None else None

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data'].squeeze()
            label = sample['gt_sem_seg']['data'].squeeze().to(pred)
            self.results.append(self.intersect_and_union(pred, label, self.num_classes,
                                                         self.ignore_index))

    def compute_metrics(self, results: list) -> dict:
        totals = [torch.stack(parts).sum(0).cpu().numpy() for parts in zip(*results)]
        intersect, union, _, label_area = totals
        iou, miou = iou_from_areas(intersect, union, self.convention, self.mean_classes)
        metrics = dict(mIoU=100.0 * miou,
                       aAcc=100.0 * float(intersect.sum() / max(label_area.sum(), 1)))
        for name, value in zip(self.class_names, iou):
            metrics[f'IoU.{name}'] = 100.0 * float(value) if np.isfinite(value) else float('nan')
        return metrics
