"""Uncertainty of table rows for the design the suite runs: seeds crossed with shared test images.

Every seed and every method of a fine-tuning set is scored on the *same* test images, so the
image-to-image variation is shared by all seeds and both sides of a comparison (a crossed
design, not a nested one). A row's value is the mean over seeds of each seed's test mIoU,
computed from the seed's per-image areas under the row's convention
(:func:`metrics.unit_scores`). Its uncertainty has two components:

- **replicates**: the sample variance of the per-seed values over ``n``, on ``n - 1``
  degrees of freedom. Where several SSL pretraining runs stand behind a row's seeds
  (``pretrain_seeds``), the replicates are the runs (the means of their seeds);
- **test images**: a crossed bootstrap. One multiset of test images per resample is drawn and
  shared by every seed and both sides of a comparison; the row metric is recomputed from the
  resampled areas and averaged over seeds. Its variance, times ``m / (m - 1)`` (the plug-in
  bootstrap's bias for ``m`` images), less the replicate-by-image noise the replicate
  component already holds, is the image component, on ``m - 1`` degrees of freedom. Patches
  (``image@y,x``) are resampled as whole images.

The interval scales each component by the t quantile of its own degrees of freedom
(``sqrt(t_{n-1}^2 v_rep + t_{m-1}^2 v_img)``); the p-value is one minus the level whose
interval just reaches zero. :mod:`matssl_bench.perf.calibration` measured this choice against
t on Satterthwaite's df with known truth (``docs/statistics.md``). A comparison is paired:
the per-seed differences on the shared seeds give the replicate component, the image
resamples of both rows the image component. Below :data:`MIN_REPLICATES` replicates or
:data:`MIN_IMAGES` test images :func:`evidence_problem` says why no interval is given.

Holm's step-down correction (scipy has none) adjusts a family's p-values; the
Holm-consistent intervals of :func:`holm_family` use, at each step, the level the step tests
at, so a verdict never contradicts its interval. The draws are vectorised and a pure
function of (images, resamples, seed): rows with as many test images share them (common
random numbers), and rebuilt tables are identical.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Optional, Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.special import stdtrit  # t quantiles, fast

from matssl_bench.evaluation.metrics import (AUTHORS_BATCH, authors_batch_scores,
                                             canonical_convention, pooled_scores, unit_scores)

N_RESAMPLES = 2_000
BOOTSTRAP_SEED = 0
ALPHA = 0.05
# Minimum evidence before an interval, a p-value or a verdict (justified by the calibration
# benchmark, results/perf/calibration.json): seed-to-seed variance from fewer than 3
# replicates is too poorly known, and so is image-to-image variance from fewer than 3 images.
MIN_REPLICATES = 3
MIN_IMAGES = 3
# How the two components make an interval (chosen by the calibration benchmark): 'components'
# scales each by the t quantile of its own df (never liberal in the simulation, conservative
# where both matter and images are few); 'satterthwaite' is t on Satterthwaite's df (too
# narrow with 3 replicates: coverage down to 0.91).
INTERVAL_METHODS = ('components', 'satterthwaite')
INTERVAL_METHOD = 'components'
_CHUNK_VALUES = 4_000_000  # float64 values per gathered chunk under authors-batch (~32 MB)


@dataclass(frozen=True)
class SeedAreas:
    """One seed's per-unit intersection and union counts, (N, C) each, in evaluation order;
    ``image_of`` names each unit's image (patches of one image share it), None: units are
    images."""
    intersection: np.ndarray
    union: np.ndarray
    image_of: Optional[tuple] = None


@dataclass(frozen=True)
class Estimate:
    """A mean (row) or mean difference (comparison) in % points and its two variance
    components: ``seed_var`` (of the mean, over ``replicates - 1`` df) and ``image_var``
    (over ``images - 1`` df)."""
    value: float
    seed_var: float
    image_var: float
    replicates: int
    images: int

    @property
    def se(self) -> float:
        return float(np.sqrt(self.seed_var + self.image_var))

    @property
    def df(self) -> float:
        """Satterthwaite's degrees of freedom of the sum of the two components."""
        a, b = self.seed_var, self.image_var
        if not np.isfinite(a + b):
            return float('nan')
        if a + b == 0:
            return float('inf')
        return (a + b) ** 2 / (a ** 2 / (self.replicates - 1) + b ** 2 / (self.images - 1))

    def half_width(self, level: float = 1 - ALPHA, method: str = INTERVAL_METHOD) -> float:
        """Half-width of the ``level`` interval: each component scaled by the t quantile of
        its own df, sqrt(t_{n-1}^2 var_seed + t_{m-1}^2 var_image) (``components``), or t on
        Satterthwaite's df times the standard error (``satterthwaite``)."""
        if not np.isfinite(self.se):
            return float('nan')
        q = 0.5 + level / 2
        if method == 'satterthwaite':
            return self.se * float(stdtrit(self.df, q)) if self.se > 0 else 0.0
        return float(np.sqrt(stdtrit(self.replicates - 1, q) ** 2 * self.seed_var
                             + stdtrit(self.images - 1, q) ** 2 * self.image_var))

    def interval(self, level: float = 1 - ALPHA,
                 method: str = INTERVAL_METHOD) -> tuple[float, float]:
        half = self.half_width(level, method)
        return self.value - half, self.value + half

    @cached_property
    def p_value(self) -> float:
        """Two-sided p of a zero mean: one minus the level whose interval just reaches zero
        (so the interval at level 1 - alpha excludes zero exactly when p < alpha)."""
        if not np.isfinite(self.se):
            return float('nan')
        gap = abs(self.value)
        if self.se == 0 or gap == 0:
            return 1.0 if gap == 0 else 0.0
        top = 1.0 - 1e-15
        if self.half_width(top) < gap:
            return 1e-15  # beyond what float quantiles resolve
        return 1.0 - float(brentq(lambda level: self.half_width(level) - gap, 0.0, top,
                                  xtol=1e-15, rtol=1e-13))


