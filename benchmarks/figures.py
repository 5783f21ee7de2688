"""Figures from stored records: validation curves per epoch and prediction overlays."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterable

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .records import atomic_write  # noqa: E402

TP, FP, FN = (40, 200, 60), (220, 40, 40), (40, 90, 230)


def _label(rec: dict) -> str:
    pretrain = rec['pretrain_set'] or '-'
    return rec['method_label'] if pretrain == '-' else f"{rec['method_label']} ({pretrain})"


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=120, bbox_inches='tight'))
    plt.close(fig)
    return path


def validation_curves(records: Iterable[dict], out_dir: Path) -> list[Path]:
    """One PNG per fine-tuning set: validation mIoU per epoch, each method its mean over seeds."""
    by_set: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        if rec.get('status') != 'finished' or rec.get('stage') != 'finetune':
            continue
        curve = [h.get('val/mIoU', np.nan) for h in rec.get('history', [])]
        if any(np.isfinite(curve)):
            by_set[rec['dataset']][_label(rec)].append(curve)
    paths = []
    for dataset, curves in sorted(by_set.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, runs in sorted(curves.items()):
            length = min(len(r) for r in runs)
            mean = np.nanmean(np.array([r[:length] for r in runs]), axis=0)
            ax.plot(np.arange(1, length + 1), mean, label=f'{label} (n={len(runs)})')
        ax.set_xlabel('epoch')
        ax.set_ylabel('validation mIoU (%)')
        ax.set_title(f'{dataset}: validation mIoU per epoch')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        paths.append(_save(fig, Path(out_dir) / f'curves_{dataset}.png'))
    return paths


def overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Image with foreground hits green, false positives red and misses blue.

    A pixel whose true or predicted class is not background (0) is a true
    positive when both agree, a false positive when the prediction claims a
    wrong foreground class, and a false negative when it predicts background.
    """
    colour = np.zeros_like(image)
    hit = (truth == pred) & (truth != 0)
    false_pos = (truth != pred) & (pred != 0)
    miss = (truth != pred) & (pred == 0)
    for mask, rgb in ((hit, TP), (false_pos, FP), (miss, FN)):
        colour[mask] = rgb
    painted = hit | false_pos | miss
    out = image.astype(np.float32)
    out[painted] = (1 - alpha) * out[painted] + alpha * colour[painted]
    return out.astype(np.uint8)


def prediction_overlays(records: Iterable[dict], work_dir: Path, out_dir: Path,
                        max_samples: int = 4) -> list[Path]:
    """One PNG per fine-tuning set: rows are methods, columns test patches (seed 0 or lowest)."""
    chosen: dict[str, dict[str, dict]] = defaultdict(dict)
    for rec in records:
        if rec.get('status') != 'finished' or not rec.get('predictions'):
            continue
        current = chosen[rec['dataset']].get(_label(rec))
        if current is None or rec['seed'] < current['seed']:
            chosen[rec['dataset']][_label(rec)] = rec
    paths = []
    for dataset, recs in sorted(chosen.items()):
        labels = sorted(recs)
        samples = [np.load(Path(work_dir) / recs[l]['predictions']) for l in labels]
        n = min(max_samples, min(len(s['image']) for s in samples))
        fig, axes = plt.subplots(len(labels), n, figsize=(2.2 * n, 2.2 * len(labels)),
                                 squeeze=False)
        for r, (label, s) in enumerate(zip(labels, samples)):
            for c in range(n):
                ax = axes[r][c]
                ax.imshow(overlay(s['image'][c], s['truth'][c], s['pred'][c]))
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(label, fontsize=7)
        fig.suptitle(f'{dataset}: TP green, FP red, FN blue', fontsize=9)
        paths.append(_save(fig, Path(out_dir) / f'overlays_{dataset}.png'))
    return paths
