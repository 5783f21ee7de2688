"""Cost of a job: its training work in TFLOP (patches, epochs, views, FLOPs of the encoder or
the whole U-Net++ per sample) and in GPU-hours (its work, validation and test included, times
step times measured per device and architecture)."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Iterable, Optional

from matssl_bench.data.patching import patch_grid
from matssl_bench.errors import ConfigError
from matssl_bench.registry import MICROGRAPH_SETS

# The backbones a suite may name (relative encoder cost; job_cost counts FLOPs instead).
ARCH_COST = dict(resnet18=1.0, resnet34=2.0, resnet50=2.3, resnet101=4.4, resnet152=6.5)

# Typical public sets, for the cost of a job whose data folder is missing:
# (images in a pretraining pool, training images, (height, width)).
TYPICAL_DATA = dict(MetalDAM=(208, 33, (703, 1024)), UHCS=(961, 24, (484, 645)),
                    AachenHeerlen=(1705, 1403, (768, 1024)), EBC=(24, 15, (1024, 1024)))
UNKNOWN_DATA = (100, 20, (512, 512))
# (validation, test) images of typical sets: the validation count under `clean`; `published`
# validates on test where the set has no validation part (MetalDAM, Aachen).
TYPICAL_EVAL = dict(MetalDAM=(5, 9), UHCS=(3, 4), AachenHeerlen=(210, 302), EBC=(3, 4))
UNKNOWN_EVAL = (3, 5)
VIEWS = dict(pretrain=2, finetune=1)


def patch_count(sizes: Iterable[tuple[int, int]], patch_size: int, overlap: float = 0.0,
                resize: Optional[int] = None, rescale: Optional[float] = None) -> int:
    """Patches the stages cut from images of ``sizes`` (height, width), after their resize."""
    total = 0
    for h, w in sizes:
        if resize:
            h = w = resize
        elif rescale:
            h, w = max(1, round(h * rescale)), max(1, round(w * rescale))
        total += len(patch_grid(h, w, patch_size, overlap))
    return total


def source_overlap(cfg: dict, default: float) -> float:
    """A pretraining source's patch overlap: its config's, its reader's, else the scale's."""
    if cfg.get('overlap') is not None:
        return cfg['overlap']
    cls = MICROGRAPH_SETS.get(cfg['type'])
    reader = cfg.get('pretrain_overlap', getattr(cls, 'pretrain_overlap', None))
    return default if reader is None else reader


def typical_sizes(cfg: dict, stage: str) -> list[tuple[int, int]]:
    """Image sizes assumed for a data-set config whose files are not there."""
    if cfg['type'] == 'SyntheticMicrographs':
        size = cfg.get('size', 128)
        labeled = sum(cfg.get(s, d) for s, d in (('train', 12), ('val', 4), ('test', 4)))
        count = cfg.get('train', 12) if stage == 'finetune' else labeled + cfg.get('unlabeled', 48)
        return [(size, size)] * count
    pool, train, shape = TYPICAL_DATA.get(cfg['type'], UNKNOWN_DATA)
    return [shape] * (train if stage == 'finetune' else pool)


def typical_split_sizes(cfg: dict, protocol: Optional[str]) -> dict:
    """{split: [(h, w), ...]} assumed for a fine-tuning set whose files are not there."""
    train = typical_sizes(cfg, 'finetune')
    if cfg['type'] == 'SyntheticMicrographs':
        shape = train[0] if train else (128, 128)
        return dict(train=train, val=[shape] * cfg.get('val', 4), test=[shape] * cfg.get('test', 4))
    val, test = TYPICAL_EVAL.get(cfg['type'], UNKNOWN_EVAL)
    shape = TYPICAL_DATA.get(cfg['type'], UNKNOWN_DATA)[2]
    if protocol == 'published' and cfg['type'] in ('MetalDAM', 'AachenHeerlen'):
        val = 0
    return dict(train=train, val=[shape] * val, test=[shape] * test)


DEFAULT_DECODER = (256, 128, 64, 32, 16)  # evaluation/segmenter.py's default
FLOP_SIDE = 64  # convolution FLOPs grow with pixels: counted once at 64 px, then scaled


@functools.lru_cache(maxsize=None)
def _forward_gflops(stage: str, arch: str, decoder_channels: tuple) -> float:
    """Forward GFLOP of one 64 px sample: the ResNet encoder (SSL: one view) or the whole
    U-Net++ (encoder and decoder), counted by torch's FlopCounterMode on the meta device."""
    import torch
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device('meta'):
        if stage == 'pretrain':
            model = getattr(torchvision.models, arch)()
        else:
            import segmentation_models_pytorch as smp
            model = smp.UnetPlusPlus(arch, encoder_weights=None, classes=2,
                                     decoder_channels=decoder_channels)
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, FLOP_SIDE, FLOP_SIDE))
    return counter.get_total_flops() / 1e9


