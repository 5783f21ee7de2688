import math

import numpy as np
import pytest
import torch

from matssl_bench.metrics import PooledIoUMetric, iou_from_areas


def _sample(pred, gt):
    return dict(pred_sem_seg=dict(data=torch.tensor(pred)[None]),
                gt_sem_seg=dict(data=torch.tensor(gt)[None]))


def test_pooled_iou_over_images_not_mean_of_images():
    metric = PooledIoUMetric(num_classes=2, class_names=['bg', 'fg'])
    metric.process(None, [_sample([[0, 1], [1, 1]], [[0, 1], [0, 1]])])
    metric.process(None, [_sample([[0, 0], [0, 0]], [[0, 0], [0, 1]])])
    out = metric.compute_metrics(metric.results)
    # pooled: bg I=1+3=4 U=2+4=6 ; fg I=2 U=3+1=4
    assert out['IoU.bg'] == pytest.approx(100 * 4 / 6)
    assert out['IoU.fg'] == pytest.approx(100 * 2 / 4)
    assert out['mIoU'] == pytest.approx(100 * (4 / 6 + 2 / 4) / 2)


def test_conventions_differ_on_empty_class_and_mean_subset():
    intersect, union = np.array([5, 2, 0, 1]), np.array([10, 4, 0, 2])
    iou, clean = iou_from_areas(intersect, union, 'clean')
    assert math.isnan(iou[2]) and clean == pytest.approx((0.5 + 0.5 + 0.5) / 3)
    _, published = iou_from_areas(intersect, union, 'published')
    assert published == pytest.approx(1.5 / 4)  # empty union scores 0
    _, subset = iou_from_areas(intersect, union, 'published', mean_classes=[0, 1, 3])
    assert subset == pytest.approx(0.5)
    with pytest.raises(ValueError):
        iou_from_areas(intersect, union, 'other')
