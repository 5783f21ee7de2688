"""Tables and figures of the variants beyond Tables 4-5 (label efficiency, frozen encoder,
transfer, training tricks, morphology), from records only (no training).

- ``label_efficiency.csv`` (one row per run) + ``label_efficiency_summary.csv`` (mean and
  95 % interval per n) + ``label_efficiency.png`` (mIoU vs n, a band per method);
- ``frozen.csv``: full fine-tuning, frozen encoder + decoder, linear probe side by side;
- ``transfer.csv`` (source x target, with RDT) + ``transfer.png`` (a heatmap per method);
- ``tricks.csv``: each trick's mIoU and its difference from the same method's baseline;
- ``per_class_morphology.csv``: region counts and radii per row and class.

All of them are exploratory: unadjusted p, a verdict from the unadjusted 95 % interval.
Intervals: the estimates of ``benchmarks/evaluation/statistics.py`` (a replicate component
plus a crossed bootstrap of the test images shared by every run, each on its own t quantile)
wherever every run of a row has per-image areas; the replicates are the label draws (label
efficiency) or the seeds; the test units of a transfer cell are the target images the source
never saw. Below the minimum evidence (:func:`statistics.evidence_problem`) a row keeps its
mean and leaves interval, p and verdict empty, with the reason in ``note``. Older records
without per-image areas get a t-interval over runs (``interval`` says which). The RDT, a
ratio of two image sets, is reported as a mean over seeds without an interval. Comparisons
are paired (:func:`paired_runs`): each method against the suite's baseline on the same draw
and seed (label efficiency, transfer), a frozen encoder against full fine-tuning of the same
method and seed.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Optional

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from matssl_bench.report.figures import save_figure  # noqa: E402
from matssl_bench.evaluation import statistics as bootstrap  # noqa: E402
from matssl_bench.report.tables import metric_cfg_of, result_areas, write_table  # noqa: E402
from matssl_bench.engine.transfer import rdt  # noqa: E402

LEVEL = 0.95
PAIRED_COLUMNS = ['delta', 'delta_ci95_low', 'delta_ci95_high', 'p', 'verdict', 'pairs']
EXPLORATORY = 'Exploratory: unadjusted p, verdict from the unadjusted 95 % interval'


def _evidence(clusters: Optional[list], runs: int, images: int, replicate_name: str,
              image_name: str) -> Optional[str]:
    n, kind = bootstrap.replicates(clusters, runs)
    return bootstrap.evidence_problem(n, images, replicate_name if kind == 'seed' else 'draw',
                                      image_name)


def paired_runs(pairs: list[tuple[dict, dict]], metric_cfg: dict, clusters: Optional[list] = None,
                replicate_name: str = 'seed', image_name: str = 'test image') -> dict:
    """``a - b`` over pairs of evaluation dicts of one seed/draw each (``record['test']`` or a
    transfer target's): mean difference in mIoU points, 95 % interval, two-sided p and an
    exploratory verdict, or a ``note`` why there are none; ``clusters`` names each pair's
    label draw (None: the pairs are the replicates).

    The suite's paired estimate (replicates plus the crossed image bootstrap) where every run
    has per-image areas of the same images; otherwise a paired t-test over the runs' mIoU.
    """
    nan = dict.fromkeys(PAIRED_COLUMNS[:4], float('nan'))
    if not pairs:
        return nan | dict(pairs=0, verdict='', note='no shared run')
    names = [u['name'] for u in pairs[0][0].get('images') or []]
    same_images = names and all({u['name'] for u in r.get('images') or []} == set(names)
                                for pair in pairs for r in pair)
    if same_images:
        a = [result_areas(x, names) for x, _ in pairs]
        problem = _evidence(clusters, len(pairs), bootstrap.image_count(a[0]), replicate_name,
                            image_name)
        if problem:  # the observed difference, no interval
            delta = float(np.mean([bootstrap.seed_value(x, metric_cfg)
                                   - bootstrap.seed_value(result_areas(y, names), metric_cfg)
                                   for x, (_, y) in zip(a, pairs)]))
            return nan | dict(delta=delta, pairs=len(pairs), verdict='', note=problem)
        estimate = bootstrap.paired_estimate(a, [result_areas(y, names) for _, y in pairs],
                                             metric_cfg, clusters)
        delta, (low, high), p = estimate.value, estimate.interval(LEVEL), estimate.p_value
    else:
        diffs = np.asarray([a['mIoU'] - b['mIoU'] for a, b in pairs], dtype=np.float64)
        problem = bootstrap.evidence_problem(len(diffs), bootstrap.MIN_IMAGES, replicate_name)
        if problem:
            return nan | dict(delta=float(diffs.mean()), pairs=len(pairs), verdict='',
                              note=problem)
        delta, low, high = mean_interval(diffs)
        p = (float(stats.ttest_1samp(diffs, 0.0).pvalue) if diffs.std() > 0
             else 0.0 if delta != 0 else 1.0)
    return dict(delta=delta, delta_ci95_low=low, delta_ci95_high=high, p=p, pairs=len(pairs),
                verdict=bootstrap.interval_verdict(low, high), note='')


def add_verdicts(rows: list[dict]) -> None:
    """Holm-adjust the ``p`` of ``rows`` (one table's comparisons) and add verdicts."""
    adjusted = bootstrap.holm([r.get('p', float('nan')) for r in rows])
    for row, p_holm in zip(rows, adjusted):
        row['p_holm'] = float(p_holm)
        row['verdict'] = bootstrap.verdict(row.get('delta', float('nan')), p_holm) \
            if 'delta' in row else ''


def mean_interval(values: Iterable[float], level: float = LEVEL) -> tuple[float, float, float]:
    """Mean and the ``level`` t-interval of the mean (NaN bounds with fewer than 2 values)."""
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], float)
    if len(values) == 0:
        return float('nan'), float('nan'), float('nan')
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float('nan'), float('nan')
    sem = stats.sem(values)
    if sem == 0:
        return mean, mean, mean
    low, high = stats.t.interval(level, len(values) - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def runs_interval(results: list[dict], metric_cfg: dict, clusters: Optional[list] = None,
                  replicate_name: str = 'seed',
                  image_name: str = 'test image') -> tuple[float, float, float, str, str]:
    """Mean mIoU over runs, its 95 % interval, the interval's kind and a note (why there is
    none); ``results`` are the runs' evaluation dicts (``record['test']`` or a transfer
    target's), ``clusters`` their label draws (None: runs are the replicates)."""
    if results and all(r.get('images') for r in results):
        areas = [result_areas(r) for r in results]
        values = [bootstrap.seed_value(a, metric_cfg) for a in areas]
        problem = _evidence(clusters, len(results), bootstrap.image_count(areas[0]),
                            replicate_name, image_name)
        if problem:
            return float(np.mean(values)), float('nan'), float('nan'), '', problem
        estimate = bootstrap.row_estimate(areas, metric_cfg, clusters)
        return (estimate.value, *estimate.interval(LEVEL), 'seeds + crossed images', '')
    values = [r['mIoU'] for r in results]
    problem = bootstrap.evidence_problem(len(values), bootstrap.MIN_IMAGES, replicate_name)
    if problem:
        return float(np.mean(values)), float('nan'), float('nan'), '', problem
    return (*mean_interval(values), 't over runs', '')


def _finished(records: Iterable[dict]) -> list[dict]:
    return [r for r in records if r.get('stage') == 'finetune' and r.get('status') == 'finished']


def method_of(rec: dict) -> str:
    """The method's label, with the settings that set its configuration apart where several
    configurations of a row are tabulated (``--all-records``)."""
    label = rec.get('config_label')
    return rec['method_label'] + (f' [{label}]' if label else '')


def _scale(rec: dict) -> dict:
    return rec.get('config', {}).get('scale', {})


def encoder_mode(rec: dict) -> str:
    return _scale(rec).get('encoder_mode', 'full')


def _ident(rec: dict) -> dict:
    return {'method': method_of(rec), 'pretrain set': rec.get('pretrain_set') or '-'}


def _label(rec: dict) -> str:
    pretrain = rec.get('pretrain_set')
    return method_of(rec) + (f' ({pretrain})' if pretrain else '')


def _plain(rec: dict) -> bool:
    """A run of no label-subset or trick variant (all labels, no trick row)."""
    return not rec.get('config', {}).get('labels') and 'trick' not in rec.get('row', {})


def variant_run(rec: dict) -> bool:
    """A run that is not a Table 4-5 run: a label subset, a frozen encoder or a trick row."""
    return not _plain(rec) or encoder_mode(rec) != 'full'


def _summary(groups: dict, columns: list[str]) -> list[dict]:
    rows = []
    for key, recs in groups.items():
        mean, low, high, kind, note = runs_interval([r['test'] for r in recs],
                                                    metric_cfg_of(recs[0]))
        rows.append({**dict(zip(columns, key)), 'runs': len(recs),
                     'seeds': ','.join(str(s) for s in sorted({r['seed'] for r in recs})),
                     'mIoU': mean, 'ci_low': low, 'ci_high': high, 'interval': kind,
                     'note': note})
    return rows


# -- label efficiency ----------------------------------------------------------------------
def _group_key(rec: dict) -> tuple:
    return (rec['dataset'], method_of(rec), rec.get('pretrain_set'), rec.get('protocol'))


def label_efficiency_table(records: Iterable[dict]) -> pd.DataFrame:
    """One row per run on a label subset, plus the all-labels runs of the same rows."""
    records = _finished(records)
    subsets = {_group_key(r) for r in records if r.get('config', {}).get('labels')}
    rows = []
    for rec in records:
        labels = rec.get('config', {}).get('labels')
        if not labels:
            if not (_plain(rec) and encoder_mode(rec) == 'full' and _group_key(rec) in subsets):
                continue
            labels = dict(n='all', draw=0)
        rows.append({**_ident(rec), 'dataset': rec['dataset'], 'n_requested': labels['n'],
                     'n_labelled': rec.get('n_labelled', labels['n']), 'draw': labels['draw'],
                     'seed': rec['seed'], 'mIoU': rec['test']['mIoU'],
                     'protocol': rec.get('protocol'), 'key': rec['key']})
    columns = ['method', 'pretrain set', 'dataset', 'n_requested', 'n_labelled', 'draw', 'seed',
               'mIoU', 'protocol', 'key']
    return pd.DataFrame(rows, columns=columns).sort_values(
        ['dataset', 'method', 'pretrain set', 'n_labelled', 'draw', 'seed'], ignore_index=True)


def label_efficiency_summary(table: pd.DataFrame, records: Iterable[dict],
                             baseline: str = 'RandomInit') -> pd.DataFrame:
    """Mean and interval per (set, method, n), and each method minus ``baseline`` (a method's
    registry name) on the same draws and seeds."""
    by_key = {r['key']: r for r in records}
    keys = ['dataset', 'method', 'pretrain set', 'n_labelled']
    runs = {}
    for key, group in table.groupby(keys, sort=True):
        runs[key] = {(d, s): by_key[k] for d, s, k in zip(group['draw'], group['seed'],
                                                         group['key'])}
    rows = []
    for key, by_run in runs.items():
        recs = list(by_run.values())
        draws = [d for d, _ in by_run]  # the label draws are the replicates
        mean, low, high, kind, note = runs_interval([r['test'] for r in recs],
                                                    metric_cfg_of(recs[0]), draws, 'run')
        row = dict(zip(keys, key), runs=len(recs), draws=len(set(draws)), mIoU=mean,
                   ci_low=low, ci_high=high, interval=kind, note=note)
        if recs[0]['method'] != baseline:
            base = next((b for k, b in runs.items() if k[0] == key[0] and k[3] == key[3]
                         and next(iter(b.values()))['method'] == baseline), {})
            shared = sorted(set(by_run) & set(base))
            _merge(row, paired_runs([(by_run[s]['test'], base[s]['test']) for s in shared],
                                    metric_cfg_of(recs[0]), [d for d, _ in shared], 'run'))
        rows.append(row)
    return pd.DataFrame(rows, columns=keys + ['runs', 'draws', 'mIoU', 'ci_low', 'ci_high',
                                              'interval'] + PAIRED_COLUMNS + ['note'])


def _merge(row: dict, paired: dict) -> None:
    """Add a comparison to a row, its note after the row's own."""
    note = paired.pop('note', '')
    row.update(paired)
    row['note'] = '; '.join(n for n in (row.get('note', ''), note and f'delta: {note}') if n)


def label_efficiency_figure(summary: pd.DataFrame, path: Path) -> Path:
    """mIoU vs number of labelled images, one panel per fine-tuning set, a band per method."""
    sets = sorted(summary['dataset'].unique())
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], sets):
        part = summary[summary['dataset'] == dataset]
        for (method, pretrain), curve in part.groupby(['method', 'pretrain set']):
            curve = curve.sort_values('n_labelled')
            label = method if pretrain == '-' else f'{method} ({pretrain})'
            line, = ax.plot(curve['n_labelled'], curve['mIoU'], marker='o', label=label)
            ax.fill_between(curve['n_labelled'], curve['ci_low'], curve['ci_high'],
                            color=line.get_color(), alpha=0.2)
        ax.set_xscale('log', base=2)
        sizes = sorted(part['n_labelled'].unique())
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        ax.set_xlabel('labelled training images')
        ax.set_ylabel('test mIoU (%)')
        ax.set_title(f'{dataset}: label efficiency ({int(LEVEL * 100)} % interval)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


# -- frozen encoder ------------------------------------------------------------------------
def frozen_table(records: Iterable[dict]) -> pd.DataFrame:
    """Full fine-tuning, frozen encoder + decoder and linear probe per set and method; each
    frozen mode minus full fine-tuning of the same method on the same seeds."""
    groups: dict[tuple, list] = defaultdict(list)
    for rec in _finished(records):
        if _plain(rec):
            groups[(rec['dataset'], method_of(rec), rec.get('pretrain_set') or '-',
                    encoder_mode(rec), rec.get('protocol'))].append(rec)
    columns = ['dataset', 'method', 'pretrain set', 'encoder mode', 'protocol']
    order = {'full': 0, 'frozen-decoder': 1, 'linear-probe': 2}
    rows = sorted(_summary(groups, columns),
                  key=lambda r: (r['dataset'], r['method'], r['pretrain set'],
                                 order[r['encoder mode']]))
    for row in rows:
        key = tuple(row[c] for c in columns)
        full = {r['seed']: r for r in groups.get(key[:3] + ('full',) + key[4:], [])}
        if row['encoder mode'] != 'full' and full:
            mine = {r['seed']: r for r in groups[key]}
            shared = sorted(set(mine) & set(full))
            _merge(row, paired_runs([(mine[s]['test'], full[s]['test']) for s in shared],
                                    metric_cfg_of(groups[key][0])))
    return pd.DataFrame(rows, columns=columns + ['runs', 'seeds', 'mIoU', 'ci_low', 'ci_high',
                                                 'interval'] + PAIRED_COLUMNS + ['note'])


# -- transfer ------------------------------------------------------------------------------
def transfer_runs(records: Iterable[dict]) -> pd.DataFrame:
    """One row per run and target set (the source's own test split included, RDT 0)."""
    rows = []
    for rec in _finished(records):
        if 'transfer' not in rec or variant_run(rec):  # full fine-tuning on all labels only
            continue
        source = rec['test']['mIoU']
        scores = {rec['dataset']: rec['test'], **rec['transfer']}
        for target, metrics in sorted(scores.items()):
            if 'skipped' in metrics:
                continue
            rows.append({**_ident(rec), 'source': rec['dataset'], 'target': target,
                         'seed': rec['seed'], 'mIoU': metrics['mIoU'], 'source mIoU': source,
                         'rdt': rdt(metrics['mIoU'], source), 'key': rec.get('key'),
                         'test images': len(metrics.get('images') or []) or None,
                         'seen by source': len(metrics.get('seen_by_source', []))})
    return pd.DataFrame(rows, columns=['method', 'pretrain set', 'source', 'target', 'seed',
                                       'mIoU', 'source mIoU', 'rdt', 'key', 'test images',
                                       'seen by source'])


def transfer_table(runs: pd.DataFrame, records: Iterable[dict] = (),
                   baseline: str = 'RandomInit') -> pd.DataFrame:
    """Mean mIoU and RDT per method, source and target; with ``records``, intervals of the
    mIoU and each method minus ``baseline`` on the same seeds, the test units being the target
    images the source never saw (the RDT: a mean over seeds, no interval)."""
    by_key = {r['key']: r for r in records}
    keys = ['method', 'pretrain set', 'source', 'target']

    def result(key: str, target: str, source: str) -> dict:
        rec = by_key[key]
        return rec['test'] if target == source else rec['transfer'][target]

    groups = {key: group for key, group in runs.groupby(keys, sort=True)}
    rows = []
    for key, group in groups.items():
        _, _, source, target = key
        row = dict(zip(keys, key), seeds=','.join(map(str, sorted(group['seed']))),
                   rdt=float(np.mean(group['rdt'])), test_images=group['test images'].max(),
                   seen_by_source=group['seen by source'].max())
        if all(k in by_key for k in group['key']):
            results = {s: result(k, target, source) for s, k in zip(group['seed'], group['key'])}
            cfg = metric_cfg_of(by_key[group['key'].iloc[0]])
            mean, low, high, kind, note = runs_interval(list(results.values()), cfg,
                                                        image_name='unseen test image')
            row.update(mIoU=mean, ci_low=low, ci_high=high, interval=kind, note=note)
            method = by_key[group['key'].iloc[0]]['method']
            base = next((g for k, g in groups.items() if k[2:] == key[2:]
                         and by_key.get(g['key'].iloc[0], {}).get('method') == baseline), None)
            if method != baseline and base is not None:
                theirs = {s: result(k, target, source) for s, k in zip(base['seed'], base['key'])}
                shared = sorted(set(results) & set(theirs))
                _merge(row, paired_runs([(results[s], theirs[s]) for s in shared], cfg,
                                        image_name='unseen test image'))
        else:
            mean, low, high, kind, note = runs_interval([dict(mIoU=v) for v in group['mIoU']],
                                                        {})
            row.update(mIoU=mean, ci_low=low, ci_high=high, interval=kind, note=note)
        rows.append(row)
    return pd.DataFrame(rows, columns=keys + ['seeds', 'test_images', 'seen_by_source',
                                              'mIoU', 'ci_low', 'ci_high', 'rdt', 'interval']
                        + PAIRED_COLUMNS + ['note'])


def transfer_figure(table: pd.DataFrame, path: Path) -> Path:
    """A source x target heatmap of test mIoU per method, each cell annotated with its RDT."""
    methods = sorted({(m, p) for m, p in zip(table['method'], table['pretrain set'])})
    sets = sorted(set(table['source']) | set(table['target']))
    fig, axes = plt.subplots(1, len(methods), squeeze=False, figsize=(
        max(4.0, (1.3 * len(sets) + 1.5) * len(methods)), 1.1 * len(sets) + 2))
    for ax, (method, pretrain) in zip(axes[0], methods):
        part = table[(table['method'] == method) & (table['pretrain set'] == pretrain)]
        grid = np.full((len(sets), len(sets)), np.nan)
        notes = {}
        for _, row in part.iterrows():
            i, j = sets.index(row['source']), sets.index(row['target'])
            grid[i, j] = row['mIoU']
            notes[i, j] = f"{row['mIoU']:.1f}\nRDT {row['rdt']:+.2f}"
        image = ax.imshow(grid, vmin=0, vmax=100, cmap='viridis')
        for (i, j), text in notes.items():
            ax.text(j, i, text, ha='center', va='center', fontsize=7,
                    color='white' if grid[i, j] < 60 else 'black')
        ax.set_xticks(range(len(sets)), sets, rotation=45, ha='right', fontsize=7)
        ax.set_yticks(range(len(sets)), sets, fontsize=7)
        ax.set_xlabel('tested on')
        ax.set_ylabel('fine-tuned on')
        ax.set_title(method if pretrain == '-' else f'{method} ({pretrain})', fontsize=8)
    fig.colorbar(image, ax=list(axes[0]), label='test mIoU (%)', shrink=0.8)
    return save_figure(fig, path)


# -- training tricks -----------------------------------------------------------------------
def tricks_table(records: Iterable[dict]) -> pd.DataFrame:
    groups: dict[tuple, list] = defaultdict(list)
    settings = {}
    for rec in _finished(records):
        trick = rec.get('row', {}).get('trick')
        if trick is None or rec.get('config', {}).get('labels'):
            continue
        key = (rec['dataset'], method_of(rec), rec.get('pretrain_set') or '-', trick)
        groups[key].append(rec)
        settings[key] = ', '.join(f'{k}={v}' for k, v in sorted(rec['row'].get('scale', {})
                                                              .items())) or 'defaults'
    columns = ['dataset', 'method', 'pretrain set', 'trick']
    rows = _summary(groups, columns)
    baseline = {(r['dataset'], r['method'], r['pretrain set']): r['mIoU'] for r in rows
                if r['trick'] == 'baseline'}
    for r in rows:
        key = tuple(r[c] for c in columns)
        r['settings'] = settings[key]
        r['vs baseline'] = r['mIoU'] - baseline.get(key[:3], float('nan'))
    order = {key: min(rec.get('row', {}).get('index', 0) for rec in recs)  # suite row order
             for key, recs in groups.items()}
    rows.sort(key=lambda r: (r['dataset'], r['method'], r['pretrain set'],
                             order[tuple(r[c] for c in columns)]))
    return pd.DataFrame(rows, columns=columns + ['settings', 'runs', 'seeds', 'mIoU', 'ci_low',
                                                 'ci_high', 'vs baseline', 'note'])


# -- morphology ----------------------------------------------------------------------------
def morphology_table(records: Iterable[dict]) -> pd.DataFrame:
    """Per row and class: totals over the test images, then relative errors (mean over seeds)."""
    groups: dict[tuple, list] = defaultdict(list)
    for rec in _finished(records):
        if rec.get('config', {}).get('labels'):  # label subsets: see label_efficiency
            continue
        for entry in rec.get('morphology', []):
            groups[(rec['dataset'], method_of(rec), rec.get('pretrain_set') or '-',
                    encoder_mode(rec), rec.get('row', {}).get('trick', '-'),
                    entry['class_name'], rec['key'])].append(entry)
    per_seed = []  # one entry per run
    for key, entries in groups.items():
        count_true = sum(e['count_true'] for e in entries)
        count_pred = sum(e['count_pred'] for e in entries)
        radius = {side: _weighted_radius(entries, side) for side in ('true', 'pred')}
        per_seed.append(dict(key=key[:-1], count_true=count_true, count_pred=count_pred,
                             radius_true=radius['true'], radius_pred=radius['pred']))
    rows = []
    for key in sorted({p['key'] for p in per_seed}):
        part = [p for p in per_seed if p['key'] == key]
        mean = {k: float(np.nanmean([p[k] for p in part])) if part else float('nan')
                for k in ('count_true', 'count_pred', 'radius_true', 'radius_pred')}
        rows.append({**dict(zip(['dataset', 'method', 'pretrain set', 'encoder mode', 'trick',
                                 'class'], key)), 'seeds': len(part),
                     'regions (truth)': mean['count_true'],
                     'regions (prediction)': mean['count_pred'],
                     'region count rel. error': _rel(mean['count_pred'], mean['count_true']),
                     'mean eq. radius px (truth)': mean['radius_true'],
                     'mean eq. radius px (prediction)': mean['radius_pred'],
                     'radius rel. error': _rel(mean['radius_pred'], mean['radius_true'])})
    return pd.DataFrame(rows)


def _weighted_radius(entries: list[dict], side: str) -> float:
    """Mean equivalent radius over all regions of all images (weighted by region counts)."""
    counts = np.array([e[f'count_{side}'] for e in entries], float)
    radii = np.array([e[f'mean_radius_{side}'] for e in entries], float)
    keep = counts > 0
    return float((counts[keep] * radii[keep]).sum() / counts[keep].sum()) if keep.any() \
        else float('nan')


def _rel(pred: float, true: float) -> float:
    return (pred - true) / true if true and not math.isnan(true) else float('nan')


# -- all of them ---------------------------------------------------------------------------
def write_variant_tables(records: Iterable[dict], out_dir: Path,
                         baseline: str = 'RandomInit') -> dict[str, list[Path]]:
    """Write the tables (csv, md, tex) and figures of every variant present in ``records``;
    methods are compared with ``baseline`` (a registry name) where a variant pairs them."""
    records = list(records)
    out_dir = Path(out_dir)
    written: dict[str, list[Path]] = {}
    labels = label_efficiency_table(records)
    if len(labels):
        summary = label_efficiency_summary(labels, records, baseline)
        written['label_efficiency'] = (
            write_table(labels, out_dir, 'label_efficiency',
                        'Label efficiency: test mIoU (%) per run (n labelled images, draw, seed)')
            + write_table(summary, out_dir, 'label_efficiency_summary',
                          f'Label efficiency: mean and {int(LEVEL * 100)} % interval over '
                          f'draws and seeds; delta = method - {baseline} on the same draws '
                          f'and seeds (paired). {EXPLORATORY}')
            + [label_efficiency_figure(summary, out_dir / 'label_efficiency.png')])
    frozen = (frozen_table(records) if any(encoder_mode(r) != 'full' for r in _finished(records))
              else ())
    if len(frozen) and set(frozen['encoder mode']) != {'full'}:
        written['frozen'] = write_table(
            frozen, out_dir, 'frozen',
            'Frozen encoder: full fine-tuning, frozen encoder + decoder, linear probe; delta = '
            'frozen mode - full fine-tuning of the same method and seeds (paired). '
            f'{EXPLORATORY}')
    runs = transfer_runs(records)
    if len(runs):
        table = transfer_table(runs, records, baseline)
        written['transfer'] = (write_table(table, out_dir, 'transfer',
                                           'Transfer: test mIoU (%) on each target set; '
                                           'scored on the target test images the source '
                                           'did not train or select on (seen_by_source: '
                                           'left out); RDT = (target - source) / source; '
                                           'delta = '
                                           f'method - {baseline} on the same seeds (paired). '
                                           f'{EXPLORATORY}')
                               + [transfer_figure(table, out_dir / 'transfer.png')])
    tricks = tricks_table(records)
    if len(tricks):
        written['tricks'] = write_table(tricks, out_dir, 'tricks',
                                        'Training tricks: test mIoU (%) and difference from '
                                        'the baseline of the same method. Exploratory.')
    morphology = morphology_table(records)
    if len(morphology):
        written['per_class_morphology'] = write_table(
            morphology, out_dir, 'per_class_morphology',
            'Per-class morphology: connected regions and mean equivalent radius, '
            'prediction vs truth (test images)')
    return written
