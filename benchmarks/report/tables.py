"""Tables derived from result records only (no training).

- ``table4``-style: one row per (fine-tune set, method, pretraining set, init, protocol):
  per-seed values, the mean over seeds with a 95 % hierarchical-bootstrap interval, the
  paired comparison with the suite's baseline row (difference, interval, Holm-adjusted
  p, verdict), the published value and the difference;
- ``table5``-style: the EBC splits with our value beside quoted reference values
  (marked as quoted, never as our measurements);
- a per-class companion: IoU per class and the phase-fraction error per class.
Each is written as CSV, Markdown and LaTeX. Every number comes from the records' per-image
areas through :func:`metrics.summarize` / :mod:`stats`, so rebuilding gives the same tables.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from matssl_bench.evaluation import statistics as stats
from matssl_bench.evaluation.metrics import summarize, unit_arrays
from matssl_bench.fileio.atomic import atomic_write

INTERVAL_COLUMNS = ['per_seed', 'mean', 'ci95_low', 'ci95_high', 'delta_vs_baseline',
                    'delta_ci95_low', 'delta_ci95_high', 'p_vs_baseline', 'verdict']
TABLE_COLUMNS = (['fine-tune set', 'method', 'pretrain set', 'SSL init', 'precision', 'protocol',
                  'metric', 'seeds'] + INTERVAL_COLUMNS
                 + ['published mIoU (%)', 'difference', 'note'])
DEFAULT_BASELINE = 'RandomInit'
NO_IMAGES = 'no interval: records without per-image results (run predates them)'


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ''
    return f'{value:.2f}' if isinstance(value, (float, np.floating)) else str(value)


def _precision(rec: dict, pretrain_precision: dict) -> str:
    """'SSL bf16, FT fp32'-style: the precisions a finished result's stages ran with
    (records from before the precision option ran in fp32; '?' where the pretraining
    record is not among the records given), then the fine-tuning's process count when
    above 1 and 'non-deterministic' when the suite turned ``deterministic`` off."""
    finetune = f"FT {rec.get('precision', 'fp32')}"
    # how it ran, where it differs from one deterministic process (records before: so)
    extra = ''.join([f", {rec['world_size']} processes" if rec.get('world_size', 1) > 1 else '',
                     ', non-deterministic' if rec.get('deterministic') is False else ''])
    if rec.get('depends_on') is None:
        return finetune + extra
    return f"SSL {pretrain_precision.get(rec['depends_on'], '?')}, {finetune}{extra}"


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
        g = groups.setdefault(key, dict(key=key, method=rec.get('method'), finished=[],
                                        reasons=[], precisions=set(), row=rec.get('row', {})))
        if rec['status'] == 'finished':
            g['finished'].append(rec)
            g['precisions'].add(_precision(rec, pretrain_precision))
        else:
            g['reasons'].append(rec.get('reason', rec['status']))
    for g in groups.values():
        g['finished'].sort(key=lambda r: r['seed'])
    return sorted(groups.values(), key=lambda g: (g['row'].get('index', 0), g['key']))


def metric_cfg_of(rec: dict, result: str = 'test') -> dict:
    """The record's metric settings, with class names (records before per-image results
    name the pooled published convention ``published``)."""
    cfg = dict(rec.get('metric') or {})
    cfg.setdefault('convention', rec[result].get('convention', 'clean'))
    classes = (rec.get('dataset_meta') or {}).get('classes')
    cfg.setdefault('class_names', classes or sorted(k[4:] for k in rec[result]
                                                    if k.startswith('IoU.')))
    return cfg


def _has_images(recs: list[dict], result: str = 'test') -> bool:
    return bool(recs) and all(r.get(result, {}).get('images') for r in recs)


def seed_metrics(rec: dict, result: str = 'test') -> dict:
    """A finished record's numbers, from its per-image areas where it has them."""
    units = rec[result].get('images')
    return summarize(units, metric_cfg_of(rec, result)) if units else rec[result]


