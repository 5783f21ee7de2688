"""Relative cost of a job, from its patches, epochs, views, backbone and patch size."""
from __future__ import annotations

from typing import Iterable, Optional

from matssl_bench.data.patching import patch_grid
from matssl_bench.registry import MICROGRAPH_SETS

ARCH_COST = dict(resnet18=1.0, resnet34=2.0, resnet50=2.3, resnet101=4.4, resnet152=6.5)

# Typical public sets, for the cost of a job whose data folder is missing:
# (images in a pretraining pool, training images, (height, width)).
TYPICAL_DATA = dict(MetalDAM=(208, 33, (703, 1024)), UHCS=(961, 24, (484, 645)),
                    AachenHeerlen=(1705, 1403, (768, 1024)), EBC=(24, 15, (1024, 1024)))
UNKNOWN_DATA = (100, 20, (512, 512))
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


def job_cost(stage: str, arch: str, scale: dict, patches: int) -> float:
    """Relative work of a job: patches x epochs x views x backbone factor x pixels per
    (cropped) patch in 64x64 units, in thousands. A ResNet-50 SSL epoch over the paper's
    ~30,000 patches at 224 px weighs as much as ~160 fine-tuning epochs on MetalDAM."""
    side = (scale.get('crop_size') or scale['patch_size']) if stage == 'pretrain' \
        else scale['patch_size']
    return (patches * scale['epochs'] * VIEWS[stage] * ARCH_COST.get(arch, 2.0)
            * (side / 64) ** 2 / 1000)


def estimated_cost(stage: str, arch: str, scale: dict, cfgs: list[dict]) -> float:
    """:func:`job_cost` from typical image counts and sizes (the dry run counts real ones)."""
    patches = sum(patch_count(typical_sizes(cfg, stage), scale['patch_size'],
                              source_overlap(cfg, scale.get('overlap', 0.0))
                              if stage == 'pretrain' else 0.0,
                              scale.get('resize'), scale.get('rescale')) for cfg in cfgs)
    return job_cost(stage, arch, scale, patches)
