"""Figures from stored records: validation curves, mIoU intervals and prediction overlays.

House style: every figure names the host that drew it (bottom right); a class has one
colour in every figure of a report (:func:`class_colour_map`, by name); curves have markers
and whole-epoch ticks; overlays are drawn over the micrograph, in its original pixels.
``figure_formats`` adds svg/pdf copies beside each png.
"""
from __future__ import annotations

import contextlib
import contextvars
import socket
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from matssl_bench.fileio.atomic import atomic_write  # noqa: E402
from matssl_bench.report.summary import find_columns  # noqa: E402

TP, FP, FN = (40, 200, 60), (220, 40, 40), (40, 90, 230)


def _label(rec: dict) -> str:
    pretrain = rec['pretrain_set'] or '-'
    return rec['method_label'] if pretrain == '-' else f"{rec['method_label']} ({pretrain})"


FIGURE_FORMATS = ('png', 'svg', 'pdf')
_formats: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar('formats',
                                                                         default=('png',))
# the device classes the records ran on (``runtime.device`` of their job specs)
_run_hosts: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar('run_hosts',
                                                                           default=())


def run_devices(records: Iterable[dict]) -> list[str]:
    """The device classes (``runtime.device`` of the job specs) finished ``records`` ran on."""
    devices = (((r.get('config') or {}).get('runtime') or {}).get('device')
               for r in records if r.get('status') == 'finished')
    return sorted({str(d) for d in devices if d})


@contextlib.contextmanager
def figure_hosts(records: Iterable[dict]) -> Iterator[None]:
    """Figures saved while the block runs name the devices ``records`` ran on."""
    token = _run_hosts.set(tuple(run_devices(records)))
    try:
        yield
    finally:
        _run_hosts.reset(token)


@contextlib.contextmanager
def figure_formats(formats: Sequence[str]) -> Iterator[None]:
    """Figures saved while the block runs are written in ``formats`` (png always)."""
    unknown = sorted(set(formats) - set(FIGURE_FORMATS))
    if unknown:
        raise ValueError(f'figure formats must be among {", ".join(FIGURE_FORMATS)}, got '
                         f'{", ".join(unknown)}')
    token = _formats.set(tuple(dict.fromkeys(['png', *formats])))
    try:
        yield
    finally:
        _formats.reset(token)