def evidence_problem(replicates: int, images: int, replicate_name: str = 'seed',
                     image_name: str = 'test image') -> Optional[str]:
    """Why a row or comparison gets no interval, p or verdict (None: it gets them)."""
    if replicates < MIN_REPLICATES:
        plural = replicate_name if replicates == 1 else f'{replicate_name}s'
        return (f'{replicates} {plural}: {replicate_name}-to-{replicate_name} variance not '
                f'estimable' if replicates < 2 else
                f'{replicates} {plural}: fewer than {MIN_REPLICATES}, too few for an interval')
    if images < MIN_IMAGES:
        plural = image_name if images == 1 else f'{image_name}s'
        return f'{images} {plural}: fewer than {MIN_IMAGES}, image-to-image variance not estimable'
    return None


def replicates(clusters: Optional[Sequence], seeds: int) -> tuple[int, str]:
    """How many independent replicates stand behind ``seeds`` seeds whose pretraining runs
    are ``clusters`` (None: one per seed), and what they are: the seeds themselves (each its
    own run, or one run shared by all: then conditional on it) or the pretraining runs."""
    if clusters is None or len(set(clusters)) in (1, seeds):
        return seeds, 'seed'
    return len(set(clusters)), 'pretraining run'


# -- image resampling ----------------------------------------------------------------------
@lru_cache(maxsize=16)
def _image_draws(images: int, n_resamples: int, bootstrap_seed: int) -> np.ndarray:
    """(R, m) drawn image indices: one multiset per resample, shared by all seeds and rows."""
    rng = np.random.default_rng([bootstrap_seed, images])
    return rng.integers(0, images, (n_resamples, images))


@lru_cache(maxsize=16)
def _draw_counts(images: int, n_resamples: int, bootstrap_seed: int) -> np.ndarray:
    """(m, R): how often each image is drawn in each resample."""
    draws = _image_draws(images, n_resamples, bootstrap_seed)
    flat = (draws + np.arange(0, n_resamples * images, images)[:, None]).ravel()
    return np.ascontiguousarray(np.bincount(flat, minlength=n_resamples * images)
                                .reshape(n_resamples, images).T, dtype=np.float64)


