"""The three pipeline stages. Each is a function of its config and inputs; the runner caches outputs.

- :func:`pretrain`: a method's SSL stage on a pool of unlabeled images -> encoder state dict
- :func:`finetune`: U-Net++ with that encoder on a labeled set -> best weights + epoch history
- :func:`evaluate`: a fine-tuned model on one split -> pooled per-class IoU and mIoU
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.device import get_device
from mmengine.dist import barrier, get_dist_info, is_main_process
from mmengine.runner import Runner, set_random_seed

from .data import SegmentationPatches, TwoViewPatches, resize_items
from .data_api import MicrographSet, UnlabeledImage
from .errors import DataError
from .hooks import ProgressBarHook, RunStateHook
from .method_api import EncoderState, SSLMethod
from .precision import resolve_precision, with_precision
from .records import atomic_write, save_torch_atomic
from .registry import SCOPE
from .segmentation import UNetPlusPlusSegmenter
from .augment import training_patches
from .probe import segmenter_class
from .protocols import encoder_paramwise_cfg
from .tta import attach as attach_test_time


def _unwrap(model):
    return model.module if hasattr(model, 'module') else model


def build_segmenter(arch: str, num_classes: int, scale: dict,
                    encoder_state: Optional[EncoderState] = None,
                    encoder_source: str = 'encoder state') -> UNetPlusPlusSegmenter:
    """The U-Net++ of a fine-tuning scale (perf.py times the same model)."""
    model = segmenter_class(scale)(arch, num_classes, encoder_state=encoder_state,
                                   encoder_source=encoder_source,
                                   decoder_channels=scale.get('decoder_channels',
                                                              (256, 128, 64, 32, 16)),
                                   channels_last=scale.get('channels_last', False))
    return attach_test_time(model, scale)  # downscaling / TTA at inference (tta.py)


def _patches(data: MicrographSet, split: str, scale: dict) -> SegmentationPatches:
    """Non-overlapping patches of a split, after the optional resize of the scale."""
    items = resize_items(data.labeled_split(split), scale.get('resize'), scale.get('rescale'))
    return SegmentationPatches(items, scale['patch_size'])


# torch optimisers with a fused (single-kernel) update; fused Adam: ~11 % faster CPU steps
FUSED_OPTIMIZERS = ('SGD', 'Adam', 'AdamW')


def _with_fused_update(optim_wrapper: dict) -> dict:
    """Use the optimiser's fused kernel where torch has one for this device, unless the
    config chooses an implementation itself (``fused``/``foreach``)."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    optimizer = optim_wrapper['optimizer']
    if (optimizer.get('type') not in FUSED_OPTIMIZERS or 'fused' in optimizer
            or 'foreach' in optimizer
            or get_device() not in _get_fused_kernels_supported_devices()):
        return optim_wrapper
    return dict(optim_wrapper, optimizer=dict(optimizer, fused=True))


def _training_optim_wrapper(optim_wrapper: dict, scale: dict, owner: str) -> dict:
    """A stage's optimiser wrapper: fused update, at the scale's precision."""
    return with_precision(_with_fused_update(optim_wrapper),
                          resolve_precision(scale.get('precision')), owner)


def pretrain_optim_wrapper(method: SSLMethod, batch_size: int, scale: dict) -> dict:
    """The optimiser wrapper config of ``method``'s SSL stage (perf.py times the same one)."""
    return _training_optim_wrapper(method.optim_wrapper(batch_size), scale,
                                   f'method {method.name}')


def finetune_optim_wrapper(scale: dict) -> dict:
    """Adam, as in the paper, at the fine-tuning scale's learning rate and precision."""
    adam = dict(type='Adam', lr=scale.get('lr', 1e-4), weight_decay=scale.get('weight_decay', 1e-5))
    return _training_optim_wrapper(dict(type='OptimWrapper', optimizer=adam,
                                        **encoder_paramwise_cfg(scale)), scale, 'fine-tuning')


def _per_rank_batch(total: int, dataset_size: int) -> int:
    """The suite's batch size is the total over all ranks, as in the paper; split it per rank."""
    world = get_dist_info()[1]
    if total % world:
        raise ValueError(f'batch size {total} is not divisible by the {world} processes')
    return max(1, min(total, dataset_size) // world)


def dataloader_cfg(dataset, batch_size: int, num_workers: int, shuffle: bool,
                   drop_last: bool) -> dict:
    """The mmengine dataloader config every stage uses (perf.py measures the same one)."""
    return dict(dataset=dataset, batch_size=batch_size, num_workers=num_workers,
                persistent_workers=num_workers > 0, drop_last=drop_last,
                sampler=dict(type='DefaultSampler', shuffle=shuffle),
                collate_fn=dict(type='default_collate'))


def _runner_common(run_dir: Path, seed: int, launcher: str, description: str,
                   state_hook: RunStateHook) -> dict:
    # Deterministic cuBLAS needs this set before the first CUDA matmul; harmless elsewhere.
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    wrapper = {}
    if launcher != 'none' and not torch.cuda.is_available():
        # mmengine pins DDP to a CUDA device; CPU processes (gloo) take device_ids=None
        wrapper = dict(cfg=dict(model_wrapper_cfg=dict(
            type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False)))
    return dict(
        **wrapper,
        work_dir=str(run_dir),
        experiment_name=f'{run_dir.name}-{time.time_ns()}',
        randomness=dict(seed=seed, deterministic=True),
        launcher=launcher,
        default_scope=SCOPE,
        log_level='WARNING',
        default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=50),
                           timer=dict(type='IterTimerHook'),
                           param_scheduler=dict(type='ParamSchedulerHook'),
                           sampler_seed=dict(type='DistSamplerSeedHook')),
        custom_hooks=[ProgressBarHook(description), state_hook],
        load_from=str(state_hook.resume_path) if state_hook.resume_path.exists() else None,
        resume=state_hook.resume_path.exists(),
    )


