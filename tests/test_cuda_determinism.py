"""CUDA correctness checked on CPU: metric counting leaves the accelerator, and no training
path runs an op torch documents as non-deterministic on CUDA (an error under the
deterministic algorithms every suite job turns on)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from matssl_bench.data.patches import SegmentationPatches, TwoViewPatches
from matssl_bench.datasets.synthetic import SyntheticMicrographs
from matssl_bench.engine import stages
from matssl_bench.engine.determinism import NONDETERMINISTIC_CUDA_OPS, apply_determinism, recorded_ops
from matssl_bench.evaluation.metrics import PooledIoUMetric
from matssl_bench.evaluation.sliding_window import score_patches, slide_logits
from matssl_bench.models.probes import bilinear_upsample, pixel_cross_entropy
from matssl_bench.registry import METHODS, SCOPE

# what an accelerator computes deterministically and the metric code may do there
ACCELERATOR_OK = {'cpu', 'to', 'float', 'argmax', 'squeeze', 'detach', '__getitem__', '__get__',
                  'size', 'dim', '__len__', '__iter__', 'unbind', '__repr__', '__format__'}


class OnAccelerator(torch.Tensor):
    """A tensor that stands for one on a GPU: computing anything on it but the harmless
    steps of :data:`ACCELERATOR_OK` fails; ``.cpu()`` gives a plain tensor back."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, '__name__', str(func))
        leaves = name == 'cpu' or (name == 'to' and any(
            str(a) == 'cpu' for a in list(args[1:]) + list(kwargs.values())))
        if not leaves and name not in ACCELERATOR_OK:
            raise AssertionError(f'{name} ran on the accelerator')
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
        if leaves:
            return out.as_subclass(torch.Tensor)
        return out.as_subclass(cls) if isinstance(out, torch.Tensor) else out


def on_accelerator(tensor: torch.Tensor) -> OnAccelerator:
    return tensor.as_subclass(OnAccelerator)


def test_the_stand_in_refuses_accelerator_counting():
    pred = on_accelerator(torch.tensor([0, 1, 1]))
    with pytest.raises(AssertionError, match='histc ran on the accelerator'):
        torch.histc(pred.float(), bins=2, min=0, max=1)
    assert type(pred.cpu()) is torch.Tensor


def _samples(rng, n=3, classes=4, side=16):
    return [dict(pred_sem_seg=dict(data=on_accelerator(torch.from_numpy(
                     rng.integers(0, classes, (1, side, side))))),
                 gt_sem_seg=dict(data=on_accelerator(torch.from_numpy(
                     rng.integers(0, classes, (1, side, side))))))
            for _ in range(n)]


def test_every_metric_path_moves_its_inputs_off_the_accelerator():
    rng = np.random.default_rng(0)
    # 1. the Runner's validation metric (published ValLoop predictions stay on the GPU)
    metric = PooledIoUMetric(num_classes=4, class_names=list('abcd'), convention='authors-batch')
    samples = _samples(rng)
    metric.process({}, samples)
    plain = PooledIoUMetric(num_classes=4, class_names=list('abcd'), convention='authors-batch')
    plain.process({}, [{k: dict(data=v['data'].as_subclass(torch.Tensor)) for k, v in s.items()}
                       for s in samples])
    assert metric.compute_metrics(metric.results) == plain.compute_metrics(plain.results)

    # 2. sliding-window scoring (clean validation, test, transfer, morphology)
    def logits_fn(batch):
        return on_accelerator(torch.randn(batch.shape[0], 4, *batch.shape[-2:]))
    logits = slide_logits(logits_fn, rng.integers(0, 255, (40, 40, 3), np.uint8), 32, 16)
    assert type(logits) is torch.Tensor and logits.shape == (4, 40, 40)

    # 3. the authors' patch grid (published test)
    data = SyntheticMicrographs(size=64, train=1, val=1, test=1, unlabeled=0)
    grid = SegmentationPatches(data.labeled_split('test'), 32)
    units = score_patches(logits_fn, grid, 4, batch_size=3)
    assert len(units) == len(grid) == 4