def _images_index(areas: SeedAreas) -> tuple[list, np.ndarray]:
    """The distinct images in order of first appearance and each unit's image index."""
    if areas.image_of is None:
        n = areas.intersection.shape[0]
        return list(range(n)), np.arange(n)
    names = list(dict.fromkeys(areas.image_of))
    where = {name: i for i, name in enumerate(names)}
    return names, np.array([where[n] for n in areas.image_of])


def image_count(areas: SeedAreas) -> int:
    """The number of independent test units: images (patches of one image count once)."""
    return len(_images_index(areas)[0])


def _per_image(areas: SeedAreas) -> tuple[np.ndarray, np.ndarray]:
    """Areas summed per image, (m, C) each (what pooled conventions see)."""
    names, index = _images_index(areas)
    inter = np.zeros((len(names), areas.intersection.shape[1]))
    union = np.zeros_like(inter)
    np.add.at(inter, index, areas.intersection)
    np.add.at(union, index, areas.union)
    return inter, union


def _resampled_scores(sides: Sequence[Sequence[SeedAreas]], metric_cfg: dict, n_resamples: int,
                      bootstrap_seed: int) -> np.ndarray:
    """mIoU (fractions) of every seed of every side on every image resample, (sides, k, R);
    resample r uses the same image multiset for every seed and side."""
    convention = canonical_convention(metric_cfg.get('convention', 'clean'))
    mean_classes = metric_cfg.get('mean_classes')
    m = image_count(sides[0][0])
    if convention != 'authors-batch':
        counts = _draw_counts(m, n_resamples, bootstrap_seed)  # (m, R)
        inter = np.stack([np.stack([_per_image(a)[0] for a in side]) for side in sides])
        union = np.stack([np.stack([_per_image(a)[1] for a in side]) for side in sides])
        # (sides, k, m, C) x (m, R) -> (sides, k, R, C)
        pooled_i = np.einsum('skmc,mr->skrc', inter, counts, optimize=True)
        pooled_u = np.einsum('skmc,mr->skrc', union, counts, optimize=True)
        return pooled_scores(pooled_i, pooled_u, convention, mean_classes)[1]
    return np.stack([np.stack([_authors_batch_resampled(a, metric_cfg, m, n_resamples,
                                                        bootstrap_seed) for a in side])
                     for side in sides])


