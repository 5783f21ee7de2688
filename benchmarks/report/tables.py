"""Tables derived from result records only (no training).

- ``table4``-style: one row per (fine-tune set, method, pretraining set, init, protocol) and
  configuration (:mod:`.configurations`): per-seed values, the mean over seeds with a 95 %
  interval, the paired comparison with the suite's baseline row (difference, unadjusted
  interval and p, Holm-adjusted p and Holm-consistent interval over the primary family,
  verdict), the published value and the difference;
- ``table5``-style: the EBC splits with our value beside quoted reference values
  (marked as quoted, never as our measurements);
- a per-class companion: IoU per class, the phase-fraction error per class and the number of
  test images containing each class;
- ``pairwise``: every pair of rows of a fine-tuning set compared (Holm over the pairs);
- ``ranking``: mean rank of each method across fine-tuning sets with bootstrap intervals.
Each is written as CSV, Markdown and LaTeX. Every number comes from the records' per-image
areas through :func:`metrics.summarize` / :mod:`statistics`, so rebuilding gives the same tables.
"""
from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from matssl_bench.evaluation import statistics as stats
from matssl_bench.evaluation.metrics import summarize, unit_arrays
from matssl_bench.fileio.atomic import atomic_write

P_COLUMNS = ('p_vs_baseline', 'p_holm', 'p')
HOLM_COLUMNS = ['p_holm', 'delta_holm_low', 'delta_holm_high']
# the verdict beside the interval it is read from: Holm-consistent in the primary family
INTERVAL_COLUMNS = ['per_seed', 'mean', 'ci95_low', 'ci95_high', 'delta_vs_baseline',
                    'delta_holm_low', 'delta_holm_high', 'p_holm', 'verdict',
                    'delta_ci95_low', 'delta_ci95_high', 'p_vs_baseline']
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


def _group_key(rec: dict) -> tuple:
    return (rec['dataset'], rec['method_label'], rec['pretrain_set'] or '-',
            rec.get('encoder_init_variant') or rec['encoder_init'], rec['protocol'],
            rec.get('config_label', ''))


def _group(records: Iterable[dict]) -> list[dict]:
    """Fine-tuning records grouped over seeds, in plan order (``plan_position``, where
    given), else suite row order; records of one row with different configurations
    (``config_label``, see :mod:`.configurations`) are rows apart."""
    records = list(records)
    pretrain_precision = {rec['key']: rec.get('precision', 'fp32') for rec in records
                          if rec.get('stage') == 'pretrain' and rec.get('status') == 'finished'}
    groups: dict[tuple, dict] = {}
    for rec in records:
        if rec.get('stage') != 'finetune':
            continue
        key = _group_key(rec)
        g = groups.setdefault(key, dict(key=key, method=rec.get('method'), finished=[],
                                        reasons=[], precisions=set(), row=rec.get('row', {}),
                                        current=rec.get('config_current', True)))
        if rec.get('plan_position') is not None:
            g['order'] = min(g.get('order', rec['plan_position']), rec['plan_position'])
        if rec['status'] == 'finished':
            g['finished'].append(rec)
            g['precisions'].add(_precision(rec, pretrain_precision))
        else:
            g['reasons'].append(rec.get('reason', rec['status']))
    for g in groups.values():
        g['finished'].sort(key=lambda r: r['seed'])
    return sorted(groups.values(), key=lambda g: (g.get('order', math.inf),
                                                  g['row'].get('index', 0), g['key']))


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


def image_of(unit_name: str) -> str:
    """The image a scored unit belongs to (patches are named ``image@y,x``)."""
    return unit_name.split('@')[0]


def result_areas(result: dict, names: Optional[list[str]] = None) -> stats.SeedAreas:
    """The per-unit areas of one evaluation dict (``record['test']``, a transfer target's),
    in evaluation order or in the order of ``names``, with the image of each unit."""
    units = result['images']
    if names is not None:
        by_name = {u['name']: u for u in units}
        units = [by_name[n] for n in names]
    return stats.SeedAreas(unit_arrays(units, 'intersection'), unit_arrays(units, 'union'),
                           tuple(image_of(u.get('name', str(i))) for i, u in enumerate(units)))


