"""The three pipeline stages. Each is a function of its config and inputs; the runner caches outputs.

- :func:`pretrain`: a method's SSL stage on a pool of unlabeled images -> encoder state dict
- :func:`finetune`: U-Net++ with that encoder on a labeled set -> best weights + epoch history
- :func:`evaluate`: a fine-tuned model on one split -> per-image areas, per-class IoU and mIoU
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.device import get_device
from mmengine.dist import barrier, get_dist_info, is_main_process
from mmengine.runner import Runner, set_random_seed

from matssl_bench.data.patches import SegmentationPatches, TwoViewPatches, resize_items
from matssl_bench.data.sampling import EpochSeededSampler
from matssl_bench.data.ssl_views import DeviceViews, view_place
from matssl_bench.engine.determinism import apply_determinism
from matssl_bench.evaluation.sharding import sharded
from matssl_bench.data_api import MicrographSet, UnlabeledImage
from matssl_bench.errors import ConfigError, DataError
from matssl_bench.engine.hooks import (ProgressBarHook, RunStateHook, TrackingHook,
                                      check_resume_checkpoint, visualizer_cfg)
from matssl_bench.method_api import EncoderState, SSLMethod
from matssl_bench.suite.precision import resolve_precision, with_precision
from matssl_bench.fileio.atomic import atomic_write, save_torch_atomic
from matssl_bench.registry import SCOPE, scope_mmengine_registries
from matssl_bench.data.augment import training_patches
from matssl_bench.suite.variants import encoder_paramwise_cfg
from matssl_bench.evaluation.segmenter import build_segmenter, load_segmenter


def _unwrap(model):
    return model.module if hasattr(model, 'module') else model


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


def _training_optim_wrapper(optim_wrapper: dict, scale: dict, owner: str, stage: str) -> dict:
    """A stage's optimiser wrapper: fused update, at the scale's precision."""
    return with_precision(_with_fused_update(optim_wrapper),
                          resolve_precision(scale.get('precision'), stage=stage), owner)


def pretrain_optim_wrapper(method: SSLMethod, batch_size: int, scale: dict) -> dict:
    """The optimiser wrapper config of ``method``'s SSL stage (perf.py times the same one)."""
    return _training_optim_wrapper(method.optim_wrapper(batch_size), scale,
                                   f'method {method.name}', 'pretrain')


def finetune_optim_wrapper(scale: dict) -> dict:
    """Adam, as in the paper, at the fine-tuning scale's learning rate and precision."""
    adam = dict(type='Adam', lr=scale.get('lr', 1e-4), weight_decay=scale.get('weight_decay', 1e-5))
    return _training_optim_wrapper(dict(type='OptimWrapper', optimizer=adam,
                                        **encoder_paramwise_cfg(scale)), scale, 'fine-tuning',
                                   'finetune')


def finetune_precision(scale: dict) -> str:
    """The resolved precision of fine-tuning and of every evaluation of its model."""
    return resolve_precision(scale.get('precision'), stage='finetune')


