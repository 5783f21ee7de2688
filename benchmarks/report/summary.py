"""The terminal summary of a finished run: one compact block per main table, lines of at
most 100 characters, and the file to open first.

Each block shows the set, the method, the mean with its interval, the difference from the
baseline with its interval, the verdict and footnote marks; the notes become numbered
footnotes with short text (addresses and paths shortened; the full text stays in the CSV). Columns
are found by name patterns in the written CSV, not by a fixed list, so the summary follows
changes of the table layout: a column that is absent is left out.
"""
from __future__ import annotations

import math
import os
import re
import textwrap
from pathlib import Path
from typing import Optional

import pandas as pd

WIDTH = 100
NOTE_WIDTH = WIDTH - 6
_URL = re.compile(r'(?:https?|s3|file)://\S+')
_LONG_PATH = re.compile(r'(?<![\w<])(?:~|\.{1,2})?(?:/[\w.@+-]+){3,}/?')
_LOW = re.compile(r'(^|_| )(low|lower|lo)$')
_HIGH = re.compile(r'(^|_| )(high|upper|hi)$')


def _first(columns, *names: str) -> Optional[str]:
    for name in names:
        if name in columns:
            return name
    return None


def _column(columns, test) -> Optional[str]:
    return next((c for c in columns if test(str(c).lower())), None)


def find_columns(columns) -> dict[str, Optional[str]]:
    """The table's columns that hold each part of the summary (None where absent)."""
    columns = list(columns)
    delta_cols = [c for c in columns if str(c).lower().startswith(('delta', 'difference vs'))]
    plain = [c for c in columns if c not in delta_cols]
    return dict(
        set=_first(columns, 'fine-tune set', 'finetune set', 'split', 'set', 'dataset'),
        method=_first(columns, 'method', 'row'),
        pretrain=_first(columns, 'pretrain set', 'pretraining set'),
        mean=_first(columns, 'mean', 'mean mIoU (%)', 'mIoU (%)', 'mIoU')
        or _column(plain, lambda c: c.startswith('mean')),
        low=_column(plain, lambda c: bool(_LOW.search(c)) and 'p_' not in c),
        high=_column(plain, lambda c: bool(_HIGH.search(c)) and 'p_' not in c),
        interval=_first(columns, 'interval', 'ci95', '95% interval'),
        delta=_column(delta_cols, lambda c: not (_LOW.search(c) or _HIGH.search(c))
                      and 'interval' not in c),
        delta_low=_column(delta_cols, lambda c: bool(_LOW.search(c))),
        delta_high=_column(delta_cols, lambda c: bool(_HIGH.search(c))),
        delta_interval=_column(delta_cols, lambda c: 'interval' in c),
        verdict=_first(columns, 'verdict'),
        note=_first(columns, 'note', 'notes'),
    )


def _number(value) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _value(row, column: Optional[str], signed: bool = False) -> str:
    if column is None:
        return ''
    number = _number(row[column])
    if number is None:
        text = row[column]
        return '' if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    return f'{number:+.1f}' if signed else f'{number:.1f}'


def _with_interval(row, value: Optional[str], low: Optional[str], high: Optional[str],
                   interval: Optional[str], signed: bool = False) -> str:
    shown = _value(row, value, signed)
    if not shown:
        return ''
    if low and high and _value(row, low) and _value(row, high):
        return f'{shown} [{_value(row, low, signed)}, {_value(row, high, signed)}]'
    if interval and _value(row, interval):
        return f'{shown} {_value(row, interval)}'
    return shown


def short_note(text: str) -> str:
    """One footnote's text: addresses shown as ``<URL>`` (the CSV has them), long paths
    as their file name, at most one line."""
    text = _URL.sub('<URL>', ' '.join(str(text).split()))
    text = _LONG_PATH.sub(lambda m: '.../' + m.group(0).rstrip('/').rsplit('/', 1)[-1], text)
    return textwrap.shorten(text, NOTE_WIDTH, placeholder=' ...', break_on_hyphens=False)


def split_notes(text: str) -> list[str]:
    """A note cell's notes: the parts between ``; `` outside brackets."""
    parts, depth, current = [], 0, ''
    for i, char in enumerate(text):
        depth += (char in '([{') - (char in ')]}')
        if char == ';' and depth <= 0 and text[i + 1:i + 2] in (' ', ''):
            parts.append(current)
            current = ''
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _method(row, cols: dict) -> str:
    method = _value(row, cols['method'])
    pretrain = _value(row, cols['pretrain']) if cols['pretrain'] else ''
    if pretrain and pretrain != '-':
        method = f'{method} ({pretrain})'
    if not method:  # side-by-side tables name our rows in a column '... , ours'
        ours = [c for c in row.index if 'ours' in str(c) and _number(row[c]) is not None]
        method = str(ours[0]).split(' / ', 1)[-1].rsplit(', ours', 1)[0] if ours else '?'
    return method


