"""Regenerates every table and figure of a work dir from its records (no training)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from matssl_bench.data import leakage
from matssl_bench.evaluation import statistics as stats
from matssl_bench.report.figures import (figure_formats, miou_intervals, prediction_overlays,
                                         validation_curves)
from matssl_bench.report.variant_tables import variant_run, write_variant_tables
from matssl_bench.engine.records import RecordStore
from matssl_bench.fileio.atomic import write_json_atomic
from matssl_bench.fileio.bounded_json import JsonProblem, read_json
from matssl_bench.report.tables import DEFAULT_BASELINE, finetune_table, per_class_table, quoted_table, write_table

SUITE_META = 'suite.json'


def save_suite_meta(work_dir: Path, suite) -> None:
    """Keep what tables need from the suite beside the records (quoted values, notes)."""
    write_json_atomic(Path(work_dir) / SUITE_META, dict(
        name=suite.suite_name, protocol=suite.protocol, quoted=list(suite.get('quoted', [])),
        notes=suite.get('notes', ''), description=suite.get('description', ''),
        baseline=suite.get('baseline', DEFAULT_BASELINE)))


# What the tables read from suite.json; quoted rows are dicts naming their table.
SUITE_META_SCHEMA = {'type': 'object', 'properties': {
    'name': {'type': 'string'}, 'notes': {'type': 'string'}, 'baseline': {'type': 'string'},
    'quoted': {'type': 'array', 'items': {'type': 'object', 'required': ['table'],
                                          'properties': {'table': {'type': 'string'}}}}}}


def read_suite_meta(path: Path) -> dict:
    """suite.json beside the records; a bad one is named in one line and the tables go on
    without its quoted values and notes."""
    empty = dict(quoted=[], notes='')
    if not path.exists():
        return empty
    try:
        return {**empty, **read_json(path, SUITE_META_SCHEMA)}
    except (JsonProblem, OSError) as err:
        print(f'warning: {path}: unusable suite metadata ({err}); tables without quoted '
              'values and notes', file=sys.stderr)
        return empty


def make_report(work_dir: Path, out_dir: Optional[Path] = None,
                formats: tuple[str, ...] = ('png',)) -> dict[str, list[Path]]:
    """Write every table and figure of ``work_dir``'s records to ``out_dir`` (default
    ``WORK_DIR/tables``); figures as png plus any of svg/pdf in ``formats``. Returns the
    paths written per table name (figures: their png paths under ``'figures'``)."""
    with figure_formats(formats):
        return _make_report(work_dir, out_dir)


def _make_report(work_dir: Path, out_dir: Optional[Path] = None) -> dict[str, list[Path]]:
    work_dir = Path(work_dir)
    out_dir = Path(out_dir or work_dir / 'tables')
    meta_path = work_dir / SUITE_META
    meta = read_suite_meta(meta_path)
    store = RecordStore(work_dir)
    records = store.all('finetune')
    # variant runs (label subsets, frozen encoders, tricks) have tables of their own
    all_records, records = records, [r for r in records if not variant_run(r)]
    pretraining = store.all('pretrain')  # the tables' precision column reads them
    tables = sorted({r.get('row', {}).get('table', 'table4') for r in records}) or ['table4']
    baseline = meta.get('baseline', DEFAULT_BASELINE)
    written: dict[str, list[Path]] = {}
    interval_tables = []
    for name in tables:
        table = finetune_table(pretraining + records, table=name, baseline=baseline)
        interval_tables.append(table)
        title = (f"{name}: suite {meta.get('name', '?')}, protocols "
                 f"{', '.join(sorted(set(table['protocol'])))}, metric "
                 f"{', '.join(sorted(set(table['metric']) - {''})) or '-'}. "
                 f"{stats.method_note(baseline=baseline)}")
        if any(q['table'] == name for q in meta['quoted']):
            table = quoted_table(table, meta['quoted'], name)
        if meta.get('notes'):
            title += f". {meta['notes']}"
        if leakage.table_note(pretraining):
            title += f'. {leakage.table_note(pretraining)}'
        written[name] = write_table(table, out_dir, name, title)
        rows = [r for r in records if r.get('row', {}).get('table', 'table4') == name]
        written[f'{name}_per_class'] = write_table(
            per_class_table(rows), out_dir, f'{name}_per_class_iou',
            f'{name} companion: per-class IoU (%) and mean absolute phase-fraction error per '
            'image (% points), means over seeds')
        if any('test_last' in r for r in rows):
            written[f'{name}_last_epoch'] = write_table(
                finetune_table(pretraining + records, table=name, baseline=baseline,
                               result='test_last'), out_dir, f'{name}_last_epoch',
                f'{name}, the last epoch\'s weights instead of the selected epoch\'s. '
                f'{stats.method_note(baseline=baseline)}')
    written.update(write_variant_tables(all_records, out_dir, baseline))  # variants beyond Tables 4-5
    written['figures'] = (validation_curves(records, out_dir)
                          + miou_intervals(interval_tables, out_dir)
                          + prediction_overlays(records, work_dir, out_dir))
    return written
