"""Uncertainty of table rows from per-image results: hierarchical and paired bootstraps, Holm.

A row's value is the mean over seeds of each seed's test mIoU, computed from the seed's
per-unit areas (``record['test']['images']``) under the row's convention
(:func:`metrics.unit_scores`). Its 95 % interval comes from a hierarchical percentile
bootstrap: draw the seeds with replacement, then, for each drawn seed, its test units with
replacement, and recompute the row's metric from the resampled areas. A comparison with
the baseline row draws the shared seeds and, per drawn seed, one set of test units used for
both rows (paired). The p-value is the two-sided bootstrap tail probability of a zero
difference, ``min(1, 2 * min(P*(d <= 0), P*(d >= 0)))`` with add-one smoothing; Holm's
step-down correction (scipy has none) adjusts the p-values of a table's rows.

Everything is vectorised over resamples; pooled conventions turn each resample into a
count vector and a matrix product, so thousands of records tabulate in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .metrics import AUTHORS_BATCH, canonical_convention, pooled_scores, unit_scores

N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
ALPHA = 0.05
_CHUNK_VALUES = 4_000_000  # float64 values per gathered chunk under authors-batch (~32 MB)


@dataclass(frozen=True)
class SeedAreas:
    """One seed's per-unit intersection and union counts, (N, C) each, in evaluation order."""
    intersection: np.ndarray
    union: np.ndarray


def _scores(variants: Sequence[SeedAreas], metric_cfg: dict, rng: np.random.Generator,
            slots: int) -> np.ndarray:
    """Metric of ``slots`` image-level resamples of one seed, the same draws for every variant:
    shape (len(variants), slots), as fractions."""
    convention = canonical_convention(metric_cfg.get('convention', 'clean'))
    mean_classes = metric_cfg.get('mean_classes')
    units = variants[0].intersection.shape[0]
    draws = rng.integers(0, units, size=(slots, units))
    if convention != 'authors-batch':
        # pooled counts of a resample = (how often each unit was drawn) @ (unit counts)
        offsets = (np.arange(slots)[:, None] * units + draws).ravel()
        counts = np.bincount(offsets, minlength=slots * units).reshape(slots, units)
        counts = counts.astype(np.float64)
        return np.stack([pooled_scores(counts @ v.intersection, counts @ v.union, convention,
                                       mean_classes)[1] for v in variants])
    out = np.empty((len(variants), slots))
    step = max(1, _CHUNK_VALUES // max(1, units * variants[0].intersection.shape[1]))
    batch_units = metric_cfg.get('batch_units', AUTHORS_BATCH)
    for start in range(0, slots, step):
        part = draws[start:start + step]
        for k, v in enumerate(variants):
            out[k, start:start + step] = unit_scores(v.intersection[part], v.union[part],
                                                     convention, mean_classes, batch_units)[1]
    return out


def _hierarchical(seeds: Sequence[Sequence[SeedAreas]], metric_cfg: dict, n_resamples: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Resampled row values (len(variants), n_resamples): seeds drawn, then units per seed."""
    n_seeds, n_variants = len(seeds), len(seeds[0])
    picks = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    per_slot = np.empty((n_variants, n_resamples, n_seeds))
    for s in range(n_seeds):
        chosen = picks == s
        if chosen.any():
            per_slot[:, chosen] = _scores(seeds[s], metric_cfg, rng, int(chosen.sum()))
    with np.errstate(invalid='ignore'):
        return np.nanmean(per_slot, axis=2)


def seed_value(areas: SeedAreas, metric_cfg: dict) -> float:
    """One seed's mIoU (%) from its per-unit areas."""
    return 100.0 * float(unit_scores(areas.intersection, areas.union,
                                     metric_cfg.get('convention', 'clean'),
                                     metric_cfg.get('mean_classes'),
                                     metric_cfg.get('batch_units', AUTHORS_BATCH))[1])


def _interval(values: np.ndarray) -> tuple[float, float]:
    if not np.isfinite(values).any():
        return float('nan'), float('nan')
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def row_interval(seeds: Sequence[SeedAreas], metric_cfg: dict, n_resamples: int = N_RESAMPLES,
                 bootstrap_seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """Mean over seeds and its 95 % hierarchical-bootstrap interval, all in %."""
    rng = np.random.default_rng(bootstrap_seed)
    mean = float(np.mean([seed_value(a, metric_cfg) for a in seeds]))
    values = 100.0 * _hierarchical([[a] for a in seeds], metric_cfg, n_resamples, rng)[0]
    return (mean, *_interval(values))


def paired_difference(method: Sequence[SeedAreas], baseline: Sequence[SeedAreas],
                      metric_cfg: dict, n_resamples: int = N_RESAMPLES,
                      bootstrap_seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float, float]:
    """Method minus baseline (in % points) over paired seeds with the same test units: the
    observed difference, its 95 % interval and the two-sided bootstrap p-value."""
    if len(method) != len(baseline) or not method:
        raise ValueError('paired comparison needs the same, non-empty list of seeds on both sides')
    rng = np.random.default_rng(bootstrap_seed)
    delta = float(np.mean([seed_value(m, metric_cfg) - seed_value(b, metric_cfg)
                           for m, b in zip(method, baseline)]))
    both = _hierarchical([[m, b] for m, b in zip(method, baseline)], metric_cfg, n_resamples, rng)
    diffs = 100.0 * (both[0] - both[1])
    diffs = diffs[np.isfinite(diffs)]
    tail = min((diffs <= 0).sum(), (diffs >= 0).sum())
    p_value = min(1.0, 2.0 * (tail + 1) / (diffs.size + 1))
    return (delta, *_interval(diffs), p_value)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and do not count)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if finite.size:
        order = finite[np.argsort(p[finite], kind='stable')]
        m = order.size
        adjusted = np.minimum(1.0, (m - np.arange(m)) * p[order])
        out[order] = np.maximum.accumulate(adjusted)
    return out


def verdict(delta: float, p_adjusted: float, alpha: float = ALPHA) -> str:
    """'better' / 'worse' when the Holm-adjusted p is below ``alpha``, else 'not resolved'."""
    if not np.isfinite(p_adjusted):
        return ''
    if p_adjusted < alpha:
        return 'better' if delta > 0 else 'worse'
    return 'not resolved'


def method_note(n_resamples: int = N_RESAMPLES, bootstrap_seed: int = BOOTSTRAP_SEED,
                baseline: Optional[str] = None) -> str:
    """The caption sentence every table carries."""
    text = (f'95 % intervals: hierarchical percentile bootstrap (seeds, then test images '
            f'within each seed), {n_resamples} resamples, bootstrap seed {bootstrap_seed}')
    if baseline:
        text += (f'; delta, its interval and p (two-sided, Holm-adjusted across the table\'s '
                 f'rows): paired bootstrap against the {baseline} row on the same fine-tuning '
                 f'set, shared seeds and the same test images; verdict at alpha {ALPHA}')
    return text
