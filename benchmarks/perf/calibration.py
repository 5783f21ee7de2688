"""Calibration of the suite's intervals and verdicts, by simulation with known truth.

    python benchmarks/perf/calibration.py --out results/perf/calibration.json [--reps 1000]

Simulates the design the suite runs: ``k`` fine-tuning seeds crossed with ``m`` test images
shared by every seed and both methods, per-image areas of two classes, and runs the suite's
own :func:`statistics.row_estimate` / :func:`statistics.paired_estimate` on them. Per image,
seed and method the IoU is (in points) ``mu + method + pretrain run + seed + image +
method x image + residual`` with SDs :data:`SDS`; the union of each image and class is random,
so the mIoU is pooled as in ``clean``. Method A is an SSL method whose seeds stand on
pretraining runs (``design``): ``own`` (each seed pretrains its own encoder, the default),
``shared-3`` (three pretraining runs shared in turn; the replicates are the runs) or
``shared-1`` (one run for all seeds; the truth is then that run's mean: intervals are
conditional on it, and the true difference that run's effect, so no false-verdict rate).
Method B is the baseline (random init). The true difference is otherwise 0.

Reported per cell, with Monte Carlo standard errors ``sqrt(p (1 - p) / reps)``: coverage of
the 95 % row interval of A and of the delta interval, the rate of a ``better``/``worse``
verdict (the interval excludes 0) under zero difference, the median half-width, and whether
the suite issues verdicts there (:func:`statistics.evidence_problem`). Cells below the minimum
evidence are simulated anyway, to show why no verdict is issued.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __name__ == '__main__':  # run as a file: keep benchmarks/perf itself off the import path
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or '.').resolve()) != _here]

import numpy as np  # noqa: E402

from matssl_bench.evaluation import statistics as stats  # noqa: E402
from matssl_bench.fileio.atomic import write_json_atomic  # noqa: E402

SDS = dict(seed=3.0, pretrain=2.0, image=6.0, method_x_image=3.0, residual=2.0)  # mIoU points
MU = 60.0
CFG = dict(convention='clean', class_names=['a', 'b'])
SEEDS = (1, 2, 3, 5, 10)
IMAGES = (3, 6, 20, 60)
EXTRA = (dict(k=6, m=20, design='shared-3'), dict(k=9, m=6, design='shared-3'),
         dict(k=5, m=20, design='shared-1'))


def _clusters(k: int, design: str) -> list:
    runs = {'own': k, 'shared-3': 3, 'shared-1': 1}[design]
    return [s % runs for s in range(k)]


def simulate(k: int, m: int, design: str, rng: np.random.Generator) -> dict:
    """One data set of the crossed design: per-seed areas of both methods and the truths."""
    classes = 2
    clusters = _clusters(k, design)
    runs = max(clusters) + 1
    pretrain = rng.normal(0, SDS['pretrain'], runs)
    image = rng.normal(0, SDS['image'], (m, 1))  # shared by seeds and methods
    iou = {}
    for method in ('A', 'B'):
        seed = rng.normal(0, SDS['seed'], (k, 1, 1))
        if method == 'A':
            seed = seed + pretrain[clusters][:, None, None]
        interaction = rng.normal(0, SDS['method_x_image'], (m, 1))
        residual = rng.normal(0, SDS['residual'], (k, m, classes))
        iou[method] = np.clip((MU + seed + image + interaction + residual) / 100, 0, 1)
    union = rng.uniform(2_000, 10_000, (m, classes))
    areas = {method: [stats.SeedAreas(iou[method][s] * union, union) for s in range(k)]
             for method in iou}
    truth = MU + (pretrain[0] if design == 'shared-1' else 0.0)
    return dict(areas=areas, clusters=clusters if design != 'own' else None, row_truth=truth,
                delta_truth=truth - MU)


def _rate(hits: list[bool]) -> dict:
    n = len(hits)
    if not n:
        return dict(rate=None, mc_se=None)
    p = float(np.mean(hits))
    return dict(rate=round(p, 4), mc_se=round(float(np.sqrt(max(p * (1 - p), 1 / n) / n)), 4))


def cell(k: int, m: int, design: str, reps: int, seed: int = 0,
         n_resamples: int = stats.N_RESAMPLES) -> dict:
    """Coverage and false-verdict rates of one (k, m, design) cell, for every interval method
    of :data:`statistics.INTERVAL_METHODS` on the same simulated data."""
    rng = np.random.default_rng([seed, k, m, len(design)])
    hits = {method: dict(row=[], delta=[], false=[], width=[])
            for method in stats.INTERVAL_METHODS}
    for _ in range(reps):
        data = simulate(k, m, design, rng)
        row = stats.row_estimate(data['areas']['A'], CFG, data['clusters'], n_resamples)
        delta = stats.paired_estimate(data['areas']['A'], data['areas']['B'], CFG,
                                      data['clusters'], n_resamples)
        for method, out in hits.items():
            low, high = row.interval(method=method)
            if np.isfinite(low):
                out['row'].append(low <= data['row_truth'] <= high)
            low, high = delta.interval(method=method)
            if np.isfinite(low):
                out['delta'].append(low <= data['delta_truth'] <= high)
                if data['delta_truth'] == 0:
                    out['false'].append(stats.interval_verdict(low, high) in ('better', 'worse'))
                out['width'].append((high - low) / 2)
    replicates = k if design in ('own', 'shared-1') else len(set(_clusters(k, design)))
    problem = stats.evidence_problem(replicates, m)
    methods = {method: dict(row_coverage=_rate(out['row']), delta_coverage=_rate(out['delta']),
                            false_verdict=_rate(out['false']),
                            median_delta_half_width=(round(float(np.median(out['width'])), 3)
                                                     if out['width'] else None))
               for method, out in hits.items()}
    return dict(k=k, m=m, design=design, reps=reps, verdicts_issued=problem is None,
                no_verdict_because=problem, **methods[stats.INTERVAL_METHOD],
                alternatives={m_: v for m_, v in methods.items() if m_ != stats.INTERVAL_METHOD})


def run(reps: int, seeds=SEEDS, images=IMAGES, extra=EXTRA,
        n_resamples: int = stats.N_RESAMPLES) -> dict:
    start = time.time()
    cells = [cell(k, m, 'own', reps, n_resamples=n_resamples) for k in seeds for m in images]
    cells += [cell(e['k'], e['m'], e['design'], reps, n_resamples=n_resamples) for e in extra]
    issued = [c for c in cells if c['verdicts_issued']]
    false = [c['false_verdict']['rate'] for c in issued if c['false_verdict']['rate'] is not None]
    return dict(
        settings=dict(reps=reps, sds_points=SDS, mu=MU, convention=CFG['convention'],
                      n_resamples=n_resamples, alpha=stats.ALPHA,
                      interval_method=stats.INTERVAL_METHOD,
                      min_replicates=stats.MIN_REPLICATES, min_images=stats.MIN_IMAGES,
                      targets=dict(coverage=[0.93, 0.97], false_verdict_max=0.06)),
        cells=cells,
        where_verdicts_issued=dict(
            delta_coverage=[min(c['delta_coverage']['rate'] for c in issued),
                            max(c['delta_coverage']['rate'] for c in issued)] if issued else None,
            row_coverage=[min(c['row_coverage']['rate'] for c in issued),
                          max(c['row_coverage']['rate'] for c in issued)] if issued else None,
            false_verdict_max=max(false) if false else None),
        seconds=round(time.time() - start, 1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--reps', type=int, default=1000)
    args = parser.parse_args(argv)
    if args.reps < 10:
        print('error: --reps must be at least 10', file=sys.stderr)
        return 2
    result = run(args.reps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    for c in result['cells']:
        print(f"k={c['k']:2d} m={c['m']:2d} {c['design']:8s} issued={str(c['verdicts_issued']):5s} "
              f"row {c['row_coverage']['rate']} delta {c['delta_coverage']['rate']} "
              f"false {c['false_verdict']['rate']} half-width {c['median_delta_half_width']}")
        for name, alt in c['alternatives'].items():
            print(f"{'':26s}{name}: row {alt['row_coverage']['rate']} delta "
                  f"{alt['delta_coverage']['rate']} false {alt['false_verdict']['rate']}")
    print(f"where verdicts are issued: {result['where_verdicts_issued']}; {result['seconds']} s")
    return 0


if __name__ == '__main__':
    sys.exit(main())