def step_gflops(stage: str, arch: str, side: int, decoder_channels=None) -> float:
    """GFLOP of one training sample (forward + backward ~ 3x forward) at ``side`` px: ResNet-50
    SSL ~24.7 per view at 224 px; its U-Net++ ~345 per patch at 256 px (the decoder dominates)."""
    decoder = tuple(decoder_channels or DEFAULT_DECODER)
    return 3 * _forward_gflops(stage, arch, decoder) * (side / FLOP_SIDE) ** 2


def job_cost(stage: str, arch: str, scale: dict, patches: int) -> float:
    """Training work of a job in TFLOP: patches x epochs x views x FLOPs of a training sample
    (SSL: the encoder per view at the crop size; fine-tuning: encoder and U-Net++ decoder at
    the patch size). Validation and test passes are left out here (GPU-hours count them)."""
    side = (scale.get('crop_size') or scale['patch_size']) if stage == 'pretrain' \
        else scale['patch_size']
    return (patches * scale['epochs'] * VIEWS[stage]
            * step_gflops(stage, arch, side, scale.get('decoder_channels')) / 1000)


def estimated_cost(stage: str, arch: str, scale: dict, cfgs: list[dict]) -> float:
    """:func:`job_cost` from typical image counts and sizes (the dry run counts real ones)."""
    patches = sum(patch_count(typical_sizes(cfg, stage), scale['patch_size'],
                              source_overlap(cfg, scale.get('overlap', 0.0))
                              if stage == 'pretrain' else 0.0,
                              scale.get('resize'), scale.get('rescale')) for cfg in cfgs)
    return job_cost(stage, arch, scale, patches)


# -- GPU-hours from measured step times ----------------------------------------------------
# benchmarks/suite/step_times.json: {device name: {arch: {kind: entry}}}, filled by
# matssl_bench.perf.step_times (tools/gpu_check.py --record). Kinds and their units:
#   pretrain        s per patch pair (both views, forward + backward + update) at `side` px
#   finetune        s per patch (U-Net++ encoder + decoder, forward + backward + update)
#   infer           s per patch, forward only (validation and test on patches: `published`)
#   sliding_window  s per image megapixel, windows of `side` px at the default stride (`clean`)
STEP_TIMES = Path(__file__).resolve().with_name('step_times.json')
PER_SAMPLE = ('pretrain', 'finetune', 'infer')
TEST_PASSES = 2  # the selected epoch's weights and the last epoch's


def step_times_path() -> Path:
    """The step-time table: ``MATSSL_STEP_TIMES`` if set, else the one shipped."""
    import os
    return Path(os.environ.get('MATSSL_STEP_TIMES') or STEP_TIMES)


def load_step_times(path: Optional[Path] = None) -> dict:
    path = Path(path or step_times_path())
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())['devices']
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f'{path}: not a step-time table ({err})') from None


def _pixels(sizes: Iterable[tuple[int, int]], scale: dict) -> list[tuple[int, int]]:
    out = []
    for h, w in sizes:
        if scale.get('resize'):
            h = w = scale['resize']
        elif scale.get('rescale'):
            h, w = max(1, round(h * scale['rescale'])), max(1, round(w * scale['rescale']))
        out.append((h, w))
    return out


