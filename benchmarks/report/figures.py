"""Figures from stored records: validation curves, mIoU intervals and prediction overlays."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterable

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from matssl_bench.fileio.atomic import atomic_write  # noqa: E402

TP, FP, FN = (40, 200, 60), (220, 40, 40), (40, 90, 230)


def _label(rec: dict) -> str:
    pretrain = rec['pretrain_set'] or '-'
    return rec['method_label'] if pretrain == '-' else f"{rec['method_label']} ({pretrain})"


def save_figure(fig, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=120, bbox_inches='tight'))
    plt.close(fig)
    return path


def _selection_label(recs: list[dict]) -> str:
    """'validation' or 'test' (as the published protocol selects on MetalDAM and Aachen)."""
    splits = sorted({rec.get('selection_split') or 'val' for rec in recs})
    protocols = sorted({rec.get('protocol') or '?' for rec in recs})
    named = ' / '.join('validation' if s == 'val' else s for s in splits)
    return f"{named} mIoU (%), {', '.join(protocols)} protocol"


def validation_curves(records: Iterable[dict], out_dir: Path) -> list[Path]:
    """One PNG per fine-tuning set: the selection split's mIoU per epoch, each method's mean
    over seeds as a line and the range over seeds as a band."""
    by_set: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    recs_of: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        if rec.get('status') != 'finished' or rec.get('stage') != 'finetune':
            continue
        curve = [h.get('val/mIoU', np.nan) for h in rec.get('history', [])]
        if any(np.isfinite(curve)):
            by_set[rec['dataset']][_label(rec)].append(curve)
            recs_of[rec['dataset']].append(rec)
    paths = []
    for dataset, curves in sorted(by_set.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, runs in sorted(curves.items()):
            length = min(len(r) for r in runs)
            values = np.array([r[:length] for r in runs], dtype=float)
            epochs = np.arange(1, length + 1)
            line, = ax.plot(epochs, np.nanmean(values, axis=0), label=f'{label} (n={len(runs)})')
            if len(runs) > 1:
                ax.fill_between(epochs, np.nanmin(values, axis=0), np.nanmax(values, axis=0),
                                color=line.get_color(), alpha=0.2, linewidth=0)
        ylabel = _selection_label(recs_of[dataset])
        ax.set_xlabel('epoch')
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(f'{dataset}: {ylabel.split(" mIoU")[0]} mIoU per epoch '
                     '(line: mean over seeds, band: min-max)', fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        paths.append(save_figure(fig, Path(out_dir) / f'curves_{dataset}.png'))
    return paths


def miou_intervals(tables: Iterable, out_dir: Path) -> list[Path]:
    """``miou_intervals.png``: per fine-tuning set, each row's mean mIoU with its 95 % interval
    (the baseline row drawn as a square and a dashed line)."""
    import pandas as pd

    frames = [t for t in tables if len(t)]
    if not frames:
        return []
    table = pd.concat(frames, ignore_index=True)
    table = table[table['mean'].notna()]
    sets = list(dict.fromkeys(table['fine-tune set']))
    if not sets:
        return []
    fig, axes = plt.subplots(1, len(sets), figsize=(3.2 * len(sets) + 1, 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], sets):
        rows = table[table['fine-tune set'] == dataset].reset_index(drop=True)
        labels = [m if p == '-' else f'{m}\n({p})' for m, p in
                  zip(rows['method'], rows['pretrain set'])]
        for i, row in rows.iterrows():
            low, high = row['ci95_low'], row['ci95_high']
            is_base = row['verdict'] == 'baseline'
            if np.isfinite(low) and np.isfinite(high):
                ax.errorbar(i, row['mean'], yerr=[[row['mean'] - low], [high - row['mean']]],
                            fmt='s' if is_base else 'o', color='k' if is_base else 'C0',
                            capsize=3)
            else:
                ax.plot(i, row['mean'], 'x', color='C3')
            if is_base:
                ax.axhline(row['mean'], color='k', linestyle='--', linewidth=0.8)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, rotation=60, ha='right', fontsize=6)
        ax.set_title(f"{dataset} ({', '.join(sorted(set(rows['metric'])))})", fontsize=8)
        ax.set_ylabel('test mIoU (%), mean and 95 % interval', fontsize=7)
        ax.grid(alpha=0.3, axis='y')
    fig.suptitle('mIoU with 95 % intervals (seeds + crossed image bootstrap; square, dashed: '
                 'baseline; x: no interval)', fontsize=8)
    return [save_figure(fig, Path(out_dir) / 'miou_intervals.png')]


def ranking_figure(ranking, out_dir: Path) -> list[Path]:
    """``ranking.png``: each method's mean rank over fine-tuning sets with its 95 % bootstrap
    interval (x: no interval)."""
    if not len(ranking):
        return []
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(ranking) + 1.2))
    for i, row in ranking.reset_index(drop=True).iterrows():
        low, high = row['rank_ci95_low'], row['rank_ci95_high']
        if np.isfinite(low) and np.isfinite(high):
            ax.errorbar(row['mean rank'], i, xerr=[[row['mean rank'] - low], [high - row['mean rank']]],
                        fmt='o', color='C0', capsize=3)
        else:
            ax.plot(row['mean rank'], i, 'x', color='C3')
    ax.set_yticks(range(len(ranking)))
    ax.set_yticklabels([f"{m} ({n} set{'s' if n != 1 else ''})"
                        for m, n in zip(ranking['method'], ranking['sets'])],
                       fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel('mean rank over fine-tuning sets (1 = best), 95 % bootstrap interval', fontsize=8)
    ax.grid(alpha=0.3, axis='x')
    return [save_figure(fig, Path(out_dir) / 'ranking.png')]


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


def class_colours(labels: np.ndarray, palette: list) -> np.ndarray:
    """A class-id map painted with the set's palette (a default colour map where it has none)."""
    colours = np.asarray(palette, dtype=np.uint8) if palette else None
    top = int(labels.max()) + 1 if labels.size else 1
    if colours is None or len(colours) < top:
        cmap = plt.get_cmap('tab10')
        colours = (np.array([cmap(i % 10)[:3] for i in range(max(top, 2))]) * 255).astype(np.uint8)
    return colours[labels]