def pretrain(method: SSLMethod, images: Sequence[UnlabeledImage], arch: str, scale: dict,
             seed: int, run_dir: Path, launcher: str = 'none') -> tuple[EncoderState, list[dict]]:
    """Train ``method`` self-supervised on patches of ``images``; return its encoder and history."""
    if not images:
        raise DataError('the pretraining set is empty')
    run_dir = Path(run_dir)
    set_random_seed(seed, deterministic=True)  # the model's own init is part of the run
    model = method.build_model(arch, method.initial_encoder_state(arch))
    images = resize_items(images, factor=scale.get('rescale'))
    dataset = TwoViewPatches(images, scale['patch_size'], scale.get('overlap', 0.0),
                             method.view_transform(scale.get('crop_size', scale['patch_size'])))
    batch = _per_rank_batch(scale['batch_size'], len(dataset))
    state_hook = RunStateHook(str(run_dir))
    runner = Runner(
        model=model,
        train_dataloader=dataloader_cfg(dataset, batch, scale.get('num_workers', 0), True, True),
        train_cfg=dict(by_epoch=True, max_epochs=scale['epochs']),
        optim_wrapper=pretrain_optim_wrapper(method, batch, scale),
        param_scheduler=method.param_scheduler(scale['epochs']),
        **_runner_common(run_dir, seed, launcher, f'pretrain {method.name}', state_hook))
    runner.train()
    return method.export_encoder(_unwrap(runner.model)), state_hook.history


def finetune(encoder_state: Optional[EncoderState], encoder_source: str, data: MicrographSet,
             selection_split: Optional[str], arch: str, scale: dict, seed: int, run_dir: Path,
             launcher: str = 'none', metric_cfg: Optional[dict] = None) -> tuple[Path, list[dict]]:
    """Fine-tune U-Net++ on ``data``'s train split; keep the best epoch on ``selection_split``.

    Returns the path of the selected weights and the per-epoch history. With no
    selection split the last epoch is kept.
    """
    run_dir = Path(run_dir)
    set_random_seed(seed, deterministic=True)  # the decoder's random init is part of the run
    model = build_segmenter(arch, data.num_classes, scale, encoder_state, encoder_source)
    train = training_patches(_patches(data, 'train', scale), scale)  # tricks (augment.py)
    workers = scale.get('num_workers', 0)
    batch = _per_rank_batch(scale['batch_size'], len(train))
    state_hook = RunStateHook(str(run_dir), select_metric='mIoU' if selection_split else None)
    validation = {}
    if selection_split:
        val = _patches(data, selection_split, scale)
        validation = dict(
            val_dataloader=dataloader_cfg(val, scale.get('eval_batch_size', batch), workers, False, False),
            val_cfg=dict(type='ValLoop'),
            val_evaluator=dict(type='PooledIoUMetric', **(metric_cfg or {})))
    runner = Runner(
        model=model,
        train_dataloader=dataloader_cfg(train, batch, workers, True, len(train) > batch),
        train_cfg=dict(by_epoch=True, max_epochs=scale['epochs'],
                       val_interval=scale.get('val_interval', 1)),
        optim_wrapper=finetune_optim_wrapper(scale),
        **validation,
        **_runner_common(run_dir, seed, launcher, f'fine-tune {run_dir.name[:8]}', state_hook))
    runner.train()
    if not selection_split and is_main_process():
        model_state = {k: v.detach().cpu() for k, v in _unwrap(runner.model).state_dict().items()}
        save_torch_atomic(state_hook.best_path, dict(state_dict=model_state,
                                                     epoch=scale['epochs'], score=None))
    barrier()  # every rank evaluates the weights rank 0 wrote
    return state_hook.best_path, state_hook.history


@torch.no_grad()
def evaluate(weights: Path, data: MicrographSet, split: str, arch: str, scale: dict,
             metric_cfg: dict, preview_path: Optional[Path] = None, previews: int = 4) -> dict:
    """Pooled per-class IoU and mIoU of saved U-Net++ weights on one split (all patches).

    With ``preview_path``, the first ``previews`` patches (image, truth,
    prediction) are saved there for the overlay figures.
    """
    from .metrics import PooledIoUMetric

    checkpoint = torch.load(weights, map_location='cpu', weights_only=True)
    model = build_segmenter(arch, data.num_classes, scale)
    model.load_state_dict(checkpoint['state_dict'])
    model.to(get_device()).eval()
    dataset = _patches(data, split, scale)
    loader = torch.utils.data.DataLoader(dataset, batch_size=scale.get('eval_batch_size', 8),
                                         num_workers=scale.get('num_workers', 0))
    metric = PooledIoUMetric(**metric_cfg)
    kept = dict(image=[], truth=[], pred=[])
    for batch in loader:
        samples = model.val_step(batch)
        metric.process(batch, samples)
        for idx, sample in zip(batch['data_samples']['index'].tolist(), samples):
            if len(kept['pred']) < previews:
                image, truth = dataset.patch(idx)
                kept['image'].append(image)
                kept['truth'].append(truth)
                kept['pred'].append(sample['pred_sem_seg']['data'][0].cpu().numpy()
                                    .astype(np.uint8))
    metrics = metric.compute_metrics(metric.results)
    metrics['selected_epoch'] = checkpoint.get('epoch')
    if preview_path is not None:
        arrays = {k: np.stack(v) for k, v in kept.items()}
        atomic_write(preview_path, lambda tmp: np.savez_compressed(open(tmp, 'wb'), **arrays))
    return metrics