def job_work(stage: str, arch: str, scale: dict, patches: int, protocol: Optional[str] = None,
             split_sizes: Optional[dict] = None) -> dict:
    """What a job computes, in the units of the step-time table: ``{'arch', 'steps':
    [{'kind', 'count', 'side'}]}``. Fine-tuning counts its training patches, its validation
    passes (every ``val_interval`` epochs, on ``val``, else on ``test`` as the published
    protocol selects) and two test passes; on patches under ``published``, on whole images by
    sliding windows under ``clean``. ``split_sizes`` ({split: [(h, w), ...]}) from the data;
    without them validation and test are left out (``eval_counted`` False)."""
    epochs = scale['epochs']
    if stage == 'pretrain':
        side = scale.get('crop_size') or scale['patch_size']
        return dict(arch=arch, steps=[dict(kind='pretrain', count=epochs * patches, side=side)],
                    eval_counted=True)
    side = scale['patch_size']
    steps = [dict(kind='finetune', count=epochs * patches, side=side)]
    if split_sizes is None:
        return dict(arch=arch, steps=steps, eval_counted=False)
    selection = 'val' if split_sizes.get('val') else 'test'
    passes = {selection: -(-epochs // scale.get('val_interval', 1))}
    passes['test'] = passes.get('test', 0) + TEST_PASSES
    for split, n in passes.items():
        sizes = _pixels(split_sizes.get(split, []), scale)
        if protocol == 'clean':
            steps.append(dict(kind='sliding_window', side=side,
                              count=n * sum(h * w for h, w in sizes) / 1e6))
        else:
            steps.append(dict(kind='infer', side=side,
                              count=n * patch_count(sizes, side)))
    return dict(arch=arch, steps=steps, eval_counted=True)


def default_cost_device(table: dict) -> Optional[str]:
    """``MATSSL_COST_DEVICE``, else this machine's GPU, else the table's only device."""
    import os
    if os.environ.get('MATSSL_COST_DEVICE'):
        return os.environ['MATSSL_COST_DEVICE']
    import torch
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return next(iter(table)) if len(table) == 1 else None


def step_seconds(entry: dict, step: dict) -> float:
    """Seconds of one work item from its table entry (per-sample times scaled by pixels)."""
    if step['kind'] in PER_SAMPLE:
        return step['count'] * entry['s_per_sample'] * (step['side'] / entry['side']) ** 2
    return step['count'] * entry['s_per_megapixel']


def plan_gpu_hours(entries: list[dict], device: Optional[str] = None,
                   table: Optional[dict] = None) -> dict:
    """GPU-hours of planned jobs (dry-run entries carrying ``work``, from :func:`job_work`),
    from the measured step times of ``device``: ``gpu_hours`` (all jobs), ``gpu_hours_to_run``
    (those not cached), ``gpu_hours_by_stage``, ``gpu_hours_source`` and ``not_measured``
    (``device/arch/kind`` entries the table lacks; then every total is None). One GPU per job."""
    table = load_step_times() if table is None else table
    device = device or default_cost_device(table)
    measured = table.get(device, {}) if device else {}
    missing, by_stage, to_run = set(), {'pretrain': 0.0, 'finetune': 0.0}, 0.0
    used = set()  # (arch, kind) the plan needs
    uncounted_eval = 0
    for e in entries:
        work = e['work']
        uncounted_eval += not work.get('eval_counted', True)
        seconds = 0.0
        for step in work['steps']:
            used.add((work['arch'], step['kind']))
            entry = measured.get(work['arch'], {}).get(step['kind'])
            if entry is None:
                missing.add(f'{device or "no GPU named"}/{work["arch"]}/{step["kind"]}')
                continue
            seconds += step_seconds(entry, step)
        by_stage[e['stage']] += seconds / 3600
        to_run += seconds / 3600 if e.get('status') != 'cached' else 0.0
    if missing:
        why = ('set MATSSL_COST_DEVICE to a device of ' + str(step_times_path().name)
               if device is None else 'run tools/gpu_check.py --record on that GPU')
        return dict(gpu_hours=None, gpu_hours_to_run=None, gpu_hours_by_stage=None,
                    gpu_hours_source=f'not measured: {", ".join(sorted(missing))} ({why})',
                    not_measured=sorted(missing))
    dates = sorted({v.get('measured', '?') for arch in measured.values() for v in arch.values()})
    source = (f'measured step times on {device} ({step_times_path().name}, {", ".join(dates)}); '
              'other patch sizes scaled by pixel count; one GPU per job')
    starved = sorted(f'{arch} {kind} {measured[arch][kind]["loader_headroom"]}'
                     for arch, kind in used
                     if measured[arch][kind].get('loader_headroom', 1.0) < 1.0)
    if starved:
        source += ('; compute only: at measurement the loader fed less than the step consumed '
                   f'(loader headroom {", ".join(starved)}), so these stages take longer')
    if uncounted_eval:
        source += f'; validation and test not counted for {uncounted_eval} job(s) without data'
    return dict(gpu_hours=round(sum(by_stage.values()), 2), gpu_hours_to_run=round(to_run, 2),
                gpu_hours_by_stage={k: round(v, 2) for k, v in by_stage.items()},
                gpu_hours_source=source, not_measured=[])


def gpu_hours(entries: list[dict]) -> Optional[float]:
    """The plan's GPU-hours alone (None when not measured); see :func:`plan_gpu_hours`."""
    return plan_gpu_hours(entries)['gpu_hours']
