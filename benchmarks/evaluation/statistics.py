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
count vector and a matrix product, and rows with as many seeds and test units share one
set of draws (common random numbers), so thousands of records tabulate in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

from matssl_bench.evaluation.metrics import (AUTHORS_BATCH, authors_batch_scores, canonical_convention, pooled_scores,
                      unit_scores)

N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
ALPHA = 0.05
_CHUNK_VALUES = 4_000_000  # float64 values per gathered chunk under authors-batch (~32 MB)


@dataclass(frozen=True)
class SeedAreas:
    """One seed's per-unit intersection and union counts, (N, C) each, in evaluation order."""
    intersection: np.ndarray
    union: np.ndarray


@dataclass
class _SeedDraws:
    """The resamples of one seed: which row resample each belongs to, and its unit draws."""
    owner: np.ndarray                     # (M,) index of the row resample
    draws: np.ndarray                     # (M, units) drawn unit indices
    _counts: Optional[np.ndarray] = None  # (units, M) how often each unit was drawn

    @property
    def counts(self) -> np.ndarray:
        if self._counts is None:
            slots, units = self.draws.shape
            flat = (self.draws + np.arange(0, slots * units, units)[:, None]).ravel()
            # (units, slots), C-contiguous: BLAS is several times faster this way round
            self._counts = np.ascontiguousarray(np.bincount(
                flat, minlength=slots * units).reshape(slots, units).T, dtype=np.float64)
        return self._counts


@lru_cache(maxsize=8)
def _plan(units_per_seed: tuple[int, ...], n_resamples: int,
          bootstrap_seed: int) -> tuple[_SeedDraws, ...]:
    """The draws of a hierarchical bootstrap, a pure function of its arguments: rows with
    the same number of seeds and test units share them (common random numbers), which
    keeps thousands of rows fast and makes rebuilt tables identical."""
    rng = np.random.default_rng(bootstrap_seed)
    n_seeds = len(units_per_seed)
    picks = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    picks += np.arange(0, n_resamples * n_seeds, n_seeds)[:, None]
    times = np.bincount(picks.ravel(), minlength=n_resamples * n_seeds).reshape(n_resamples,
                                                                               n_seeds)
    plan = []
    for s, units in enumerate(units_per_seed):
        # drawing seed s k times in a resample means k independent unit resamples of s
        owner = np.repeat(np.arange(n_resamples), times[:, s])
        plan.append(_SeedDraws(owner, rng.integers(0, units, size=(owner.size, units))))
    return tuple(plan)


def _authors_batch_scores(variants: Sequence[SeedAreas], metric_cfg: dict,
                          draws: _SeedDraws) -> np.ndarray:
    """authors-batch mIoU of each unit resample of one seed (resampled units in drawn order),
    the same draws for every variant: shape (len(variants), resamples), as fractions."""
    slots, units = draws.draws.shape
    out = np.empty((len(variants), slots))
    step = max(1, _CHUNK_VALUES // max(1, units * variants[0].intersection.shape[1]))
    for start in range(0, slots, step):
        part = draws.draws[start:start + step]
        for k, v in enumerate(variants):
            out[k, start:start + step] = authors_batch_scores(
                v.intersection[part], v.union[part], metric_cfg.get('mean_classes'),
                metric_cfg.get('batch_units', AUTHORS_BATCH))[1]
    return out


def _hierarchical(seeds: Sequence[Sequence[SeedAreas]], metric_cfg: dict, n_resamples: int,
                  bootstrap_seed: int) -> np.ndarray:
    """Resampled row values (len(variants), n_resamples): seeds drawn, then units per seed;
    a resample's value is the mean of its drawn seeds' scores."""
    n_variants = len(seeds[0])
    plan = _plan(tuple(v[0].intersection.shape[0] for v in seeds), n_resamples, bootstrap_seed)
    convention = canonical_convention(metric_cfg.get('convention', 'clean'))
    owner = np.concatenate([d.owner for d in plan])
    if convention != 'authors-batch':
        scores = _pooled_all_seeds(seeds, plan, convention, metric_cfg.get('mean_classes'))
    else:
        scores = np.concatenate([_authors_batch_scores(variants, metric_cfg, draws)
                                 for variants, draws in zip(seeds, plan)], axis=1)
    total = np.zeros((n_variants, n_resamples))
    finite = np.zeros((n_variants, n_resamples))
    for v in range(n_variants):
        ok = np.isfinite(scores[v])  # clean mIoU is NaN only when no class is present
        total[v] = np.bincount(owner[ok], weights=scores[v][ok], minlength=n_resamples)
        finite[v] = np.bincount(owner[ok], minlength=n_resamples)
    with np.errstate(invalid='ignore', divide='ignore'):
        return total / finite


def _pooled_all_seeds(seeds, plan, convention, mean_classes) -> np.ndarray:
    """:func:`_scores` of every seed at once under a pooled convention: each resample's pooled
    counts are its unit counts times its seed's per-unit counts (one small product per seed,
    one scoring call for all)."""
    out = []
    for v in range(len(seeds[0])):
        pooled = [np.concatenate([getattr(variants[v], key).T @ draws.counts
                                  for variants, draws in zip(seeds, plan)], axis=1).T
                  for key in ('intersection', 'union')]
        out.append(pooled_scores(pooled[0], pooled[1], convention, mean_classes)[1])
    return np.stack(out)


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
    mean = float(np.mean([seed_value(a, metric_cfg) for a in seeds]))
    values = 100.0 * _hierarchical([[a] for a in seeds], metric_cfg, n_resamples,
                                   bootstrap_seed)[0]
    return (mean, *_interval(values))


def paired_difference(method: Sequence[SeedAreas], baseline: Sequence[SeedAreas],
                      metric_cfg: dict, n_resamples: int = N_RESAMPLES,
                      bootstrap_seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float, float]:
    """Method minus baseline (in % points) over paired seeds with the same test units: the
    observed difference, its 95 % interval and the two-sided bootstrap p-value."""
    if len(method) != len(baseline) or not method:
        raise ValueError('paired comparison needs the same, non-empty list of seeds on both sides')
    delta = float(np.mean([seed_value(m, metric_cfg) - seed_value(b, metric_cfg)
                           for m, b in zip(method, baseline)]))
    both = _hierarchical([[m, b] for m, b in zip(method, baseline)], metric_cfg, n_resamples,
                         bootstrap_seed)
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