def result_areas(result: dict, names: Optional[list[str]] = None) -> stats.SeedAreas:
    """The per-unit areas of one evaluation dict (``record['test']``, a transfer target's),
    in evaluation order or in the order of ``names``."""
    units = result['images']
    if names is not None:
        by_name = {u['name']: u for u in units}
        units = [by_name[n] for n in names]
    return stats.SeedAreas(unit_arrays(units, 'intersection'), unit_arrays(units, 'union'))


def _areas(rec: dict, result: str = 'test',
           names: Optional[list[str]] = None) -> stats.SeedAreas:
    return result_areas(rec[result], names)


def _paired(g: dict, base: dict, result: str, n_resamples: int, bootstrap_seed: int):
    """(delta, low, high, p, note) of a row against its baseline row."""
    base_by_seed = {r['seed']: r for r in base['finished']}
    shared = [r for r in g['finished'] if r['seed'] in base_by_seed]
    if not shared:
        return None, 'no seed shared with the baseline row'
    if not (_has_images(shared, result)
            and _has_images([base_by_seed[r['seed']] for r in shared], result)):
        return None, NO_IMAGES
    names = [u['name'] for u in shared[0][result]['images']]
    for rec in shared:
        other = base_by_seed[rec['seed']]
        if ({u['name'] for u in rec[result]['images']} != set(names)
                or {u['name'] for u in other[result]['images']} != set(names)):
            return None, 'test images differ from the baseline row\'s'
    method = [_areas(r, result, names) for r in shared]
    baseline = [_areas(base_by_seed[r['seed']], result, names) for r in shared]
    return stats.paired_difference(method, baseline, metric_cfg_of(shared[0], result),
                                   n_resamples, bootstrap_seed), ''


def finetune_table(records: Iterable[dict], table: Optional[str] = None,
                   baseline: str = DEFAULT_BASELINE, result: str = 'test',
                   n_resamples: int = stats.N_RESAMPLES,
                   bootstrap_seed: int = stats.BOOTSTRAP_SEED) -> pd.DataFrame:
    """Per-seed values, mean, intervals and the comparison with ``baseline`` per row.

    ``records`` are fine-tuning records, plus the pretraining records they depend on
    (for the precision column); ``table`` keeps only rows of that suite table;
    ``baseline`` is a method's registry name; ``result`` is ``test`` (the selected epoch)
    or ``test_last``.
    """
    groups = [g for g in _group(records)
              if table is None or g['row'].get('table', 'table4') == table]
    baselines = {}
    for g in groups:
        dataset, protocol = g['key'][0], g['key'][4]
        if g['method'] == baseline and (dataset, protocol) not in baselines:
            baselines[(dataset, protocol)] = g
    rows = []
    for g in groups:
        dataset, method, pretrain, init, protocol = g['key']
        finished = [r for r in g['finished'] if result in r]
        notes = [] if finished else [('; '.join(sorted(set(g['reasons']))) or 'no run')]
        values = [seed_metrics(r, result)['mIoU'] for r in finished]
        mean, low, high = (float(np.mean(values)) if values else float('nan'),
                           float('nan'), float('nan'))
        if finished and _has_images(finished, result):
            mean, low, high = stats.row_interval([_areas(r, result) for r in finished],
                                                 metric_cfg_of(finished[0], result),
                                                 n_resamples, bootstrap_seed)
        elif finished:
            notes.append(NO_IMAGES)
        delta = (float('nan'),) * 4
        verdict = ''
        base = baselines.get((dataset, protocol))
        if g['method'] == baseline:
            verdict = 'baseline' if finished else ''
        elif finished:
            if base is None or not base['finished']:
                notes.append(f'no comparison: the baseline {baseline} has no finished run '
                             f'on {dataset}')
            else:
                compared, why = _paired(g, base, result, n_resamples, bootstrap_seed)
                if compared is None:
                    notes.append(f'no comparison: {why}')
                else:
                    delta = compared
        if g['row'].get('overrides'):  # --cfg-options / --pretrain-sets changed this row
            notes.append('differs from the suite file: ' + '; '.join(g['row']['overrides']))
        published = g['row'].get('published')
        published = float('nan') if published is None else float(published)
        convention = metric_cfg_of(finished[0], result)['convention'] if finished else ''
        rows.append({
            'fine-tune set': dataset, 'method': method, 'pretrain set': pretrain,
            # rows without SSL show the variant of their published weights (imagenet-v1, ...)
            'SSL init': init if pretrain != '-' or init not in ('random', 'imagenet', 'micronet')
                        else '-',
            'precision': ' / '.join(sorted(g['precisions'])) or '-',
            'protocol': protocol, 'metric': convention,
            'seeds': ','.join(str(r['seed']) for r in finished) or '-',
            'per_seed': ';'.join(f'{v:.2f}' for v in values),
            'mean': mean, 'ci95_low': low, 'ci95_high': high,
            'delta_vs_baseline': delta[0], 'delta_ci95_low': delta[1],
            'delta_ci95_high': delta[2], 'p_vs_baseline': delta[3], 'verdict': verdict,
            'published mIoU (%)': published, 'difference': mean - published,
            'note': '; '.join(notes),
        })
    frame = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    if len(frame):  # Holm across the rows compared in this table
        frame['p_vs_baseline'] = stats.holm(frame['p_vs_baseline'].to_numpy(dtype=float))
        compared = frame['p_vs_baseline'].notna()
        frame.loc[compared, 'verdict'] = [
            stats.verdict(d, p) for d, p in zip(frame.loc[compared, 'delta_vs_baseline'],
                                                frame.loc[compared, 'p_vs_baseline'])]
    return frame


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
                     f"UNet++ / {row['method']} ({row['pretrain set']}), ours": row['mean'],
                     **{c: row[c] for c in INTERVAL_COLUMNS},
                     'published (%)': row['published mIoU (%)'],
                     'difference': row['difference'], 'precision': row['precision'],
                     'protocol': row['protocol'], 'metric': row['metric'],
                     'seeds': row['seeds'], 'note': row['note']})
    return pd.DataFrame(rows)