def _areas(rec: dict, result: str = 'test',
           names: Optional[list[str]] = None) -> stats.SeedAreas:
    return result_areas(rec[result], names)


def _clusters(recs: list[dict]) -> list:
    return [r.get('depends_on') for r in recs]


def evidence_note(clusters: list, k: int, images: int, replicate_name: str = 'seed',
                  image_name: str = 'test image') -> tuple[Optional[str], str]:
    """(why no interval or None, a note on what the interval is conditional on)."""
    n, kind = stats.replicates(clusters, k)
    conditional = ''
    if kind == 'seed' and k > 1 and len(set(clusters)) == 1 and clusters[0] is not None:
        conditional = 'one pretraining run behind every seed: interval conditional on it'
    return stats.evidence_problem(n, images, replicate_name if kind == 'seed' else kind,
                                  image_name), conditional


class Draws(dict):
    """Each row's :func:`stats.seed_draws`, drawn once per (records, image order) and shared by
    the row's interval and every comparison it takes part in."""

    def __init__(self, result: str, n_resamples: int, bootstrap_seed: int):
        super().__init__()
        self.result, self.n_resamples, self.bootstrap_seed = result, n_resamples, bootstrap_seed

    def of(self, recs: list[dict], names: Optional[list[str]] = None):
        names = names or [u['name'] for u in recs[0][self.result]['images']]
        key = (tuple(r['key'] for r in recs), tuple(names))
        if key not in self:
            self[key] = stats.seed_draws([_areas(r, self.result, names) for r in recs],
                                         metric_cfg_of(recs[0], self.result), self.n_resamples,
                                         self.bootstrap_seed)
        return self[key]


def _image_total(recs: list[dict], result: str) -> int:
    return len({image_of(u['name']) for u in recs[0][result]['images']})


def row_estimate(recs: list[dict], result: str, n_resamples: int, bootstrap_seed: int,
                 clusters: Optional[list] = None, replicate_name: str = 'seed',
                 draws: Optional[Draws] = None):
    """(Estimate or None, notes) of the mean over ``recs`` (each with per-image areas)."""
    draws = draws if draws is not None else Draws(result, n_resamples, bootstrap_seed)
    clusters = _clusters(recs) if clusters is None else clusters
    images = _image_total(recs, result)
    problem, conditional = evidence_note(clusters, len(recs), images, replicate_name)
    if problem:
        return None, [problem]
    per_seed, scores = draws.of(recs)
    return (stats.combine(per_seed, scores, images, clusters),
            [conditional] if conditional else [])


def _shared(g: dict, base: dict, result: str):
    """(pairs of records on shared seeds and test images, names) or (None, why)."""
    base_by_seed = {r['seed']: r for r in base['finished'] if result in r}
    shared = [(r, base_by_seed[r['seed']]) for r in g['finished']
              if result in r and r['seed'] in base_by_seed]
    if not shared:
        return None, 'no seed shared'
    if not _has_images([r for pair in shared for r in pair], result):
        return None, NO_IMAGES
    names = [u['name'] for u in shared[0][0][result]['images']]
    if any({u['name'] for u in r[result]['images']} != set(names)
           for pair in shared for r in pair):
        return None, 'test images differ'
    return shared, names


def paired_rows(g: dict, base: dict, result: str, n_resamples: int, bootstrap_seed: int,
                draws: Optional[Draws] = None):
    """(Estimate or None, note) of row ``g`` minus row ``base`` on shared seeds and images."""
    draws = draws if draws is not None else Draws(result, n_resamples, bootstrap_seed)
    shared, names = _shared(g, base, result)
    if shared is None:
        return None, f'no comparison: {names}'
    clusters = [(a.get('depends_on'), b.get('depends_on')) for a, b in shared]
    if all(c == (None, None) for c in clusters):
        clusters = [None] * len(shared)
    images = len({image_of(n) for n in names})
    problem, _ = evidence_note(clusters, len(shared), images)
    if problem:
        return None, f'no comparison: {problem}'
    value_a, scores_a = draws.of([a for a, _ in shared], names)
    value_b, scores_b = draws.of([b for _, b in shared], names)
    return stats.combine(value_a - value_b, scores_a - scores_b, images,
                         None if clusters[0] is None else clusters), ''


