"""Tables derived from result records only (no training): Table 4-shaped mIoU tables."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from .records import atomic_write

TABLE_COLUMNS = ['fine-tune set', 'method', 'pretrain set', 'SSL init', 'protocol', 'seeds',
                 'mIoU (%)', 'std', 'published mIoU (%)', 'note']


def _fmt(value: float) -> str:
    return '' if value is None or (isinstance(value, float) and math.isnan(value)) else f'{value:.2f}'


def finetune_table(records: Iterable[dict]) -> pd.DataFrame:
    """One row per (fine-tune set, method, pretrain set, init, protocol), mean and std over seeds."""
    groups: dict[tuple, dict] = {}
    for rec in records:
        if rec.get('stage') != 'finetune':
            continue
        key = (rec['dataset'], rec['method_label'], rec['pretrain_set'] or '-',
               rec['encoder_init'], rec['protocol'])
        group = groups.setdefault(key, dict(values=[], seeds=[], reasons=[], row=rec.get('row', {}),
                                            order=rec.get('row', {}).get('index', 0)))
        if rec['status'] == 'finished':
            group['values'].append(rec['test']['mIoU'])
            group['seeds'].append(rec['seed'])
        else:
            group['reasons'].append(rec.get('reason', rec['status']))
    rows = []
    for (dataset, method, pretrain, init, protocol), g in sorted(groups.items(),
                                                                 key=lambda kv: kv[1]['order']):
        values = pd.Series(g['values'], dtype=float)
        note = '; '.join(sorted(set(g['reasons'])))
        if not g['values'] and not note:
            note = 'no finished run'
        rows.append({
            'fine-tune set': dataset, 'method': method, 'pretrain set': pretrain,
            'SSL init': init if pretrain != '-' else '-', 'protocol': protocol,
            'seeds': ','.join(str(s) for s in sorted(g['seeds'])) or '-',
            'mIoU (%)': values.mean() if len(values) else float('nan'),
            'std': values.std(ddof=1) if len(values) > 1 else float('nan'),
            'published mIoU (%)': g['row'].get('published', float('nan')),
            'note': note,
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def to_markdown(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in ('mIoU (%)', 'std', 'published mIoU (%)'):
        shown[column] = shown[column].map(_fmt)
    return shown.to_markdown(index=False)


def write_table(table: pd.DataFrame, out_dir: Path, name: str, title: str = '') -> list[Path]:
    """Write ``name.csv`` and ``name.md`` atomically; return their paths."""
    out_dir = Path(out_dir)
    csv_path, md_path = out_dir / f'{name}.csv', out_dir / f'{name}.md'
    atomic_write(csv_path, lambda tmp: table.to_csv(tmp, index=False, float_format='%.4f'))
    text = (f'## {title}\n\n' if title else '') + to_markdown(table) + '\n'
    atomic_write(md_path, lambda tmp: tmp.write_text(text))
    return [csv_path, md_path]