def _per_rank_batch(total: int, dataset_size: int) -> int:
    """The suite's batch size is the total over all ranks, as in the paper; split it per rank."""
    world = get_dist_info()[1]
    if total % world:
        raise ValueError(f'batch size {total} is not divisible by the {world} processes')
    return max(1, min(total, dataset_size) // world)


def drops_single_sample_batch(num_samples: int, batch_size: int) -> bool:
    """Whether a rank's last training batch would hold one sample: batch-norm statistics
    of a single patch (an error where a feature map is 1x1). Only then is the last
    batch dropped; otherwise it is kept, as the authors' loader does (drop_last False)."""
    world = get_dist_info()[1]
    per_rank = -(-num_samples // world)  # DefaultSampler pads every rank to the same count
    return per_rank > batch_size and per_rank % batch_size == 1


def dataloader_cfg(dataset, batch_size: int, num_workers: int, shuffle: bool,
                   drop_last: bool) -> dict:
    """The mmengine dataloader config every stage uses (perf.py measures the same one).

    Workers persist across epochs; batches go to pinned memory where a GPU trains. With
    workers, a dataset that draws random numbers gets (index, seed, epoch) keys
    (``sampling.EpochSeededSampler``): its samples are the same whatever the workers, and a
    resumed run continues the uninterrupted one's stream.
    """
    seeded = num_workers > 0 and getattr(dataset, 'random_samples', False)
    return dict(dataset=dataset, batch_size=batch_size, num_workers=num_workers,
                persistent_workers=num_workers > 0, drop_last=drop_last,
                pin_memory=torch.cuda.is_available(),
                sampler=dict(type=EpochSeededSampler if seeded else 'DefaultSampler',
                             shuffle=shuffle),
                collate_fn=dict(type='default_collate'))


def _runner_common(run_dir: Path, seed: int, launcher: str, description: str,
                   state_hook: RunStateHook, vis_backend: str = 'local',
                   tracking: Optional[dict] = None, deterministic: bool = True,
                   broadcast_buffers: bool = False) -> dict:
    """Settings every stage's Runner shares. ``tracking`` (``run_name``, ``root``,
    ``hparams``, ``experiment``: see :func:`hooks.visualizer_cfg`) names the run in the
    progress bar and the tracking backend. ``broadcast_buffers``: DDP copies rank 0's
    buffers (batch-norm statistics) to every rank before each forward pass."""
    tracking = dict(tracking or {})
    description = tracking.get('run_name', description)
    scope_mmengine_registries()  # no per-job "Failed to search registry" warnings
    apply_determinism(deterministic)
    # loaded weights-only by the suite itself; a corrupt file is set aside and the job restarts
    resume_from = check_resume_checkpoint(state_hook.resume_path)
    wrapper = {}
    if launcher != 'none':
        ddp = dict(type='MMDistributedDataParallel', broadcast_buffers=broadcast_buffers)
        if not torch.cuda.is_available():
            # mmengine pins DDP to a CUDA device; CPU processes (gloo) take device_ids=None
            ddp['device_ids'] = None
        wrapper = dict(cfg=dict(model_wrapper_cfg=ddp))
    return dict(
        **wrapper,
        work_dir=str(run_dir),
        experiment_name=f'{run_dir.name}-{time.time_ns()}',
        randomness=dict(seed=seed, deterministic=deterministic),
        env_cfg=dict(cudnn_benchmark=not deterministic, dist_cfg=dict(backend='nccl')),
        launcher=launcher,
        default_scope=SCOPE,
        log_level='WARNING',
        visualizer=visualizer_cfg(vis_backend, **tracking),
        default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=50),
                           timer=dict(type='IterTimerHook'),
                           param_scheduler=dict(type='ParamSchedulerHook'),
                           sampler_seed=dict(type='DistSamplerSeedHook')),
        custom_hooks=[ProgressBarHook(description), state_hook, TrackingHook()],
        load_from=resume_from,
        resume=resume_from is not None,
    )


def uses_sync_bn(scale: dict, launcher: str) -> bool:
    """Whether a stage synchronises batch norm over ranks (``sync_bn`` in its scale;
    default: on whenever a launcher runs several CUDA processes), so that a multi-GPU run
    normalises over the global batch as a one-GPU run does."""
    distributed = launcher != 'none' and get_dist_info()[1] > 1
    asked = scale.get('sync_bn')
    if asked is None:
        return distributed and torch.cuda.is_available()
    if asked and distributed and not torch.cuda.is_available():
        raise ValueError('sync_bn=True needs CUDA devices (torch\'s SyncBatchNorm has no CPU '
                         'kernel); set sync_bn=False in the scale to run on CPUs')
    return bool(asked) and distributed


def ssl_inputs(method: SSLMethod, model, scale: dict, images: Sequence[UnlabeledImage],
               seed: int = 0):
    """The SSL stage's patch set and ``model`` set up to take it: views made in the loader
    workers, or (``views='device'``) uint8 patches whose views the model's data
    preprocessor makes on its device; channels-last with ``channels_last``."""
    crop = scale.get('crop_size', scale['patch_size'])
    on_device = view_place(scale) == 'device'
    if scale.get('channels_last'):
        model.to(memory_format=torch.channels_last)
    if on_device:
        model.data_preprocessor = DeviceViews(method.batch_views(crop),
                                              channels_last=bool(scale.get('channels_last')),
                                              seed=seed)
    dataset = TwoViewPatches(images, scale['patch_size'], scale.get('overlap', 0.0),
                             None if on_device else method.view_transform(crop))
    return dataset, model


