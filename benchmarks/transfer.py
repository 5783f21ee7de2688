"""Transfer across data sets: a model fine-tuned on one set, scored on other sets' test splits.

Relative domain transferability (RDT, equation 2 of "Unsupervised domain adaptation
... bainite", in ../shared/seeds/): (mIoU on the target - mIoU on the source) / mIoU on
the source; negative when transfer loses (70 % -> 65 % gives -0.0714).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from . import stages
from .data_api import MicrographSet
from .data_sources import build_micrograph_set


def rdt(miou_target: float, miou_source: float) -> float:
    """Relative domain transferability; NaN when the source score is 0 or missing."""
    if miou_source is None or miou_target is None or not miou_source or math.isnan(miou_source):
        return float('nan')
    return (miou_target - miou_source) / miou_source


def evaluate_targets(weights: Path, source: MicrographSet, targets: dict[str, dict],
                     arch: str, scale: dict, protocol: str,
                     metric_for: Callable[[MicrographSet, str], tuple[str, dict]]) -> dict:
    """Test metrics of ``weights`` on every target set that has the source's class names
    (same list, same order); other targets get a ``skipped`` reason instead."""
    out = {}
    for name, cfg in sorted(targets.items()):
        target = build_micrograph_set(cfg, protocol)
        if list(target.classes) != list(source.classes):
            out[name] = dict(skipped=f'classes {list(target.classes)} differ from the '
                                     f'source\'s {list(source.classes)}')
            continue
        _, metric_cfg = metric_for(target, protocol)
        out[name] = stages.evaluate(weights, target, 'test', arch, scale, metric_cfg)
    return out
