import math

import numpy as np
import pytest
import torch

from matssl_bench.evaluation.metrics import PooledIoUMetric, iou_from_areas


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


def test_authors_batch_metric_differs_from_pooled_on_a_constructed_case():
    from matssl_bench.evaluation.metrics import summarize, unit_scores
    # 129 patches: batch 1 = 128 patches where class 1 is absent, batch 2 = one patch with it.
    inter = np.zeros((129, 2))
    union = np.zeros((129, 2))
    inter[:128, 0] = union[:128, 0] = 100      # class 0 perfect in batch 1
    inter[128] = [50, 10]
    union[128] = [100, 40]
    pooled_iou, pooled = unit_scores(inter, union, 'pooled')
    batch_iou, batch = unit_scores(inter, union, 'authors-batch')
    assert pooled_iou == pytest.approx([12850 / 12900, 10 / 40])
    # batch 1: class 1 has an empty union and scores 0 there; batch 2: 0.5 and 0.25
    assert batch_iou == pytest.approx([(1.0 + 0.5) / 2, (0.0 + 0.25) / 2])
    assert batch == pytest.approx((0.75 + 0.125) / 2) and abs(batch - pooled) > 0.1
    units = [dict(name=f'img@{i},0', intersection=list(i_), union=list(u), gt_area=list(u),
                  pred_area=list(u)) for i, (i_, u) in enumerate(zip(inter, union))]
    cfg = dict(convention='authors-batch', class_names=['a', 'b'], mean_classes=None)
    assert summarize(units, cfg)['mIoU'] == pytest.approx(100 * batch)
    assert summarize(units, dict(cfg, convention='published'))['mIoU'] == pytest.approx(100 * pooled)


def test_metric_over_whole_images_matches_summarize():
    metric = PooledIoUMetric(num_classes=2, class_names=['bg', 'fg'], convention='authors-batch',
                             batch_units=1)
    metric.process(None, [_sample([[0, 1], [1, 1]], [[0, 1], [0, 1]])])
    metric.process(None, [_sample([[0, 0], [0, 0]], [[0, 0], [0, 1]])])
    out = metric.compute_metrics(metric.results)
    # per batch of one: (bg 1/2, fg 2/3) and (bg 3/4, fg 0/1 -> 0)
    assert out['IoU.bg'] == pytest.approx(100 * (1 / 2 + 3 / 4) / 2)
    assert out['IoU.fg'] == pytest.approx(100 * (2 / 3 + 0) / 2)