def pretrain(method: SSLMethod, images: Sequence[UnlabeledImage], arch: str, scale: dict,
             seed: int, run_dir: Path, launcher: str = 'none',
             vis_backend: str = 'local',
             tracking: Optional[dict] = None,
             deterministic: bool = True) -> tuple[EncoderState, list[dict]]:
    """Train ``method`` self-supervised on patches of ``images``; return its encoder and history."""
    if not images:
        raise DataError('the pretraining set is empty')
    run_dir = Path(run_dir)
    set_random_seed(seed, deterministic=deterministic)  # the model's own init is part of the run
    model = method.build_model(arch, method.initial_encoder_state(arch))
    if uses_sync_bn(scale, launcher):
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    images = resize_items(images, factor=scale.get('rescale'))
    dataset, model = ssl_inputs(method, model, scale, images, seed)
    batch = _per_rank_batch(scale['batch_size'], len(dataset))
    state_hook = RunStateHook(str(run_dir))
    common = _runner_common(run_dir, seed, launcher, f'pretrain {method.name}', state_hook,
                            vis_backend, tracking, deterministic)
    common['custom_hooks'] += method.custom_hooks(batch)
    runner = Runner(
        model=model,
        train_dataloader=dataloader_cfg(dataset, batch, scale.get('num_workers', 0), True, True),
        train_cfg=dict(by_epoch=True, max_epochs=scale['epochs']),
        optim_wrapper=pretrain_optim_wrapper(method, batch, scale),
        param_scheduler=method.param_scheduler(scale['epochs']),
        **common)
    runner.train()
    return method.export_encoder(_unwrap(runner.model)), state_hook.history


def finetune(encoder_state: Optional[EncoderState], encoder_source: str, data: MicrographSet,
             selection_split: Optional[str], arch: str, scale: dict, seed: int, run_dir: Path,
             launcher: str = 'none', metric_cfg: Optional[dict] = None,
             report: Optional[dict] = None,
             vis_backend: str = 'local', tracking: Optional[dict] = None,
             deterministic: bool = True) -> tuple[Path, list[dict]]:
    """Fine-tune U-Net++ on ``data``'s train split; keep the best epoch on ``selection_split``.

    Returns the path of the selected weights and the per-epoch history. With no
    selection split the last epoch is kept. ``report`` (a dict) receives
    ``dropped_last_batch``: whether a one-sample last batch was dropped each epoch.
    Under several processes batch norm is synchronised (SyncBN, CUDA) or, where it cannot
    be, every process must get at least :data:`MIN_RANK_BATCH` patches.
    """
    run_dir = Path(run_dir)
    set_random_seed(seed, deterministic=deterministic)  # the decoder's init is part of the run
    model = build_segmenter(arch, data.num_classes, scale, encoder_state, encoder_source,
                            precision=finetune_precision(scale))
    sync_bn = uses_sync_bn(scale, launcher)
    if sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    train = training_patches(_patches(data, 'train', scale), scale)  # tricks (augment.py)
    workers = scale.get('num_workers', 0)
    batch = _per_rank_batch(scale['batch_size'], len(train))
    check_rank_batch(batch, sync_bn)
    drop_last = drops_single_sample_batch(len(train), batch)
    if report is not None:
        report['dropped_last_batch'] = drop_last
    state_hook = RunStateHook(str(run_dir), select_metric='mIoU' if selection_split else None)
    validation = {}
    if selection_split:
        validation = _validation_cfg(data, selection_split, scale, batch, workers,
                                     metric_cfg or {}, run_dir)
    runner = Runner(
        model=model,
        train_dataloader=dataloader_cfg(train, batch, workers, True, drop_last),
        train_cfg=dict(by_epoch=True, max_epochs=scale['epochs'],
                       val_interval=scale.get('val_interval', 1)),
        optim_wrapper=finetune_optim_wrapper(scale),
        **validation,
        **_runner_common(run_dir, seed, launcher, f'fine-tune {run_dir.name[:8]}', state_hook,
                         vis_backend, tracking, deterministic,
                         # no SyncBN: every rank validates with rank 0's statistics
                         broadcast_buffers=not sync_bn))
    runner.train()
    if is_main_process():
        model_state = {k: v.detach().cpu() for k, v in _unwrap(runner.model).state_dict().items()}
        last = dict(state_dict=model_state, epoch=scale['epochs'], score=None)
        save_torch_atomic(last_weights_path(run_dir), last)
        if not selection_split:
            save_torch_atomic(state_hook.best_path, last)
    barrier()  # every rank evaluates the weights rank 0 wrote
    return state_hook.best_path, state_hook.history


# Fewest patches per process for fine-tuning under several processes without SyncBN: batch
# norm then normalises over each process's own patches, and below this the statistics (and
# the method) differ too much from the one-process run's.
MIN_RANK_BATCH = 4


def check_rank_batch(per_rank: int, sync_bn: bool) -> None:
    """Refuse a multi-process fine-tuning whose per-process batch is below
    :data:`MIN_RANK_BATCH` unless batch norm is synchronised."""
    world = get_dist_info()[1]
    if world > 1 and not sync_bn and per_rank < MIN_RANK_BATCH:
        raise ConfigError(
            f'fine-tuning on {world} processes gives {per_rank} patch(es) per process, and '
            f'batch norm without SyncBN (CUDA only) would normalise over those alone; use '
            f'fewer processes (at least {MIN_RANK_BATCH} patches each) or CUDA devices')