def _fit(rows: list[list[str]], header: list[str], width: int = WIDTH) -> list[str]:
    """Left-aligned columns two spaces apart; the widest text columns are cut to fit."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    while sum(widths) + 2 * (len(widths) - 1) > width:
        i = max(range(len(widths)), key=lambda k: widths[k])
        if widths[i] <= 8:
            break
        widths[i] -= 1

    def cut(text: str, w: int) -> str:
        return text if len(text) <= w else text[:max(w - 1, 1)] + '~'

    return ['  '.join(cut(t, w).ljust(w) for t, w in zip(r, widths)).rstrip()
            for r in [header, *rows]]


def summarize_table(table: pd.DataFrame, name: str, path: Path) -> list[str]:
    """The compact block of one table: a heading line, the rows and the footnotes."""
    cols = find_columns(table.columns)
    notes: dict[str, int] = {}
    body = []
    for _, row in table.iterrows():
        marks = []
        raw = _value(row, cols['note'])
        for part in split_notes(raw):
            marks.append(str(notes.setdefault(short_note(part), len(notes) + 1)))
        mean = _with_interval(row, cols['mean'], cols['low'], cols['high'], cols['interval'])
        delta = _with_interval(row, cols['delta'], cols['delta_low'], cols['delta_high'],
                               cols['delta_interval'], signed=True)
        body.append([_value(row, cols['set']), _method(row, cols), mean or 'n/a', delta,
                     _value(row, cols['verdict']), ','.join(dict.fromkeys(marks))])
    header = ['set', 'method', 'mIoU [95% interval]', 'vs baseline', 'verdict', 'notes']
    keep = [i for i in range(len(header)) if i < 3 or any(r[i] for r in body)]
    lines = [f'{name}: {len(table)} rows; full table {_shown(path)}']
    lines += _fit([[r[i] for i in keep] for r in body], [header[i] for i in keep])
    lines += [f'  [{n}] {text}' for text, n in notes.items()]
    return lines


def _shown(path: Path) -> str:
    """``path`` relative to the working directory where that is shorter."""
    path = Path(path)
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)
    return relative if len(relative) < len(str(path)) else str(path)


def main_tables(written: dict[str, list[Path]]) -> list[str]:
    """The main tables of a report: those written with a per-class companion."""
    return [name for name in written if f'{name}_per_class' in written]


def _by_suffix(paths: list[Path], suffix: str) -> Optional[Path]:
    return next((p for p in paths if p.suffix == suffix), None)


def run_summary(written: dict[str, list[Path]], log_file: Optional[Path] = None) -> str:
    """What a finished run prints: each main table's block, the other files by name, and
    last the file to open first."""
    lines: list[str] = []
    mains = main_tables(written)
    for name in mains:
        csv, md = _by_suffix(written[name], '.csv'), _by_suffix(written[name], '.md')
        if csv is None or not csv.is_file():
            continue
        table = pd.read_csv(csv)
        lines += summarize_table(table, name, md or csv) + ['']
    others = [_by_suffix(paths, '.md') or paths[0] for name, paths in written.items()
              if name not in mains and name != 'figures' and paths]
    if others:
        lines += textwrap.wrap('Other tables (csv/md/tex): '
                               + ', '.join(p.stem for p in others), WIDTH,
                               subsequent_indent='  ')
    figures = written.get('figures', [])
    if figures:
        lines += textwrap.wrap('Figures: ' + ', '.join(p.name for p in figures), WIDTH,
                               subsequent_indent='  ')
    folder = next((p.parent for paths in written.values() for p in paths), None)
    if folder is not None and (others or figures):
        lines.append(f'All of them in {_shown(folder)}')
    if log_file is not None:
        lines.append(f'Library messages and warnings: {_shown(log_file)}')
    first = _by_suffix(written[mains[0]], '.md') if mains else None
    if first is not None:
        interval_figure = next((p for p in figures if p.stem == 'miou_intervals'), None)
        lines.append(f'Open first: {_shown(first)} (full table with notes)'
                     + (f', then {interval_figure.name}' if interval_figure else ''))
    return '\n'.join(lines)