def save_figure(fig, path: Path) -> Path:
    """Write ``path`` (png) and its svg/pdf siblings asked for by :func:`figure_formats`,
    each atomically, with the devices the runs used (:func:`figure_hosts`) and the host that
    drew it in the corner; return the png's path."""
    hosts = _run_hosts.get()
    ran = f'runs on {", ".join(hosts)}; ' if hosts else ''
    fig.text(0.999, 0.999, f'{ran}drawn on {socket.gethostname()}', ha='right', va='top',
             fontsize=5, color='0.45')
    path = Path(path)
    for fmt in _formats.get():
        target = path.with_suffix(f'.{fmt}')
        atomic_write(target, lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=120,
                                                              bbox_inches='tight'))
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
        longest = 1
        for label, runs in sorted(curves.items()):
            length = min(len(r) for r in runs)
            longest = max(longest, length)
            values = np.array([r[:length] for r in runs], dtype=float)
            epochs = np.arange(1, length + 1)
            line, = ax.plot(epochs, np.nanmean(values, axis=0), marker='o', markersize=4,
                            label=f'{label} (n={len(runs)})')
            if len(runs) > 1:
                ax.fill_between(epochs, np.nanmin(values, axis=0), np.nanmax(values, axis=0),
                                color=line.get_color(), alpha=0.2, linewidth=0)
        ylabel = _selection_label(recs_of[dataset])
        ax.set_xlabel('epoch')
        if longest <= 20:
            ax.set_xticks(range(1, longest + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0.5, longest + 0.5)  # one epoch is a point in the middle, not an empty axis
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(f'{dataset}: {ylabel.split(" mIoU")[0]} mIoU per epoch '
                     '(line: mean over seeds, band: min-max)', fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        paths.append(save_figure(fig, Path(out_dir) / f'curves_{dataset}.png'))
    return paths


def miou_intervals(tables: Iterable, out_dir: Path) -> list[Path]:
    """``miou_intervals.png``: per fine-tuning set, each row's mean mIoU with its 95 % interval,
    the baseline row (square, dashed line), the published value where the row has one
    (diamond) and rows without a result marked as unavailable at the bottom. Columns are
    found by name (:func:`summary.find_columns`)."""
    import pandas as pd

    frames = [t for t in tables if len(t)]
    if not frames:
        return []
    table = pd.concat(frames, ignore_index=True)
    cols = find_columns(table.columns)
    if cols['set'] is None or cols['mean'] is None:
        return []
    published = next((c for c in table.columns if 'published' in str(c).lower()), None)
    sets = list(dict.fromkeys(table[cols['set']]))
    # one shared y axis (labelled once) and fixed margins instead of tight_layout: with one
    # panel per set (50 at 5,000 records) per-panel text layout dominated the report's time
    width = 3.2 * len(sets) + 1
    fig, axes = plt.subplots(1, len(sets), figsize=(width, 4.0), squeeze=False, sharey=True)
    fig.subplots_adjust(left=0.8 / width, right=1 - 0.2 / width, bottom=0.4, top=0.88,
                        wspace=0.15)
    used = set()
    for ax, dataset in zip(axes[0], sets):
        rows = table[table[cols['set']] == dataset].reset_index(drop=True)
        pretrain = rows[cols['pretrain']] if cols['pretrain'] else ['-'] * len(rows)
        labels = [m if p == '-' or p != p else f'{m}\n({p})' for m, p in
                  zip(rows[cols['method']], pretrain)]
        finite = pd.to_numeric(rows[cols['mean']], errors='coerce')
        floor = np.nanmin(finite) if finite.notna().any() else 0.0
        for i, row in rows.iterrows():
            mean = _float(row[cols['mean']])
            low = _float(row[cols['low']]) if cols['low'] else np.nan
            high = _float(row[cols['high']]) if cols['high'] else np.nan
            is_base = cols['verdict'] is not None and row[cols['verdict']] == 'baseline'
            if not np.isfinite(mean):
                ax.plot(i, floor, marker='v', color='0.6', linestyle='none')
                ax.annotate('unavailable', (i, floor), textcoords='offset points',
                            xytext=(0, -12), ha='center', fontsize=5, color='0.4')
                used.add('unavailable')
            elif np.isfinite(low) and np.isfinite(high):
                ax.errorbar(i, mean, yerr=[[mean - low], [high - mean]],
                            fmt='s' if is_base else 'o', color='k' if is_base else 'C0',
                            capsize=3)
                used.add('baseline' if is_base else 'interval')
            else:
                ax.plot(i, mean, 'x', color='C3')
                used.add('no interval')
            if is_base and np.isfinite(mean):
                ax.axhline(mean, color='k', linestyle='--', linewidth=0.8)
            value = _float(row[published]) if published else np.nan
            if np.isfinite(value):
                ax.plot(i, value, marker='D', markersize=5, markerfacecolor='none',
                        markeredgecolor='C2', linestyle='none')
                used.add('published')
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, rotation=60, ha='right', fontsize=6)
        metric = ', '.join(sorted(set(rows['metric']) - {''})) if 'metric' in rows else ''
        ax.set_title(f'{dataset} ({metric})' if metric else str(dataset), fontsize=8)
        ax.grid(alpha=0.3, axis='y')
    legend = dict(
        interval=Line2D([], [], marker='o', color='C0', label='mean, 95 % interval'),
        baseline=Line2D([], [], marker='s', color='k', linestyle='--',
                        label='baseline (mean, interval; dashed line)'),
        published=Line2D([], [], marker='D', markerfacecolor='none', markeredgecolor='C2',
                         linestyle='none', label='published value'),
        **{'no interval': Line2D([], [], marker='x', color='C3', linestyle='none',
                                 label='mean, no interval')},
        unavailable=Line2D([], [], marker='v', color='0.6', linestyle='none',
                           label='unavailable (no result; see the table notes)'))
    handles = [h for key, h in legend.items() if key in used]
    fig.legend(handles=handles, loc='lower center', ncol=min(len(handles), 3), fontsize=7,
               frameon=False, bbox_to_anchor=(0.5, -0.02))
    axes[0][0].set_ylabel('test mIoU (%)', fontsize=7)
    fig.suptitle('test mIoU with 95 % intervals (seeds + crossed image bootstrap)', fontsize=9)
    return [save_figure(fig, Path(out_dir) / 'miou_intervals.png')]


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float('nan')


def ranking_figure(ranking, out_dir: Path) -> list[Path]:
    """``ranking.png``: each method's mean rank over fine-tuning sets with its 95 % bootstrap
    interval (x: no interval)."""
    if not len(ranking):
        return []
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(ranking) + 1.2))
    for i, row in ranking.reset_index(drop=True).iterrows():
        low, high = row['rank_ci95_low'], row['rank_ci95_high']
        if np.isfinite(low) and np.isfinite(high):
            mean = row['mean rank']
            ax.errorbar(mean, i, xerr=[[mean - low], [high - mean]], fmt='o', color='C0',
                        capsize=3)
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


