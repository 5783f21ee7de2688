"""IoU from per-unit pixel counts, under a named convention; one code path for records and tables.

A scored *unit* is a whole image (``clean``) or a patch (``published``); records keep each
unit's per-class ``intersection``, ``union``, ``pred_area`` and ``gt_area``. Conventions:

- ``clean``: counts pooled over every unit; mIoU is the mean over classes present in
  prediction or truth (mmseg's default: an empty union is NaN, left out of the mean).
- ``pooled``: counts pooled over every unit; an empty union scores 0 and the mean runs
  over ``mean_classes`` (MetalDAM leaves out class 3). Records from before the
  ``authors-batch`` convention call this ``published``.
- ``authors-batch``: what the MatSSL authors' code computes: per evaluation batch of
  ``batch_units`` (128) patches in evaluation order, IoU per class (an empty union scores
  0 in that batch), averaged over batches; the mean runs over ``mean_classes``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from mmseg.evaluation import IoUMetric

from matssl_bench.registry import METRICS

CONVENTIONS = ('clean', 'pooled', 'authors-batch')
ALIASES = {'published': 'pooled'}
AUTHORS_BATCH = 128


def canonical_convention(convention: str) -> str:
    convention = ALIASES.get(convention, convention)
    if convention not in CONVENTIONS:
        raise ValueError(f'unknown mIoU convention {convention!r}: use one of '
                         f'{", ".join(CONVENTIONS)}')
    return convention


def _mean(iou: np.ndarray, mean_classes: Optional[Sequence[int]], skip_nan: bool) -> np.ndarray:
    chosen = iou if mean_classes is None else iou[..., list(mean_classes)]
    if not skip_nan:
        return chosen.mean(-1)
    finite = np.isfinite(chosen)
    total = np.where(finite, chosen, 0.0).sum(-1)
    with np.errstate(divide='ignore', invalid='ignore'):
        return total / finite.sum(-1)  # NaN where no class is present


def pooled_scores(intersect, union, convention: str,
                  mean_classes: Optional[Sequence[int]] = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-class IoU (..., C) and mIoU (...) from pooled counts (..., C), as fractions."""
    convention = canonical_convention(convention)
    if convention == 'authors-batch':
        raise ValueError('authors-batch needs per-unit counts: use unit_scores')
    intersect = np.asarray(intersect, dtype=np.float64)
    union = np.asarray(union, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = intersect / union
    if convention == 'pooled':
        iou = np.where(union > 0, iou, 0.0)
        return iou, _mean(iou, mean_classes, skip_nan=False)
    return iou, _mean(iou, mean_classes, skip_nan=True)


def authors_batch_scores(intersect, union, mean_classes: Optional[Sequence[int]] = None,
                         batch_units: int = AUTHORS_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Per-class IoU and mIoU from per-unit counts (..., N, C) in evaluation order, per batch
    of ``batch_units`` units (the last batch may be smaller), averaged over batches."""
    intersect = np.asarray(intersect, dtype=np.float64)
    union = np.asarray(union, dtype=np.float64)
    units = intersect.shape[-2]
    batches = -(-units // batch_units)
    pad = batches * batch_units - units
    if pad:
        widths = [(0, 0)] * (intersect.ndim - 2) + [(0, pad), (0, 0)]
        intersect, union = np.pad(intersect, widths), np.pad(union, widths)
    shape = intersect.shape[:-2] + (batches, batch_units, intersect.shape[-1])
    inter_b = intersect.reshape(shape).sum(-2)
    union_b = union.reshape(shape).sum(-2)
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where(union_b > 0, inter_b / union_b, 0.0).mean(-2)
    return iou, _mean(iou, mean_classes, skip_nan=False)


def unit_scores(intersect, union, convention: str, mean_classes: Optional[Sequence[int]] = None,
                batch_units: int = AUTHORS_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Per-class IoU and mIoU (fractions) from per-unit counts (..., N, C)."""
    if canonical_convention(convention) == 'authors-batch':
        return authors_batch_scores(intersect, union, mean_classes, batch_units)
    return pooled_scores(np.asarray(intersect).sum(-2), np.asarray(union).sum(-2), convention,
                         mean_classes)


def iou_from_areas(intersect, union, convention: str,
                   mean_classes: Optional[Sequence[int]] = None) -> tuple[np.ndarray, float]:
    """Per-class IoU and mIoU from pooled intersection/union pixel counts."""
    iou, miou = pooled_scores(intersect, union, convention, mean_classes)
    return iou, float(miou)


def unit_arrays(units: Sequence[dict], key: str) -> np.ndarray:
    """One per-class count list of every unit as an (N, C) float array."""
    return np.asarray([u[key] for u in units], dtype=np.float64)


def summarize(units: Sequence[dict], metric_cfg: dict) -> dict:
    """mIoU, aAcc and per-class IoU (%) of per-unit records under ``metric_cfg``'s convention.

    Records and ``make_tables.py`` both take their numbers from here.
    """
    inter, union = unit_arrays(units, 'intersection'), unit_arrays(units, 'union')
    iou, miou = unit_scores(inter, union, metric_cfg.get('convention', 'clean'),
                            metric_cfg.get('mean_classes'),
                            metric_cfg.get('batch_units', AUTHORS_BATCH))
    gt_total = unit_arrays(units, 'gt_area').sum()
    metrics = dict(mIoU=100.0 * float(miou), aAcc=100.0 * float(inter.sum() / max(gt_total, 1)))
    for name, value in zip(metric_cfg['class_names'], iou):
        metrics[f'IoU.{name}'] = 100.0 * float(value) if np.isfinite(value) else float('nan')
    return metrics


@METRICS.register_module()
class PooledIoUMetric(IoUMetric):
    """mmseg IoUMetric that scores per-unit counts with :func:`summarize` (any convention)."""

    default_prefix = ''  # names stay 'mIoU', ...; None would log a warning per validation

    def __init__(self, num_classes: int, class_names: Sequence[str], convention: str = 'clean',
                 mean_classes: Optional[Sequence[int]] = None, ignore_index: int = 255,
                 batch_units: int = AUTHORS_BATCH, collect_dir: Optional[str] = None,
                 **kwargs):
        super().__init__(ignore_index=ignore_index, iou_metrics=['mIoU'], **kwargs)
        # where ranks meet to collect results (mmengine's default: ./.dist_test); mmseg's
        # IoUMetric does not pass it on to mmengine's BaseMetric
        self.collect_dir = collect_dir
        self.num_classes = num_classes
        self.metric_cfg = dict(num_classes=num_classes, class_names=list(class_names),
                               convention=canonical_convention(convention),
                               mean_classes=list(mean_classes) if mean_classes is not None
                               else None, batch_units=batch_units)

    def process(self, data_batch, data_samples) -> None:
        # Counted on the CPU: mmseg's intersect_and_union uses torch.histc, which has no
        # deterministic CUDA kernel (an error under deterministic algorithms).
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data'].squeeze().cpu()
            label = sample['gt_sem_seg']['data'].squeeze().cpu().to(pred)
            self.results.append(self.intersect_and_union(pred, label, self.num_classes,
                                                         self.ignore_index))

    def compute_metrics(self, results: list) -> dict:
        units = [dict(intersection=i.tolist(), union=u.tolist(), pred_area=p.tolist(),
                      gt_area=g.tolist()) for i, u, p, g in
                 ((part.cpu().numpy() for part in parts) for parts in results)]
        return summarize(units, self.metric_cfg)