def test_the_op_recorder_flags_documented_non_deterministic_ops():
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    target = torch.randint(0, 2, (1, 8, 8))

    def legacy_probe_step():
        F.cross_entropy(F.interpolate(x, size=(8, 8), mode='bilinear'), target).backward()
    _, flagged = recorded_ops(legacy_probe_step)
    assert set(flagged) == {'upsample_bilinear2d_backward', 'nll_loss2d_forward'}
    _, flagged = recorded_ops(lambda: torch.bincount(target.flatten()))
    assert not flagged  # bincount without weights is deterministic
    _, flagged = recorded_ops(lambda: torch.histc(x.detach(), bins=3))
    assert flagged == {'histc': 'histc'}


def test_the_probe_upsamples_and_scores_as_torch_does():
    x = torch.randn(2, 3, 7, 5, dtype=torch.float64)
    for size in ((32, 20), (64, 64), (7, 5)):
        expected = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
        assert torch.allclose(bilinear_upsample(x, size), expected, atol=1e-12)
    logits, target = torch.randn(2, 4, 6, 6), torch.randint(0, 4, (2, 6, 6))
    assert torch.allclose(pixel_cross_entropy(logits, target), F.cross_entropy(logits, target))


TINY_SSL = dict(MatSSL=dict(hidden_dim=32, out_dim=16),
                MoCoV2=dict(queue_len=32, hidden_dim=32, feat_dim=16),
                DenseCL=dict(queue_len=32, hidden_dim=32, feat_dim=16))


def _ssl_step(name: str, views: str):
    data = SyntheticMicrographs(size=64, train=1, val=1, test=1, unlabeled=2)
    method = METHODS.build(dict(type=name, init='random', **TINY_SSL[name]))
    scale = dict(patch_size=32, crop_size=32, batch_size=4, views=views, channels_last=True)
    model = method.build_model('resnet18', None)
    dataset, model = stages.ssl_inputs(method, model, scale, data.unlabeled_pool())
    assert isinstance(dataset, TwoViewPatches)
    batch = stages.Runner.build_dataloader(stages.dataloader_cfg(dataset, 4, 0, True, True),
                                           seed=0)
    return model, stages.pretrain_optim_wrapper(method, 4, scale), next(iter(batch))


def _finetune_step(mode: str):
    data = SyntheticMicrographs(size=64, train=1, val=1, test=1, unlabeled=0)
    scale = dict(patch_size=32, encoder_mode=mode, decoder_channels=(8, 8, 8, 8, 8),
                 channels_last=True)
    model = stages.build_segmenter('resnet18', data.num_classes, scale)
    dataset = SegmentationPatches(data.labeled_split('train'), 32)
    batch = next(iter(stages.Runner.build_dataloader(
        stages.dataloader_cfg(dataset, 4, 0, True, False), seed=0)))
    return model, stages.finetune_optim_wrapper(scale), batch


@pytest.mark.parametrize('path', [f'pretrain/{m}/{v}' for m in TINY_SSL for v in ('device', 'workers')]
                         + ['finetune/full', 'finetune/frozen-decoder', 'finetune/linear-probe'])
def test_no_training_path_runs_an_op_without_a_deterministic_cuda_kernel(path):
    init_default_scope(SCOPE)
    torch.manual_seed(0)
    stage, *rest = path.split('/')
    model, wrapper_cfg, batch = _ssl_step(*rest) if stage == 'pretrain' else _finetune_step(*rest)
    model.train()
    wrapper = build_optim_wrapper(model, wrapper_cfg)

    def step():  # forward, backward and update, as the Runner runs them
        model.train_step(batch, optim_wrapper=wrapper)
        model.eval()
        with torch.no_grad():  # validation and test forward passes
            if stage == 'finetune':
                model(batch['inputs'], batch['data_samples'], mode='predict')
        model.train()
    ops, flagged = recorded_ops(step)
    assert 'convolution_backward' in ops or 'mkldnn_convolution' in ops or len(ops) > 20
    assert not flagged, (f'{path} runs ops with no deterministic CUDA kernel: {flagged} '
                         f'(torch.use_deterministic_algorithms documents {len(NONDETERMINISTIC_CUDA_OPS)})')


def test_deterministic_off_allows_cudnn_autotuning_and_on_restores_it():
    try:
        apply_determinism(False)
        assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()
        apply_determinism(True)
        assert not torch.backends.cudnn.benchmark and torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = False