def _authors_batch_resampled(areas: SeedAreas, metric_cfg: dict, m: int, n_resamples: int,
                             bootstrap_seed: int) -> np.ndarray:
    """authors-batch mIoU per image resample: the drawn images' patches in drawn order (where
    images have unequal patch counts, patches are drawn as units instead)."""
    names, index = _images_index(areas)
    sizes = np.bincount(index, minlength=len(names))
    if (sizes == sizes[0]).all():
        groups = np.stack([np.flatnonzero(index == i) for i in range(len(names))])
        units = groups[_image_draws(m, n_resamples, bootstrap_seed)].reshape(n_resamples, -1)
    else:
        n = areas.intersection.shape[0]
        units = _image_draws(n, n_resamples, bootstrap_seed)
    out = np.empty(n_resamples)
    step = max(1, _CHUNK_VALUES // max(1, units.shape[1] * areas.intersection.shape[1]))
    for start in range(0, n_resamples, step):
        part = units[start:start + step]
        out[start:start + step] = authors_batch_scores(
            areas.intersection[part], areas.union[part], metric_cfg.get('mean_classes'),
            metric_cfg.get('batch_units', AUTHORS_BATCH))[1]
    return out


def seed_value(areas: SeedAreas, metric_cfg: dict) -> float:
    """One seed's mIoU (%) from its per-unit areas."""
    return 100.0 * float(unit_scores(areas.intersection, areas.union,
                                     metric_cfg.get('convention', 'clean'),
                                     metric_cfg.get('mean_classes'),
                                     metric_cfg.get('batch_units', AUTHORS_BATCH))[1])


# -- estimates -----------------------------------------------------------------------------
def _cluster_rows(values: np.ndarray, clusters: Optional[Sequence]) -> np.ndarray:
    """Rows of ``values`` (seeds first), or their means per pretraining run where several
    stand behind the seeds (one run for all seeds: the seeds, conditional on that run)."""
    if clusters is None or len(set(clusters)) in (1, len(values)):
        return values
    keys = list(dict.fromkeys(clusters))
    mask = np.array([[c == key for c in clusters] for key in keys])
    return np.stack([np.nanmean(values[m], axis=0) for m in mask])


def _estimate(per_seed: np.ndarray, scores: np.ndarray, images: int,
              clusters: Optional[Sequence]) -> Estimate:
    """The estimate of the mean of ``per_seed`` whose image resamples per seed are ``scores``
    (k, R): seed component from the replicates' values, image component from the resampled
    mean over seeds, less the replicate-by-image noise both hold (estimated from how much
    more a single replicate varies over image resamples than their mean)."""
    replicates = _cluster_rows(per_seed, clusters)
    resampled = _cluster_rows(scores, clusters)  # (n, R)
    n = len(replicates)
    value = float(per_seed.mean())
    if n < 2 or images < 2:
        return Estimate(value, float('nan'), float('nan'), n, images)
    seed_var = float(replicates.var(ddof=1) / n)
    correction = images / (images - 1)  # the plug-in bootstrap's (m - 1) / m
    with np.errstate(invalid='ignore'):
        mean_var = float(np.nanvar(np.nanmean(resampled, axis=0), ddof=1)) * correction
        single_var = float(np.nanmean(np.nanvar(resampled, axis=1, ddof=1))) * correction
    overlap = min(max((single_var - mean_var) / (n - 1), 0.0), mean_var)
    image_var = mean_var - overlap
    return Estimate(value, seed_var, image_var, n, images)


def seed_draws(seeds: Sequence[SeedAreas], metric_cfg: dict, n_resamples: int = N_RESAMPLES,
               bootstrap_seed: int = BOOTSTRAP_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Each seed's value (k,) and its values on the shared image resamples (k, R), in %: what
    :func:`combine` turns into an estimate; rows on the same test images share the draws, so
    differences of two rows' draws are the paired draws."""
    _check_same_images(seeds)
    per_seed = 100.0 * unit_scores(np.stack([a.intersection for a in seeds]),
                                   np.stack([a.union for a in seeds]),
                                   metric_cfg.get('convention', 'clean'),
                                   metric_cfg.get('mean_classes'),
                                   metric_cfg.get('batch_units', AUTHORS_BATCH))[1]
    return per_seed, 100.0 * _resampled_scores([seeds], metric_cfg, n_resamples,
                                               bootstrap_seed)[0]


def combine(per_seed: np.ndarray, scores: np.ndarray, images: int,
            clusters: Optional[Sequence] = None) -> Estimate:
    """The estimate from :func:`seed_draws` (or their differences for a paired comparison)."""
    return _estimate(per_seed, scores, images, clusters)


def row_estimate(seeds: Sequence[SeedAreas], metric_cfg: dict,
                 clusters: Optional[Sequence] = None, n_resamples: int = N_RESAMPLES,
                 bootstrap_seed: int = BOOTSTRAP_SEED) -> Estimate:
    """Mean over seeds (in %) with seed and crossed-image variance components; ``clusters``
    names each seed's pretraining run (None: each seed is its own replicate)."""
    _check_same_images(seeds)
    per_seed = np.array([seed_value(a, metric_cfg) for a in seeds])
    scores = 100.0 * _resampled_scores([seeds], metric_cfg, n_resamples, bootstrap_seed)[0]
    return _estimate(per_seed, scores, image_count(seeds[0]), clusters)


def paired_estimate(method: Sequence[SeedAreas], baseline: Sequence[SeedAreas],
                    metric_cfg: dict, clusters: Optional[Sequence] = None,
                    n_resamples: int = N_RESAMPLES,
                    bootstrap_seed: int = BOOTSTRAP_SEED) -> Estimate:
    """Method minus baseline (in % points) over paired seeds scored on the same test images
    (the same order on both sides)."""
    if len(method) != len(baseline) or not method:
        raise ValueError('paired comparison needs the same, non-empty list of seeds on both sides')
    _check_same_images(list(method) + list(baseline))
    per_seed = np.array([seed_value(a, metric_cfg) - seed_value(b, metric_cfg)
                         for a, b in zip(method, baseline)])
    scores = 100.0 * _resampled_scores([method, baseline], metric_cfg, n_resamples,
                                       bootstrap_seed)
    return _estimate(per_seed, scores[0] - scores[1], image_count(method[0]), clusters)


def _check_same_images(seeds: Sequence[SeedAreas]) -> None:
    shapes = {a.intersection.shape for a in seeds}
    if len(shapes) != 1:
        raise ValueError(f'seeds scored on different test units: shapes {sorted(shapes)}')


def resampled_row_means(seeds: Sequence[SeedAreas], metric_cfg: dict, rng: np.random.Generator,
                        n_resamples: int = N_RESAMPLES) -> np.ndarray:
    """(R,) bootstrap draws of a row's mean (in %) that resample seeds *and* one shared image
    multiset per resample (the same image draws for every row of a set: pass one ``rng`` state
    per set); for rankings, not for intervals."""
    scores = 100.0 * _resampled_scores([seeds], metric_cfg, n_resamples,
                                       int(rng.integers(2 ** 31)))[0]  # (k, R)
    k = len(seeds)
    picks = rng.integers(0, k, (n_resamples, k))
    with np.errstate(invalid='ignore'):
        return np.nanmean(scores[picks, np.arange(n_resamples)[:, None]], axis=1)


# -- families ------------------------------------------------------------------------------
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


def holm_family(estimates: Sequence[Optional[Estimate]], alpha: float = ALPHA) -> list[dict]:
    """Holm over a family (None: not compared): per comparison the adjusted p, a
    Holm-consistent interval and the verdict, which the interval decides.

    Step j of Holm (p sorted ascending, n comparisons) tests at alpha / (n - j); the
    comparisons up to the first step that fails get intervals at level 1 - alpha / (n - j),
    all later ones the level of that first failing step, so an interval excludes zero
    exactly when Holm rejects."""
    p = np.array([e.p_value if e is not None else np.nan for e in estimates])
    adjusted = holm(p)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind='stable')]
    n = order.size
    levels = np.full(p.size, np.nan)
    stopped = None
    for j, i in enumerate(order):
        if stopped is None and p[i] >= alpha / (n - j):
            stopped = alpha / (n - j)
        levels[i] = stopped if stopped is not None else alpha / (n - j)
    out = []
    for e, p_adj, level in zip(estimates, adjusted, levels):
        if e is None or not np.isfinite(level):
            out.append(dict(p_adjusted=float('nan'), low=float('nan'), high=float('nan'),
                            verdict=''))
            continue
        low, high = e.interval(1 - level)
        out.append(dict(p_adjusted=float(p_adj), low=low, high=high,
                        verdict=interval_verdict(low, high)))
    return out


