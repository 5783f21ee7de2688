"""Whole-image sliding-window evaluation and per-image areas in fine-tuning results."""
import numpy as np
import pytest
import torch

from matssl_bench.data_api import LabeledImage, MicrographSet
from matssl_bench.evaluation.sliding_window import slide_logits, unit_areas, window_origins
from matssl_bench.engine.runner import selection_and_metric
from matssl_bench.engine import stages

SCALE = dict(epochs=1, batch_size=4, patch_size=32, lr=1e-3, decoder_channels=(16, 16, 8, 8, 8),
             num_workers=0, eval_batch_size=4)


class OddSizes(MicrographSet):
    """Three classes on images whose sides are not multiples of the 32 px patch."""
    classes = ('a', 'b', 'c')
    published_selection_split = 'val'

    def labeled_split(self, split):
        rng = np.random.default_rng(len(split))
        sizes = {'train': [(40, 52), (64, 45)], 'val': [(37, 50)], 'test': [(45, 70), (33, 33)]}
        return [LabeledImage(f'{split}{i}', rng.integers(0, 255, (h, w, 3), np.uint8),
                             rng.integers(0, 3, (h, w), np.uint8))
                for i, (h, w) in enumerate(sizes[split])]


def test_window_grid_covers_the_image_flush_with_the_border():
    assert window_origins(70, 32, 16) == [0, 16, 32, 38]
    assert window_origins(32, 32, 16) == [0]


def test_sliding_window_equals_one_forward_pass_when_the_image_fits():
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(4, 3, 1)).eval()
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)
    from matssl_bench.data.patches import to_normalized_tensor
    with torch.no_grad():
        whole = conv(to_normalized_tensor(image)[None])[0]
    slid = slide_logits(conv, image, window=32, stride=16)
    assert torch.allclose(slid, whole, atol=1e-6)


def test_overlapping_windows_are_averaged_and_small_images_padded():
    calls = []

    def position_logits(batch):  # logit = number of windows seen so far, per window
        calls.append(len(batch))
        return torch.ones(len(batch), 2, *batch.shape[2:])

    out = slide_logits(position_logits, np.zeros((20, 50, 3), np.uint8), window=32, stride=16,
                       batch_size=2)
    assert out.shape == (2, 20, 50) and torch.allclose(out, torch.ones_like(out))
    assert sum(calls) == len(window_origins(50, 32, 16)) and max(calls) <= 2


def test_unit_areas_count_pixels():
    pred = np.array([[0, 1], [2, 2]])
    truth = np.array([[0, 1], [1, 2]])
    areas = unit_areas('x', pred, truth, 3)
    assert areas['intersection'] == [1, 1, 1] and areas['union'] == [1, 2, 2]
    assert areas['pred_area'] == [1, 1, 2] and areas['gt_area'] == [1, 2, 1]
    assert (areas['height'], areas['width']) == (2, 2)


@pytest.mark.parametrize('protocol', ['clean', 'published'])
def test_every_pixel_of_odd_sized_images_is_scored(tmp_path, protocol):
    data = OddSizes()
    selection, metric_cfg = selection_and_metric(data, protocol)
    weights, history = stages.finetune(None, 'random', data, selection, 'resnet18', SCALE, 0,
                                       tmp_path / 'run', metric_cfg=metric_cfg)
    assert 'val/mIoU' in history[-1]
    assert stages.last_weights_path(tmp_path / 'run').is_file()
    result = stages.evaluate(weights, data, 'test', 'resnet18', SCALE, metric_cfg,
                             tmp_path / 'previews.npz')
    units = result['images']
    if protocol == 'clean':
        assert [(u['name'], u['height'], u['width']) for u in units] == [
            ('test0', 45, 70), ('test1', 33, 33)]
        for u in units:
            assert sum(u['pred_area']) == u['height'] * u['width'] == sum(u['gt_area'])
    else:  # the authors' non-overlapping grid: 1x2 patches of test0, 1 of test1
        assert [u['name'] for u in units] == ['test0@0,0', 'test0@0,32', 'test1@0,0']
        assert all(sum(u['pred_area']) == 32 * 32 for u in units)
        assert result['convention'] == 'authors-batch'
    from matssl_bench.evaluation.metrics import summarize
    assert result['mIoU'] == summarize(units, dict(metric_cfg, class_names=list(data.classes)))['mIoU']
    previews = np.load(tmp_path / 'previews.npz')
    assert len(previews['title']) == len(previews['pred']) >= 1
    assert all('@' in t for t in previews['title'])