def class_colour_map(names: Iterable[str]) -> dict[str, np.ndarray]:
    """One RGB colour per class name, the same in every figure of a report: the names in
    sorted order take the colours of matplotlib's tab10 (tab20 beyond ten names)."""
    names = sorted(set(names))
    cmap = plt.get_cmap('tab10' if len(names) <= 10 else 'tab20')
    return {name: (np.array(cmap(i % cmap.N)[:3]) * 255).astype(np.uint8)
            for i, name in enumerate(names)}


def class_colours(labels: np.ndarray, classes: Sequence[str],
                  colours: dict[str, np.ndarray]) -> np.ndarray:
    """A class-id map painted with the report's colour of each class name."""
    table = np.array([colours[name] for name in classes], dtype=np.uint8)
    return table[np.clip(labels, 0, len(table) - 1)]


def paint_over(image: np.ndarray, colour: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``colour`` blended over the micrograph ``image`` (both HxWx3 uint8)."""
    out = (1 - alpha) * image.astype(np.float32) + alpha * colour.astype(np.float32)
    return out.astype(np.uint8)


def _origin(title: str) -> tuple[str, int, int]:
    """(image name, y, x) of a preview titled ``image@y,x`` (0, 0 without coordinates)."""
    name, _, where = str(title).partition('@')
    try:
        y, x = (int(v) for v in where.split(','))
    except ValueError:
        return name, 0, 0
    return name, y, x


def _scale_factor(rec: dict) -> tuple[float, bool]:
    """(stored pixels per original pixel, known): the fine-tuning scale's ``rescale``;
    a fixed ``resize`` has no single factor, so coordinates stay in resized pixels."""
    scale = (rec.get('config') or {}).get('scale') or {}
    if scale.get('resize'):
        return 1.0, False
    return float(scale.get('rescale') or 1.0), True


def _scale_bar(ax, pixel_size_um: float, width_px: float) -> None:
    """A bar of a round length near a quarter of the panel, lower left, labelled in um."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    target = width_px * pixel_size_um / 4
    length = max((n * 10 ** k for k in range(-2, 5) for n in (1, 2, 5)
                  if n * 10 ** k <= target), default=target)
    bar = AnchoredSizeBar(ax.transData, length / pixel_size_um, f'{length:g} \u00b5m',
                          'lower left', pad=0.3, color='white', frameon=False, size_vertical=2,
                          fontproperties=dict(size=5))
    ax.add_artist(bar)


def prediction_overlays(records: Iterable[dict], work_dir: Path, out_dir: Path,
                        max_samples: int = 4) -> list[Path]:
    """One PNG per fine-tuning set: rows are methods (seed 0 or lowest), columns the test
    crops with the most foreground and the most errors, titled by image and origin in the
    image's original pixels (axes too; a scale bar where the set gives ``pixel_size_um``).
    Binary sets show hits and errors over the micrograph; multi-class sets the truth and
    the prediction painted over it, each class in its report-wide colour. Records whose
    previews are not on disk (``runs/`` removed) are skipped with a note."""
    from matplotlib.patches import Patch

    records = [r for r in records if r.get('status') == 'finished' and r.get('predictions')]
    colours = class_colour_map(name for rec in records
                               for name in (rec.get('dataset_meta') or {}).get('classes') or [])
    chosen: dict[str, dict[str, dict]] = defaultdict(dict)
    for rec in records:
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
        classes = meta.get('classes') or [f'class {i}' for i in range(
            int(max(s['truth'].max() for s in samples)) + 1)]
        colours.update({c: np.array([128, 128, 128], np.uint8) for c in classes
                        if c not in colours})
        multi = len(classes) > 2
        factor, known = _scale_factor(recs[labels[0]])
        n = min(max_samples, min(len(s['image']) for s in samples))
        per = 2 if multi else 1
        fig, axes = plt.subplots(len(labels), n * per, figsize=(2.2 * n * per, 2.5 * len(labels)),
                                 squeeze=False)
        for r, (label, s) in enumerate(zip(labels, samples)):
            titles = s['title'] if 'title' in s else [f'patch {c}' for c in range(n)]
            for c in range(n):
                image = s['image'][c]
                views = ([('truth', paint_over(image, class_colours(s['truth'][c], classes,
                                                                     colours))),
                          ('prediction', paint_over(image, class_colours(s['pred'][c], classes,
                                                                         colours)))]
                         if multi else
                         [('', overlay(image, s['truth'][c], s['pred'][c]))])
                name, y, x = _origin(titles[c])
                height, width = image.shape[0] / factor, image.shape[1] / factor
                y0, x0 = y / factor, x / factor
                for k, (what, picture) in enumerate(views):
                    ax = axes[r][c * per + k]
                    ax.imshow(picture, extent=(x0, x0 + width, y0 + height, y0))
                    ax.xaxis.set_major_locator(MaxNLocator(3, integer=True))
                    ax.yaxis.set_major_locator(MaxNLocator(3, integer=True))
                    ax.tick_params(labelsize=4, length=2, pad=1)
                    ax.set_title(f'{name} at y {y0:.0f}, x {x0:.0f} {what}'.strip(),
                                 fontsize=5)
                    if meta.get('pixel_size_um'):
                        _scale_bar(ax, float(meta['pixel_size_um']), width)
                    if c == 0 and k == 0:
                        ax.set_ylabel(label, fontsize=7)
        pixels = 'original pixels' if known else 'resized pixels (fixed resize)'
        if multi:
            handles = [Patch(color=colours[name] / 255, label=name) for name in classes]
            heading = f'{dataset}: ground truth and prediction over the micrograph'
        else:
            handles = [Patch(color=np.array(rgb) / 255, label=name) for rgb, name in
                       ((TP, 'true positive'), (FP, 'false positive'), (FN, 'false negative'))]
            heading = f'{dataset}: foreground hits and errors over the micrograph'
        fig.legend(handles=handles, loc='lower center', ncol=min(len(handles), 5), fontsize=7)
        fig.suptitle(f'{heading} (crops with most foreground / most errors; axes in {pixels})',
                     fontsize=8)
        fig.subplots_adjust(bottom=0.12, hspace=0.35)
        paths.append(save_figure(fig, Path(out_dir) / f'overlays_{dataset}.png'))
    return paths