def absent_classes(recs: list[dict], result: str = 'test') -> list[str]:
    """Classes in the ground truth of no test image (of the first finished record)."""
    if not _has_images(recs, result):
        return []
    counts = images_containing(recs[0], result)
    return [name for name, n in counts.items() if n == 0]


def images_containing(rec: dict, result: str = 'test') -> dict[str, int]:
    """Per class, how many test images contain it in their ground truth."""
    by_image: dict[str, np.ndarray] = {}
    for u in rec[result]['images']:
        name = image_of(u['name'])
        by_image[name] = by_image.get(name, 0) + np.asarray(u['gt_area'], float)
    present = (np.stack(list(by_image.values())) > 0).sum(0)
    return dict(zip(metric_cfg_of(rec, result)['class_names'], map(int, present)))


def _row(g: dict, result: str, n_resamples: int, bootstrap_seed: int, draws: Draws) -> dict:
    dataset, method, pretrain, init, protocol, config_label = g['key']
    finished = [r for r in g['finished'] if result in r]
    notes = [] if finished else [('; '.join(sorted(set(g['reasons']))) or 'no run')]
    estimate = None
    if finished and _has_images(finished, result):
        values = list(draws.of(finished)[0])
        estimate, why = row_estimate(finished, result, n_resamples, bootstrap_seed,
                                     draws=draws)
        notes += why
        absent = absent_classes(finished, result)
        if absent:
            notes.append(f"in no test image's ground truth: {', '.join(absent)} (see the "
                         'per-class companion)')
    else:
        values = [r[result]['mIoU'] for r in finished]
        if finished:
            notes.append(NO_IMAGES)
    mean = float(np.mean(values)) if values else float('nan')
    low, high = estimate.interval() if estimate else (float('nan'), float('nan'))
    if g['row'].get('overrides'):  # --cfg-options / --pretrain-sets changed this row
        notes.append('differs from the suite file: ' + '; '.join(g['row']['overrides']))
    published = g['row'].get('published')
    published = float('nan') if published is None else float(published)
    label = method + (f' [{config_label}]' if config_label else '')
    return {
        'fine-tune set': dataset, 'method': label, 'pretrain set': pretrain,
        # rows without SSL show the variant of their published weights (imagenet-v1, ...)
        'SSL init': init if pretrain != '-' or init not in ('random', 'imagenet', 'micronet')
                    else '-',
        'precision': ' / '.join(sorted(g['precisions'])) or '-',
        'protocol': protocol,
        'metric': metric_cfg_of(finished[0], result)['convention'] if finished else '',
        'seeds': ','.join(str(r['seed']) for r in finished) or '-',
        'per_seed': ';'.join(f'{v:.2f}' for v in values),
        'mean': mean if estimate is None else estimate.value, 'ci95_low': low, 'ci95_high': high,
        'delta_vs_baseline': float('nan'), 'delta_ci95_low': float('nan'),
        'delta_ci95_high': float('nan'), 'p_vs_baseline': float('nan'),
        'p_holm': float('nan'), 'delta_holm_low': float('nan'), 'delta_holm_high': float('nan'),
        'verdict': '', 'published mIoU (%)': published,
        'difference': (mean if estimate is None else estimate.value) - published,
        'note': notes,
    }


def apply_family(rows: list[dict], estimates: list, primary: bool,
                 prefix: str = 'delta', p_column: str = 'p_vs_baseline') -> None:
    """Fill the comparison columns of ``rows`` from ``estimates`` (None: not compared):
    unadjusted interval and p always; with ``primary`` Holm over all of them, the
    Holm-consistent interval and a verdict it decides, else a verdict from the unadjusted
    interval (exploratory)."""
    family = stats.holm_family(estimates) if primary else [None] * len(rows)
    for row, est, holm in zip(rows, estimates, family):
        if est is None:
            continue
        low, high = est.interval()
        row.update({f'{prefix}_ci95_low': low, f'{prefix}_ci95_high': high,
                    p_column: est.p_value})
        if primary:
            row.update({'p_holm': holm['p_adjusted'], f'{prefix}_holm_low': holm['low'],
                        f'{prefix}_holm_high': holm['high'], 'verdict': holm['verdict']})
        else:
            row['verdict'] = stats.interval_verdict(low, high)


