"""Transfer across data sets: a model fine-tuned on one set, scored on other sets' test splits.

Relative domain transferability (RDT, equation 2 of "Unsupervised domain adaptation
... bainite", in ../shared/seeds/): (mIoU on the target - mIoU on the source) / mIoU on
the source; negative when transfer loses (70 % -> 65 % gives -0.0714).

A target's test images that the source trained or selected on (the same micrograph, or a
near-copy under the leakage index of ``leakage.py``) are left out of its score and listed
in ``seen_by_source``: otherwise a cell would partly measure fitting seen images. On the NASA
EBC data, whose subsets are splits of the same micrographs, this matters.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Optional

from matssl_bench.engine import stages
from matssl_bench.data_api import MicrographSet
from matssl_bench.data.sources import build_micrograph_set
from matssl_bench.data.leakage import DEFAULT_THRESHOLD, audit_pool, split_images
from matssl_bench.data.subsets import SplitSubset


def rdt(miou_target: float, miou_source: float) -> float:
    """Relative domain transferability; NaN when the source score is 0 or missing."""
    if miou_source is None or miou_target is None or not miou_source or math.isnan(miou_source):
        return float('nan')
    return (miou_target - miou_source) / miou_source


def evaluate_targets(weights: Path, source: MicrographSet, targets: dict[str, dict],
                     arch: str, scale: dict, protocol: str,
                     metric_for: Callable[[MicrographSet, str], tuple[str, dict]],
                     threshold: Optional[float] = DEFAULT_THRESHOLD) -> dict:
    """Test metrics of ``weights`` on every target set that has the source's class names
    (same list, same order), on the test images the source has not seen; other targets,
    and targets whose every test image the source has seen, get a ``skipped`` reason."""
    out = {}
    for name, cfg in sorted(targets.items()):
        target = build_micrograph_set(cfg, protocol)
        if list(target.classes) != list(source.classes):
            out[name] = dict(skipped=f'classes {list(target.classes)} differ from the '
                                     f'source\'s {list(source.classes)}')
            continue
        seen = seen_by_source(source, target, threshold)
        names = [it.name for it in target.labeled_split('test')]
        unseen = [n for n in names if n not in {s['name'] for s in seen}]
        if not unseen:
            out[name] = dict(skipped=f'all {len(names)} test images were seen by the source '
                                     '(its train or validation split)', seen_by_source=seen)
            continue
        _, metric_cfg = metric_for(target, protocol)
        scored = SplitSubset(target, 'test', unseen) if seen else target
        out[name] = dict(stages.evaluate(weights, scored, 'test', arch, scale, metric_cfg),
                         seen_by_source=seen)
    return out


def seen_by_source(source: MicrographSet, target: MicrographSet,
                   threshold: Optional[float] = DEFAULT_THRESHOLD) -> list[dict]:
    """The target's test images that copy one of the source's training or validation images:
    ``{"name", "matches", "score"}`` each (the leakage index's exclusion entries)."""
    protected = [im for split in ('train', 'val') if split in source.splits
                 for im in split_images(source, split)]
    return audit_pool(split_images(target, 'test'), protected, threshold).excluded
