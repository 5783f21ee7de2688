"""Tables derived from result records only (no training).

- ``table4``-style: one row per (fine-tune set, method, pretraining set, init,
  protocol) with mean and std over seeds, the published value and the difference;
- ``table5``-style: the EBC splits with our value beside quoted reference values
  (marked as quoted, never as our measurements);
- a per-class IoU companion table.
Each is written as CSV, Markdown and LaTeX.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from .records import atomic_write

TABLE_COLUMNS = ['fine-tune set', 'method', 'pretrain set', 'SSL init', 'precision', 'protocol',
                 'seeds', 'mIoU (%)', 'std', 'published mIoU (%)', 'difference', 'note']
NUMERIC = ('mIoU (%)', 'std', 'published mIoU (%)', 'difference')


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ''
    return f'{value:.2f}' if isinstance(value, (float, np.floating)) else str(value)


def _precision(rec: dict, pretrain_precision: dict) -> str:
    """'SSL bf16, FT fp32'-style: the precisions a finished result's stages ran with
    (records from before the precision option ran in fp32; '?' where the pretraining
    record is not among the records given)."""
    finetune = f"FT {rec.get('precision', 'fp32')}"
    if rec.get('depends_on') is None:
        return finetune
    return f"SSL {pretrain_precision.get(rec['depends_on'], '?')}, {finetune}"


def _group(records: Iterable[dict]) -> list[dict]:
    """Fine-tuning records grouped over seeds, in suite row order."""
    records = list(records)
    pretrain_precision = {rec['key']: rec.get('precision', 'fp32') for rec in records
                          if rec.get('stage') == 'pretrain' and rec.get('status') == 'finished'}
    groups: dict[tuple, dict] = {}
    for rec in records:
        if rec.get('stage') != 'finetune':
            continue
        key = (rec['dataset'], rec['method_label'], rec['pretrain_set'] or '-',
               rec.get('encoder_init_variant') or rec['encoder_init'], rec['protocol'])
        g = groups.setdefault(key, dict(key=key, finished=[], reasons=[], precisions=set(),
                                        row=rec.get('row', {})))
        if rec['status'] == 'finished':
            g['finished'].append(rec)
            g['precisions'].add(_precision(rec, pretrain_precision))
        else:
            g['reasons'].append(rec.get('reason', rec['status']))
    return sorted(groups.values(), key=lambda g: (g['row'].get('index', 0), g['key']))


def _stats(values: list[float]) -> tuple[float, float]:
    series = pd.Series(values, dtype=float)
    mean = series.mean() if len(series) else float('nan')
    std = series.std(ddof=1) if len(series) > 1 else float('nan')
    return mean, std


def finetune_table(records: Iterable[dict], table: Optional[str] = None) -> pd.DataFrame:
    """Mean and std over seeds per row; ``table`` keeps only rows of that suite table.

    ``records`` are fine-tuning records, plus the pretraining records they depend on
    (for the precision column)."""
    rows = []
    for g in _group(records):
        if table is not None and g['row'].get('table', 'table4') != table:
            continue
        dataset, method, pretrain, init, protocol = g['key']
        mean, std = _stats([r['test']['mIoU'] for r in g['finished']])
        published = g['row'].get('published')
        published = float('nan') if published is None else float(published)
        note = '; '.join(sorted(set(g['reasons']))) if not g['finished'] else ''
        rows.append({
            'fine-tune set': dataset, 'method': method, 'pretrain set': pretrain,
            # rows without SSL show the variant of their published weights (imagenet-v1, ...)
            'SSL init': init if pretrain != '-' or init not in ('random', 'imagenet', 'micronet')
                        else '-',
            'precision': ' / '.join(sorted(g['precisions'])) or '-',
            'protocol': protocol,
            'seeds': ','.join(str(r['seed']) for r in sorted(g['finished'], key=lambda r: r['seed']))
                     or '-',
            'mIoU (%)': mean, 'std': std, 'published mIoU (%)': published,
            'difference': mean - published, 'note': note or ('' if g['finished'] else 'no run'),
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def quoted_table(ours: pd.DataFrame, quoted: list[dict], table: str) -> pd.DataFrame:
    """Our rows of ``table`` side by side with the reference values quoted from other papers."""
    by_split: dict[str, dict] = defaultdict(dict)
    for q in quoted:
        if q['table'] == table:
            by_split[q['finetune']][f"{q['model']} / {q['encoder']} (quoted)"] = q['mIoU']
    rows = []
    for _, row in ours.iterrows():
        rows.append({'split': row['fine-tune set'],
                     **by_split.get(row['fine-tune set'], {}),
                     f"UNet++ / {row['method']} ({row['pretrain set']}), ours": row['mIoU (%)'],
                     'std': row['std'], 'published (%)': row['published mIoU (%)'],
                     'difference': row['difference'], 'precision': row['precision'],
                     'protocol': row['protocol'],
                     'seeds': row['seeds'], 'note': row['note']})
    return pd.DataFrame(rows)


def per_class_table(records: Iterable[dict]) -> pd.DataFrame:
    """Per-class IoU (%) per row, mean over seeds."""
    rows = []
    for g in _group(records):
        if not g['finished']:
            continue
        dataset, method, pretrain, init, protocol = g['key']
        classes = g['finished'][0].get('dataset_meta', {}).get('classes') or sorted(
            k[4:] for k in g['finished'][0]['test'] if k.startswith('IoU.'))
        per_class = {name: [rec['test'][f'IoU.{name}'] for rec in g['finished']]
                     for name in classes}
        rows.append({'fine-tune set': dataset, 'method': method, 'pretrain set': pretrain,
                     'protocol': protocol, 'seeds': len(g['finished']),
                     **{name: _stats(vals)[0] for name, vals in per_class.items()}})
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in shown.columns:
        if shown[column].dtype.kind == 'f':
            shown[column] = shown[column].map(_fmt)
    return shown.to_markdown(index=False)


def write_table(table: pd.DataFrame, out_dir: Path, name: str, title: str = '') -> list[Path]:
    """Write ``name.csv``, ``name.md`` and ``name.tex`` atomically; return their paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / f'{name}.{ext}' for ext in ('csv', 'md', 'tex')]
    atomic_write(paths[0], lambda tmp: table.to_csv(tmp, index=False, float_format='%.4f'))
    text = (f'## {title}\n\n' if title else '') + to_markdown(table) + '\n'
    atomic_write(paths[1], lambda tmp: tmp.write_text(text))
    latex = table.to_latex(index=False, float_format='%.2f', na_rep='--', caption=title or None,
                           escape=True)
    atomic_write(paths[2], lambda tmp: tmp.write_text(latex))
    return paths
