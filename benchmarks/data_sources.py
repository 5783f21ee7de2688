"""Data sets built from suite configs, and the pretraining pools made of them.

A pool leaves out the test images of every fine-tuning set of the suite (and,
through the readers' near-duplicate check, their re-encoded copies).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

from .data_api import MicrographSet, UnlabeledImage
from .registry import MICROGRAPH_SETS


def build_micrograph_set(cfg: dict, protocol: Optional[str] = None) -> MicrographSet:
    """Build a data set; ``protocol_options`` in its config adds options per protocol
    (e.g. MetalDAM trains on all 33 images under ``published`` but carves a validation
    part from them under ``clean``)."""
    cfg = dict(cfg)
    per_protocol = cfg.pop('protocol_options', {}) or {}
    cfg.update(per_protocol.get(protocol, {}))
    return MICROGRAPH_SETS.build(cfg)


def build_pool(sources: Sequence[dict],
               exclude_test_images_of: Sequence[dict]) -> tuple[list[UnlabeledImage], int]:
    """The pretraining pool of ``sources`` and the number of test images left out.

    A source config may carry ``overlap`` to override its data set's pretraining overlap.
    """
    excluded: set[str] = set()
    for cfg in exclude_test_images_of:
        excluded.update(build_micrograph_set(cfg).test_image_names())
    pool: list[UnlabeledImage] = []
    for cfg in sources:
        cfg = dict(cfg)
        overlap = cfg.pop('overlap', None)
        items = build_micrograph_set(cfg).unlabeled_pool(exclude=sorted(excluded))
        pool += [replace(it, overlap=overlap) for it in items] if overlap is not None else items
    return pool, len(excluded)