def _gathered_previews(keeper):
    """Every rank's preview keeper merged (the ranks scored different units)."""
    from mmengine.dist import all_gather_object

    rank, world = get_dist_info()
    if keeper is None or world == 1:
        return keeper
    for other_rank, other in enumerate(all_gather_object(keeper)):
        if other_rank != rank:
            keeper.absorb(other)
    return keeper


def last_weights_path(run_dir: Path) -> Path:
    """Where :func:`finetune` keeps the last epoch's weights (scored as ``test_last``)."""
    return Path(run_dir) / 'last.pth'


def scores_whole_images(metric_cfg: dict) -> bool:
    """Whole-image sliding-window scoring under ``clean``; the authors' patch grid otherwise."""
    return metric_cfg.get('convention', 'clean') == 'clean'


def _validation_cfg(data: MicrographSet, split: str, scale: dict, batch: int, workers: int,
                    metric_cfg: dict, run_dir: Path) -> dict:
    """The Runner's validation: whole images by sliding window (``clean``), or the patch grid
    with the authors' per-batch metric (``published``); both log ``val/mIoU``. Under several
    processes each rank scores its share; the per-unit counts meet in the run's
    ``.dist_test/`` (removed after each collection)."""
    evaluator = dict(type='PooledIoUMetric', **metric_cfg,
                     collect_dir=str(Path(run_dir) / '.dist_test'))
    if scores_whole_images(metric_cfg):
        from matssl_bench.evaluation.sliding_window import WholeImages

        items = resize_items(data.labeled_split(split), scale.get('resize'), scale.get('rescale'))
        loader = dict(dataloader_cfg(WholeImages(items), 1, workers, False, False),
                      collate_fn=dict(type='pseudo_collate'))
        return dict(val_dataloader=loader, val_evaluator=evaluator,
                    val_cfg=dict(type='SlidingWindowValLoop', window=scale['patch_size'],
                                 stride=scale.get('eval_stride'),
                                 batch_size=scale.get('eval_batch_size', batch)))
    val = _patches(data, split, scale)
    return dict(val_dataloader=dataloader_cfg(val, scale.get('eval_batch_size', batch), workers,
                                              False, False),
                val_cfg=dict(type='ValLoop'), val_evaluator=evaluator)


@torch.no_grad()
def evaluate(weights: Path, data: MicrographSet, split: str, arch: str, scale: dict,
             metric_cfg: dict, preview_path: Optional[Path] = None, previews: int = 2) -> dict:
    """Per-class IoU and mIoU of saved U-Net++ weights on one split, with per-unit areas.

    Under ``clean`` (``metric_cfg['convention']``) every pixel of every image is scored by
    sliding-window inference at the fine-tuning scale (stride ``scale['eval_stride']``,
    default half the patch); otherwise the non-overlapping patch grid the authors' code
    scores, each patch a unit named ``image@y,x``. ``images`` holds one entry per unit and
    the summary numbers are derived from it (:func:`metrics.summarize`). With
    ``preview_path``, the ``previews`` patches with the most foreground and the most errors
    (image, truth, prediction, title) are saved there for the overlay figures.
    """
    from matssl_bench.evaluation.sliding_window import (PreviewKeeper, default_stride, model_logits_fn, score_patches,
                             score_whole_images)
    from matssl_bench.evaluation.metrics import summarize

    model, checkpoint = load_segmenter(weights, arch, data.num_classes, scale,
                                       finetune_precision(scale))
    logits_fn = model_logits_fn(model)
    keeper = PreviewKeeper(previews) if preview_path is not None else None
    batch = scale.get('eval_batch_size', 8)
    if scores_whole_images(metric_cfg):
        items = resize_items(data.labeled_split(split), scale.get('resize'), scale.get('rescale'))
        window = scale['patch_size']
        stride = default_stride(window, scale.get('eval_stride'))
        units = sharded(len(items), lambda positions: score_whole_images(
            logits_fn, [items[i] for i in positions], data.num_classes, window, stride, batch,
            keeper))
    else:
        patches = _patches(data, split, scale)
        units = sharded(len(patches), lambda positions: score_patches(
            logits_fn, patches, data.num_classes, batch, keeper, positions))
    keeper = _gathered_previews(keeper)
    metrics = summarize(units, dict(metric_cfg, class_names=list(data.classes)))
    metrics.update(selected_epoch=checkpoint.get('epoch'),
                   convention=metric_cfg.get('convention', 'clean'), images=units)
    if keeper is not None and keeper.arrays() is not None and is_main_process():
        arrays = keeper.arrays()
        atomic_write(preview_path, lambda tmp: np.savez_compressed(open(tmp, 'wb'), **arrays))
    return metrics