def prediction_overlays(records: Iterable[dict], work_dir: Path, out_dir: Path,
                        max_samples: int = 4) -> list[Path]:
    """One PNG per fine-tuning set: rows are methods (seed 0 or lowest), columns the test
    patches with the most foreground and the most errors, titled ``image@y,x``. Binary sets
    show TP/FP/FN over the image; multi-class sets a class-coloured truth/prediction pair.
    Records whose previews are not on disk (``runs/`` removed) are skipped with a note."""
    from matplotlib.patches import Patch

    chosen: dict[str, dict[str, dict]] = defaultdict(dict)
    for rec in records:
        if rec.get('status') != 'finished' or not rec.get('predictions'):
            continue
        current = chosen[rec['dataset']].get(_label(rec))
        if current is None or rec['seed'] < current['seed']:
            chosen[rec['dataset']][_label(rec)] = rec
    paths = []
    for dataset, recs in sorted(chosen.items()):
        labels, samples = [], []
        for label in sorted(recs):
            path = Path(work_dir) / recs[label]['predictions']
            if not path.is_file():
                print(f'note: {path} missing (runs/ folder removed?): no overlay for '
                      f'{label} on {dataset}')
                continue
            labels.append(label)
            samples.append(np.load(path))
        if not samples:
            continue
        meta = recs[labels[0]].get('dataset_meta') or {}
        classes = meta.get('classes') or []
        multi = len(classes) > 2
        n = min(max_samples, min(len(s['image']) for s in samples))
        per = 2 if multi else 1
        fig, axes = plt.subplots(len(labels), n * per, figsize=(2.1 * n * per, 2.3 * len(labels)),
                                 squeeze=False)
        for r, (label, s) in enumerate(zip(labels, samples)):
            titles = s['title'] if 'title' in s else [f'patch {c}' for c in range(n)]
            for c in range(n):
                views = ([('truth', class_colours(s['truth'][c], meta.get('palette'))),
                          ('prediction', class_colours(s['pred'][c], meta.get('palette')))]
                         if multi else
                         [('', overlay(s['image'][c], s['truth'][c], s['pred'][c]))])
                for k, (what, picture) in enumerate(views):
                    ax = axes[r][c * per + k]
                    ax.imshow(picture)
                    ax.set_xticks([])
                    ax.set_yticks([])
                    ax.set_title(f'{titles[c]} {what}'.strip(), fontsize=5)
                    if c == 0 and k == 0:
                        ax.set_ylabel(label, fontsize=7)
        if multi:
            colours = class_colours(np.arange(len(classes)), meta.get('palette'))
            handles = [Patch(color=colours[i] / 255, label=name) for i, name in enumerate(classes)]
            heading = f'{dataset}: ground truth and prediction per class'
        else:
            handles = [Patch(color=np.array(rgb) / 255, label=name) for rgb, name in
                       ((TP, 'true positive'), (FP, 'false positive'), (FN, 'false negative'))]
            heading = f'{dataset}: foreground hits and errors'
        fig.legend(handles=handles, loc='lower center', ncol=min(len(handles), 5), fontsize=7)
        fig.suptitle(f'{heading} (patches with most foreground / most errors)', fontsize=9)
        fig.subplots_adjust(bottom=0.12)
        paths.append(save_figure(fig, Path(out_dir) / f'overlays_{dataset}.png'))
    return paths
