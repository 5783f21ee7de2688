"""Regenerates every table and figure of a work dir from its records (no training).

A work dir holds its records under ``records/``; a committed results folder holds them in
``records.jsonl.gz`` (:func:`export_records`), so ``tools/make_tables.py`` rebuilds its
tables from either. ``suite.json`` keeps what tables need from the suite, and the current
plan: the job key of every slot (row and seed) the runner last planned, which decides the one
configuration each row shows (:mod:`.configurations`).
"""
from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path
from typing import Optional

from matssl_bench.data import leakage
from matssl_bench.engine.records import RecordStore, record_problem
from matssl_bench.evaluation import statistics as stats
from matssl_bench.fileio.atomic import atomic_write, write_json_atomic
from matssl_bench.fileio.bounded_json import JsonProblem, read_json
from matssl_bench.report.configurations import job_slot, select
from matssl_bench.report.figures import (figure_formats, figure_hosts, miou_intervals,
                                         prediction_overlays, ranking_figure, validation_curves)
from matssl_bench.report.tables import (DEFAULT_BASELINE, finetune_tables, pairwise_table,
                                        per_class_table, quoted_table, ranking_table, write_table)
from matssl_bench.report.variant_tables import variant_run, write_variant_tables

SUITE_META = 'suite.json'
RECORDS_ARCHIVE = 'records.jsonl.gz'
PRIMARY_TABLES = ('table4', 'table5')


def save_suite_meta(work_dir: Path, suite, jobs=()) -> None:
    """Keep what tables need from the suite beside the records (quoted values, notes), and
    the planned job key of each slot of ``jobs``, merged into the slots planned before."""
    path = Path(work_dir) / SUITE_META
    plan = {}
    if path.is_file():
        try:
            plan = dict(json.loads(path.read_text()).get('plan') or {})
        except (ValueError, AttributeError):
            plan = {}  # an unreadable meta file is rewritten whole
    plan.update({job_slot(job): job.key for job in jobs if job.stage == 'finetune'})
    write_json_atomic(path, dict(
        name=suite.suite_name, protocol=suite.protocol, quoted=list(suite.get('quoted', [])),
        notes=suite.get('notes', ''), description=suite.get('description', ''),
        baseline=suite.get('baseline', DEFAULT_BASELINE), plan=plan))


# What the tables read from suite.json; quoted rows are dicts naming their table.
SUITE_META_SCHEMA = {'type': 'object', 'properties': {
    'name': {'type': 'string'}, 'notes': {'type': 'string'}, 'baseline': {'type': 'string'},
    'plan': {'type': 'object', 'additionalProperties': {'type': 'string'}},
    'quoted': {'type': 'array', 'items': {'type': 'object', 'required': ['table'],
                                          'properties': {'table': {'type': 'string'}}}}}}


def read_suite_meta(path: Path) -> dict:
    """suite.json beside the records; a bad one is named in one line and the tables go on
    without its quoted values, notes and plan."""
    empty = dict(quoted=[], notes='')
    if not path.exists():
        return empty
    try:
        return {**empty, **read_json(path, SUITE_META_SCHEMA)}
    except (JsonProblem, OSError) as err:
        print(f'warning: {path}: unusable suite metadata ({err}); tables without quoted '
              'values, notes and plan', file=sys.stderr)
        return empty


def load_records(work_dir: Path) -> list[dict]:
    """Every record of a work dir (``records/``) or results folder (``records.jsonl.gz``)."""
    work_dir = Path(work_dir)
    if (work_dir / 'records').is_dir():
        store = RecordStore(work_dir)
        return store.all('pretrain') + store.all('finetune')
    path = work_dir / RECORDS_ARCHIVE
    records = []
    with gzip.open(path, 'rt', encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
            except ValueError as err:
                raise ValueError(f'{path}: line {number}: not JSON ({err})') from None
            problem = record_problem(record, (record or {}).get('stage', '?')
                                     if isinstance(record, dict) else '?')
            if problem:
                raise ValueError(f'{path}: line {number}: {problem}')
            records.append(record)
    return records


def has_records(work_dir: Path) -> bool:
    return (Path(work_dir) / 'records').is_dir() or (Path(work_dir) / RECORDS_ARCHIVE).is_file()


def export_records(records: list[dict], out_dir: Path) -> Path:
    """``records.jsonl.gz``: every record (per-image areas, config, provenance; records hold
    no weights), one JSON line each, pretraining first, byte-identical for the same records."""
    ordered = sorted(records, key=lambda r: (r.get('stage') != 'pretrain', r.get('key', '')))
    text = ''.join(json.dumps(r, sort_keys=True, separators=(',', ':')) + '\n' for r in ordered)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode='wb', mtime=0, filename='') as f:
        f.write(text.encode('utf-8'))
    path = Path(out_dir) / RECORDS_ARCHIVE
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
    return path