def interval_verdict(low: float, high: float) -> str:
    """'better' / 'worse' when the interval excludes zero, else 'not resolved'."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return ''
    if low > 0:
        return 'better'
    if high < 0:
        return 'worse'
    return 'not resolved'


def verdict(delta: float, p: float, alpha: float = ALPHA) -> str:
    """'better' / 'worse' when ``p`` is below ``alpha``, else 'not resolved' ('' without p)."""
    if not np.isfinite(p):
        return ''
    if p < alpha:
        return 'better' if delta > 0 else 'worse'
    return 'not resolved'


def method_note(n_resamples: int = N_RESAMPLES, bootstrap_seed: int = BOOTSTRAP_SEED,
                baseline: Optional[str] = None, primary: bool = True) -> str:
    """The caption sentence every interval table carries."""
    text = (f'95 % intervals: replicate component (seeds, or pretraining runs where several) '
            f'plus a crossed image bootstrap (one test-image multiset per resample shared by '
            f'every seed and method), each on its own t quantile, {n_resamples} resamples, '
            f'bootstrap seed {bootstrap_seed}; no interval below {MIN_REPLICATES} replicates or '
            f'{MIN_IMAGES} test images')
    if baseline:
        text += (f'; delta: paired against the {baseline} row on the same fine-tuning set, '
                 f'shared seeds and test images; delta_ci95 and p_vs_baseline unadjusted')
        text += ('; primary family (every method vs the baseline on every set of Tables 4 and '
                 '5): p_holm and the Holm-consistent interval delta_holm decide the verdict'
                 if primary else '; exploratory: verdict from the unadjusted interval, no '
                 'multiplicity correction')
    return text
