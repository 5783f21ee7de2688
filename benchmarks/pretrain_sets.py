"""The paper's three SSL pretraining sets (Table 1) as suite-ready configs, and their pools.

Every pool leaves out the test images of every fine-tuning set (and, through the
readers' near-duplicate check, their re-encoded copies), exactly as the runner does.
"""
from __future__ import annotations

from typing import Sequence

from .data_api import UnlabeledImage
from .registry import MICROGRAPH_SETS


def paper_sources(data_root: str) -> dict[str, dict]:
    return dict(UHCS=dict(type='UHCS', root=f'{data_root}/UHCS'),
                MetalDAM=dict(type='MetalDAM', root=f'{data_root}/MetalDAM'),
                Aachen=dict(type='AachenHeerlen', root=f'{data_root}/Aachen-Heerlen'))


def paper_pretraining_sets(data_root: str) -> dict[str, list[dict]]:
    """``{'UHCS+MetalDAM': [...], 'Aachen+UHCS': [...], 'Aachen+UHCS+MetalDAM': [...]}``."""
    src = paper_sources(data_root)
    return {'UHCS+MetalDAM': [src['UHCS'], src['MetalDAM']],
            'Aachen+UHCS': [src['Aachen'], src['UHCS']],
            'Aachen+UHCS+MetalDAM': [src['Aachen'], src['UHCS'], src['MetalDAM']]}


def paper_finetune_sets(data_root: str) -> dict[str, dict]:
    src = paper_sources(data_root)
    return dict(MetalDAM=src['MetalDAM'], Aachen=src['Aachen'],
                **{f'EBC-{i}': dict(type='EBC', root=f'{data_root}/EBC', subset=f'EBC{i}',
                                    binary=True) for i in (1, 2, 3)})


def build_pool(sources: Sequence[dict], exclude_test_images_of: Sequence[dict]) -> list[UnlabeledImage]:
    """The pretraining pool of ``sources`` without any test image of the fine-tuning sets."""
    excluded: set[str] = set()
    for cfg in exclude_test_images_of:
        excluded.update(MICROGRAPH_SETS.build(dict(cfg)).test_image_names())
    pool: list[UnlabeledImage] = []
    for cfg in sources:
        pool += MICROGRAPH_SETS.build(dict(cfg)).unlabeled_pool(exclude=sorted(excluded))
    return pool