def finetune_tables(records: Iterable[dict], tables: Optional[list[str]] = None,
                    baseline: str = DEFAULT_BASELINE, result: str = 'test', primary: bool = True,
                    n_resamples: int = stats.N_RESAMPLES,
                    bootstrap_seed: int = stats.BOOTSTRAP_SEED,
                    ignored: Iterable[dict] = ()) -> dict[str, pd.DataFrame]:
    """Per-seed values, mean, intervals and the comparison with ``baseline`` per row of each
    of ``tables`` (None: every table of the records); with ``primary`` the comparisons of all
    of them form one Holm family, else they are exploratory (no adjustment).

    ``records`` are fine-tuning records, plus the pretraining records they depend on
    (for the precision column); ``baseline`` is a method's registry name; ``result`` is
    ``test`` (the selected epoch) or ``test_last``; ``ignored`` are records of other
    configurations of the same rows (:mod:`.configurations`), counted in the rows' notes.
    """
    groups = _group(records)
    ignored_by_row = defaultdict(int)
    for rec in ignored:
        if rec.get('stage') == 'finetune':
            ignored_by_row[_group_key(rec)[:5]] += 1
    names = tables or sorted({g['row'].get('table', 'table4') for g in groups})
    rows, estimates, owners = [], [], []
    draws = Draws(result, n_resamples, bootstrap_seed)
    for name in names:
        mine = [g for g in groups if g['row'].get('table', 'table4') == name]
        baselines = {}  # with several configurations of the baseline: the current one
        for g in mine:
            if g['method'] == baseline and g['current']:
                baselines.setdefault((g['key'][0], g['key'][4]), g)
        for g in mine:
            row = _row(g, result, n_resamples, bootstrap_seed, draws)
            n_ignored = ignored_by_row.get(g['key'][:5])
            if n_ignored:
                row['note'].append(f'{n_ignored} record{"s" if n_ignored > 1 else ""} of other '
                                   'configurations ignored; --all-records to tabulate them as '
                                   'separate rows')
            estimate = None
            base = baselines.get((g['key'][0], g['key'][4]))
            if base is g:
                row['verdict'] = 'baseline' if g['finished'] else ''
            elif row['seeds'] != '-':
                if base is None or not base['finished']:
                    row['note'].append(f'no comparison: the baseline {baseline} has no '
                                       f'finished run on {g["key"][0]}')
                else:
                    estimate, why = paired_rows(g, base, result, n_resamples, bootstrap_seed,
                                                draws)
                    if estimate is None:
                        if why.replace('no comparison: ', '') not in row['note']:
                            row['note'].append(why)
                    else:
                        row['delta_vs_baseline'] = estimate.value
            rows.append(row)
            estimates.append(estimate)
            owners.append(name)
    apply_family(rows, estimates, primary)
    out = {}
    columns = TABLE_COLUMNS if primary else [c for c in TABLE_COLUMNS if c not in HOLM_COLUMNS]
    for name in names:
        part = [dict(r, note='; '.join(r['note'])) for r, o in zip(rows, owners) if o == name]
        out[name] = pd.DataFrame(part, columns=columns)
    return out


def finetune_table(records: Iterable[dict], table: Optional[str] = None,
                   baseline: str = DEFAULT_BASELINE, result: str = 'test', primary: bool = True,
                   n_resamples: int = stats.N_RESAMPLES,
                   bootstrap_seed: int = stats.BOOTSTRAP_SEED,
                   ignored: Iterable[dict] = ()) -> pd.DataFrame:
    """:func:`finetune_tables` of one table (None: all rows as one table, one family)."""
    records = list(records)
    if table is None:
        records = [dict(r, row=dict(r.get('row') or {}, table='all'))
                   if r.get('stage') == 'finetune' else r for r in records]
        table = 'all'
    return finetune_tables(records, [table], baseline, result, primary, n_resamples,
                           bootstrap_seed, ignored)[table]