def make_report(work_dir: Path, out_dir: Optional[Path] = None,
                formats: tuple[str, ...] = ('png',), all_records: bool = False,
                records: Optional[list[dict]] = None) -> dict[str, list[Path]]:
    """Write every table and figure of ``work_dir``'s records to ``out_dir`` (default
    ``WORK_DIR/tables``); figures as png plus any of svg/pdf in ``formats``; ``all_records``:
    each configuration of a row its own row (default: the current plan's, see
    :mod:`.configurations`); ``records``: the work dir's records, if already loaded.
    Returns the paths written per table name (figures: their png paths under
    ``'figures'``)."""
    records = load_records(work_dir) if records is None else records
    with figure_formats(formats), figure_hosts(records):
        return _make_report(work_dir, out_dir, all_records, records)


def _make_report(work_dir: Path, out_dir: Optional[Path], all_records: bool,
                 everything: list[dict]) -> dict[str, list[Path]]:
    work_dir = Path(work_dir)
    out_dir = Path(out_dir or work_dir / 'tables')
    meta_path = work_dir / SUITE_META
    meta = read_suite_meta(meta_path)
    plan = (meta.get('plan') or {}).values() if meta.get('plan') else None
    selection = select(everything, plan, all_records)
    pretraining = [r for r in selection.records if r.get('stage') == 'pretrain']
    # rows in the order of this suite's plan: a record another suite wrote first (the same
    # job in two suites) carries that suite's row index
    position = {key: i for i, key in enumerate(plan or ())}
    finetuning = [dict(r, plan_position=position[r['key']]) if r.get('key') in position else r
                  for r in selection.records if r.get('stage') == 'finetune']
    # variant runs (label subsets, frozen encoders, tricks) have tables of their own
    records = [r for r in finetuning if not variant_run(r)]
    tables = sorted({r.get('row', {}).get('table', 'table4') for r in records}) or ['table4']
    primary = [t for t in tables if t in PRIMARY_TABLES]
    baseline = meta.get('baseline', DEFAULT_BASELINE)
    ignored_note = selection.note()
    written: dict[str, list[Path]] = {}
    frames = finetune_tables(pretraining + records, primary, baseline,
                             ignored=selection.ignored) if primary else {}
    frames.update(finetune_tables(pretraining + records, [t for t in tables if t not in primary],
                                  baseline, primary=False, ignored=selection.ignored)
                  if set(tables) - set(primary) else {})
    family = (f"primary family: every method vs {baseline} on every fine-tuning set of "
              f"{' and '.join(primary)}, Holm over all of them" if primary else '')
    interval_tables = []
    for name in tables:
        table = frames[name]
        interval_tables.append(table)
        title = (f"{name}: suite {meta.get('name', '?')}, protocols "
                 f"{', '.join(sorted(set(table['protocol'])))}, metric "
                 f"{', '.join(sorted(set(table['metric']) - {''})) or '-'}. "
                 + (f'{family}. ' if name in primary else 'Exploratory. ')
                 + stats.method_note(baseline=baseline, primary=name in primary))
        if any(q['table'] == name for q in meta['quoted']):
            table = quoted_table(table, meta['quoted'], name)
        if ignored_note:
            title += f'. {ignored_note}'
        if meta.get('notes'):
            title += f". {meta['notes']}"
        if leakage.table_note(pretraining):
            title += f'. {leakage.table_note(pretraining)}'
        written[name] = write_table(table, out_dir, name, title)
        rows = [r for r in records if r.get('row', {}).get('table', 'table4') == name]
        written[f'{name}_per_class'] = write_table(
            per_class_table(rows), out_dir, f'{name}_per_class_iou',
            f'{name} companion (exploratory): per-class IoU (%) and mean absolute '
            'phase-fraction error per image (% points), means over seeds; test images whose '
            'ground truth contains each class')
        if any('test_last' in r for r in rows):
            last = finetune_tables(pretraining + records, [name], baseline, 'test_last',
                                   primary=False, ignored=selection.ignored)[name]
            written[f'{name}_last_epoch'] = write_table(
                last, out_dir, f'{name}_last_epoch',
                f'{name}, the last epoch\'s weights instead of the selected epoch\'s. '
                f'Exploratory. {stats.method_note(baseline=baseline, primary=False)}')
    if records:
        written['pairwise'] = write_table(
            pairwise_table(pretraining + records, tables), out_dir, 'pairwise',
            'Every pair of rows on each fine-tuning set, A - B on shared seeds and test images; '
            'a family of its own: Holm over all pairs of this table, Holm-consistent interval '
            f'delta_holm decides the verdict. {stats.method_note()}')
        ranking = ranking_table(pretraining + records, tables)
        written['ranking'] = write_table(
            ranking, out_dir, 'ranking',
            'Mean rank (1 = best mean mIoU) over the fine-tuning sets each method ran on; 95 % '
            'percentile interval from a bootstrap resampling, per set, every row\'s seeds and '
            'one test-image multiset shared by the set\'s rows '
            f'({stats.N_RESAMPLES} resamples); P(best on a set): share of resamples ranked '
            'first, averaged over sets. Descriptive.') + ranking_figure(ranking, out_dir)
    protocol_records = pretraining + finetuning
    written.update(write_variant_tables(protocol_records, out_dir, baseline))
    written['figures'] = (validation_curves(records, out_dir)
                          + miou_intervals(interval_tables, out_dir)
                          + prediction_overlays(records, work_dir, out_dir))
    return written