def _image_of(unit_name: str) -> str:
    return unit_name.split('@')[0]


def phase_fraction_errors(units: list[dict]) -> np.ndarray:
    """Mean over images of |predicted - true| area fraction per class (in % points).

    Patch units (``image@y,x``) are summed back into their image first."""
    images: dict[str, list] = {}
    for u in units:
        pred, truth = images.setdefault(_image_of(u['name']), [0, 0])
        images[_image_of(u['name'])] = [pred + np.asarray(u['pred_area'], float),
                                        truth + np.asarray(u['gt_area'], float)]
    errors = [np.abs(pred - truth) / max(truth.sum(), 1) for pred, truth in images.values()]
    return 100.0 * np.mean(errors, axis=0)


def per_class_table(records: Iterable[dict], result: str = 'test') -> pd.DataFrame:
    """Per-class IoU (%) and phase-fraction error per row, means over seeds."""
    rows = []
    for g in _group(records):
        finished = [r for r in g['finished'] if result in r]
        if not finished:
            continue
        dataset, method, pretrain, init, protocol = g['key']
        classes = metric_cfg_of(finished[0], result)['class_names']
        metrics = [seed_metrics(r, result) for r in finished]
        row = {'fine-tune set': dataset, 'method': method, 'pretrain set': pretrain,
               'protocol': protocol, 'seeds': len(finished),
               **{name: float(np.nanmean([m.get(f'IoU.{name}', np.nan) for m in metrics]))
                  for name in classes}}
        if _has_images(finished, result):
            errors = np.mean([phase_fraction_errors(r[result]['images']) for r in finished],
                             axis=0)
            row.update({f'|fraction error| {name}': float(e) for name, e in zip(classes, errors)})
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in shown.columns:
        if column == 'p_vs_baseline':  # small p-values must not print as 0.00
            shown[column] = shown[column].map(lambda p: '' if pd.isna(p) else f'{p:.2g}')
        elif shown[column].dtype.kind == 'f':
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