PAIRWISE_COLUMNS = ['fine-tune set', 'protocol', 'A', 'B', 'seeds', 'delta (A - B)',
                    'delta_holm_low', 'delta_holm_high', 'p_holm', 'verdict',
                    'delta_ci95_low', 'delta_ci95_high', 'p', 'note']


def _row_label(g: dict) -> str:
    dataset, method, pretrain, init, protocol, config_label = g['key']
    return (method + (f' ({pretrain})' if pretrain != '-' else '')
            + (f' [{config_label}]' if config_label else ''))


def pairwise_table(records: Iterable[dict], tables: list[str], result: str = 'test',
                   n_resamples: int = stats.N_RESAMPLES,
                   bootstrap_seed: int = stats.BOOTSTRAP_SEED) -> pd.DataFrame:
    """Every pair of rows on one fine-tuning set and protocol of ``tables``, paired on shared
    seeds and test images; Holm over all the pairs (a family of its own). Each row's image
    resamples are drawn once and differenced per pair."""
    groups = [g for g in _group(records) if g['row'].get('table', 'table4') in tables
              and any(result in r for r in g['finished'])]
    by_set: dict[tuple, list] = defaultdict(list)
    for g in groups:
        by_set[(g['key'][0], g['key'][4])].append(g)
    rows, estimates = [], []
    draws = Draws(result, n_resamples, bootstrap_seed)
    for (dataset, protocol), members in by_set.items():
        for a, b in combinations(members, 2):
            estimate, why = paired_rows(a, b, result, n_resamples, bootstrap_seed, draws)
            shared, _ = _shared(a, b, result)
            rows.append({'fine-tune set': dataset, 'protocol': protocol, 'A': _row_label(a),
                         'B': _row_label(b),
                         'seeds': ','.join(str(x['seed']) for x, _ in shared or []) or '-',
                         'delta (A - B)': estimate.value if estimate else float('nan'),
                         'note': why})
            estimates.append(estimate)
    apply_family(rows, estimates, primary=True, p_column='p')
    return pd.DataFrame(rows, columns=PAIRWISE_COLUMNS)


def ranking_table(records: Iterable[dict], tables: list[str], result: str = 'test',
                  n_resamples: int = stats.N_RESAMPLES,
                  bootstrap_seed: int = stats.BOOTSTRAP_SEED) -> pd.DataFrame:
    """Mean rank (1 = best mean mIoU) of each method over the fine-tuning sets of ``tables``
    it ran on, with a 95 % percentile interval from a bootstrap that resamples, per set, the
    seeds of every row and one test-image multiset shared by the set's rows."""
    groups = [g for g in _group(records) if g['row'].get('table', 'table4') in tables
              and _has_images([r for r in g['finished'] if result in r], result)]
    by_set: dict[tuple, list] = defaultdict(list)
    for g in groups:
        by_set[(g['key'][0], g['key'][4])].append(g)
    ranks: dict[str, list] = defaultdict(list)     # label -> [(observed, draws)] per set
    thin: dict[str, list] = defaultdict(list)
    for i, ((dataset, _), members) in enumerate(sorted(by_set.items())):
        if len(members) < 2:
            continue
        rng = np.random.default_rng([bootstrap_seed, i])
        state = rng.bit_generator.state
        observed, draws = [], []
        for g in members:
            recs = [r for r in g['finished'] if result in r]
            observed.append(np.mean([seed_metrics(r, result)['mIoU'] for r in recs]))
            rng.bit_generator.state = state  # the same image and seed draws for every row
            draws.append(stats.resampled_row_means([_areas(r, result) for r in recs],
                                                   metric_cfg_of(recs[0], result), rng,
                                                   n_resamples))
            if stats.replicates(_clusters(recs), len(recs))[0] < stats.MIN_REPLICATES:
                thin[_row_label(g)].append(dataset)
        observed_rank = rankdata(-np.asarray(observed))
        draw_ranks = rankdata(-np.stack(draws), axis=0)
        for g, o, d in zip(members, observed_rank, draw_ranks):
            ranks[_row_label(g)].append((o, d))
    rows = []
    for label, per_set in ranks.items():
        mean_rank = float(np.mean([o for o, _ in per_set]))
        draws = np.mean([d for _, d in per_set], axis=0)
        low, high = np.percentile(draws, [2.5, 97.5]) if not thin[label] else (np.nan, np.nan)
        rows.append({'method': label, 'sets': len(per_set), 'mean rank': mean_rank,
                     'rank_ci95_low': float(low), 'rank_ci95_high': float(high),
                     'P(best on a set)': float(np.mean([(d == 1).mean() for _, d in per_set])),
                     'note': (f"no interval: fewer than {stats.MIN_REPLICATES} seeds on "
                              f"{', '.join(thin[label])}" if thin[label] else '')})
    return pd.DataFrame(rows, columns=['method', 'sets', 'mean rank', 'rank_ci95_low',
                                       'rank_ci95_high', 'P(best on a set)', 'note']
                        ).sort_values(['mean rank', 'method'], ignore_index=True)


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
                     **{c: row[c] for c in INTERVAL_COLUMNS if c in row},
                     'published (%)': row['published mIoU (%)'],
                     'difference': row['difference'], 'precision': row['precision'],
                     'protocol': row['protocol'], 'metric': row['metric'],
                     'seeds': row['seeds'], 'note': row['note']})
    return pd.DataFrame(rows)


def phase_fraction_errors(units: list[dict]) -> np.ndarray:
    """Mean over images of |predicted - true| area fraction per class (in % points).

    Patch units (``image@y,x``) are summed back into their image first."""
    images: dict[str, list] = {}
    for u in units:
        pred, truth = images.setdefault(image_of(u['name']), [0, 0])
        images[image_of(u['name'])] = [pred + np.asarray(u['pred_area'], float),
                                        truth + np.asarray(u['gt_area'], float)]
    errors = [np.abs(pred - truth) / max(truth.sum(), 1) for pred, truth in images.values()]
    return 100.0 * np.mean(errors, axis=0)


def per_class_table(records: Iterable[dict], result: str = 'test') -> pd.DataFrame:
    """Per-class IoU (%) and phase-fraction error per row, means over seeds, and per class
    the number of test images whose ground truth contains it; a class in no test image's
    ground truth is named in the note (its IoU under ``clean`` is 0 where a seed predicts it,
    else undefined and left out of that seed's mean)."""
    rows = []
    for g in _group(records):
        finished = [r for r in g['finished'] if result in r]
        if not finished:
            continue
        classes = metric_cfg_of(finished[0], result)['class_names']
        metrics = [seed_metrics(r, result) for r in finished]
        row = {'fine-tune set': g['key'][0],
               'method': g['key'][1] + (f' [{g["key"][5]}]' if g['key'][5] else ''),
               'pretrain set': g['key'][2], 'protocol': g['key'][4], 'seeds': len(finished)}
        with np.errstate(invalid='ignore'):
            for name in classes:
                values = [m.get(f'IoU.{name}', np.nan) for m in metrics]
                row[name] = (float(np.nanmean(values)) if np.isfinite(values).any()
                             else float('nan'))
        if _has_images(finished, result):
            errors = np.mean([phase_fraction_errors(r[result]['images']) for r in finished],
                             axis=0)
            row.update({f'|fraction error| {name}': float(e) for name, e in zip(classes, errors)})
            counts = images_containing(finished[0], result)
            row.update({f'test images with {name}': counts[name] for name in classes})
            absent = [name for name in classes if counts[name] == 0]
            row['note'] = (f"in no test image's ground truth: {', '.join(absent)} (clean: IoU 0 "
                           'where predicted, else left out of the mean)' if absent else '')
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in shown.columns:
        if column in P_COLUMNS:  # small p-values must not print as 0.00
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
