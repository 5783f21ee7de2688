"""Intervals for the crossed design, minimum evidence, Holm families, on cases with known answers."""
import time

import numpy as np
import pytest

from matssl_bench.evaluation import statistics as stats
from matssl_bench.report.tables import finetune_table

CLEAN = dict(convention='clean', class_names=['bg', 'fg'])


def _areas(rng, n=9, classes=2, scale=1000):
    union = rng.integers(scale // 2, scale, (n, classes)).astype(float)
    inter = np.floor(union * rng.uniform(0.3, 0.9, (n, classes)))
    return stats.SeedAreas(inter, union)


def test_identical_methods_give_a_zero_difference_and_no_verdict():
    rng = np.random.default_rng(1)
    seeds = [_areas(rng) for _ in range(3)]
    est = stats.paired_estimate(seeds, seeds, CLEAN, n_resamples=500)
    low, high = est.interval()
    assert est.value == 0 and low == 0 == high and est.p_value == 1.0
    assert stats.interval_verdict(low, high) == 'not resolved'


def test_a_constant_shift_of_every_image_is_recovered_exactly():
    rng = np.random.default_rng(2)
    union = np.full((7, 2), 100.0)
    base = [stats.SeedAreas(rng.integers(20, 80, (7, 2)).astype(float), union) for _ in range(3)]
    shifted = [stats.SeedAreas(a.intersection + 5, union) for a in base]  # +5 % IoU everywhere
    est = stats.paired_estimate(shifted, base, CLEAN, n_resamples=500)
    assert est.value == pytest.approx(5.0) and est.interval() == pytest.approx((5.0, 5.0))
    assert est.p_value < 1e-10 and stats.interval_verdict(*est.interval()) == 'better'


def test_shared_image_variance_is_not_divided_by_the_number_of_seeds():
    """Seeds that agree on every image: all the uncertainty is which images were drawn, and
    more seeds must not narrow the interval (a nested bootstrap divides it by k)."""
    rng = np.random.default_rng(3)
    one = _areas(rng, n=12)
    few = stats.row_estimate([one] * 3, CLEAN, n_resamples=2000)
    many = stats.row_estimate([one] * 30, CLEAN, n_resamples=2000)
    assert few.seed_var == 0 and few.image_var > 0
    assert many.se == pytest.approx(few.se) and many.df == pytest.approx(few.df) == 11
    assert stats.row_estimate([one] * 3, CLEAN, n_resamples=2000) == few  # seeded


def test_seed_component_is_a_t_interval_when_images_do_not_vary():
    # each seed predicts every image equally well: the image component vanishes, what is left
    # is the t-interval over the seeds' values on k - 1 df
    union = np.full((5, 2), 100.0)
    values = [50.0, 56.0, 53.0, 61.0]
    seeds = [stats.SeedAreas(np.full((5, 2), v), union) for v in values]
    est = stats.row_estimate(seeds, CLEAN, n_resamples=300)
    sem = np.std(values, ddof=1) / 2
    assert est.df == pytest.approx(3) and est.se == pytest.approx(sem)
    from scipy import stats as sps
    assert est.interval() == pytest.approx(sps.t.interval(0.95, 3, np.mean(values), sem))


def test_pretraining_runs_are_the_replicates_where_several_stand_behind_the_seeds():
    union = np.full((4, 2), 100.0)
    values = [50, 52, 60, 62, 70, 72]
    seeds = [stats.SeedAreas(np.full((4, 2), float(v)), union) for v in values]
    runs = ['a', 'a', 'b', 'b', 'c', 'c']
    est = stats.row_estimate(seeds, CLEAN, clusters=runs, n_resamples=300)
    assert est.replicates == 3 and est.df == pytest.approx(2)
    assert est.se == pytest.approx(np.std([51, 61, 71], ddof=1) / np.sqrt(3))
    assert stats.replicates(['x'] * 6, 6) == (6, 'seed')  # one shared run: conditional on it
    assert stats.replicates(runs, 6) == (3, 'pretraining run')


def test_patches_are_resampled_as_whole_images():
    rng = np.random.default_rng(5)
    base = _areas(rng, n=8)
    names = tuple(f'img{i // 4}' for i in range(8))  # 2 images of 4 patches
    patched = stats.SeedAreas(base.intersection, base.union, names)
    assert stats.image_count(patched) == 2 and stats.image_count(base) == 8
    assert stats.evidence_problem(3, 2) .startswith('2 test images: fewer than 3')


def test_minimum_evidence_messages():
    assert stats.evidence_problem(1, 20) == '1 seed: seed-to-seed variance not estimable'
    assert '2 seeds: fewer than 3' in stats.evidence_problem(2, 20)
    assert stats.evidence_problem(3, 3) is None


def test_authors_batch_bootstrap_matches_its_point_value_without_variation():
    units = stats.SeedAreas(np.tile([[30.0, 20.0]], (300, 1)), np.tile([[60.0, 40.0]], (300, 1)))
    cfg = dict(convention='authors-batch', mean_classes=None, class_names=['a', 'b'])
    est = stats.row_estimate([units] * 3, cfg, n_resamples=200)
    assert est.value == pytest.approx(50.0) and est.interval() == pytest.approx((50.0, 50.0))


def test_holm_matches_the_textbook_example():
    adjusted = stats.holm([0.01, 0.04, 0.03, np.nan])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and np.isnan(adjusted[3])


def test_holm_intervals_never_contradict_holm_verdicts():
    rng = np.random.default_rng(6)
    for _ in range(200):
        n = int(rng.integers(1, 8))
        ests = [stats.Estimate(float(rng.normal(0, 3)), float(rng.uniform(0.2, 2)),
                               float(rng.uniform(0, 2)), int(rng.integers(3, 10)),
                               int(rng.integers(3, 30))) for _ in range(n)]
        family = stats.holm_family(ests)
        for est, out in zip(ests, family):
            rejected = out['p_adjusted'] < stats.ALPHA
            assert (est.p_value < stats.ALPHA) == (est.interval()[0] > 0 or est.interval()[1] < 0)
            assert (out['verdict'] in ('better', 'worse')) == rejected
            assert (out['low'] > 0 or out['high'] < 0) == rejected
            # adjusted intervals hold the unadjusted ones
            low, high = est.interval()
            assert out['low'] <= low + 1e-9 and out['high'] >= high - 1e-9


def _record(method, seed, areas, dataset='S', label=None):
    units = [dict(name=f'img{i}', height=10, width=10, intersection=list(map(int, a)),
                  union=list(map(int, u)), pred_area=list(map(int, u)), gt_area=list(map(int, u)))
             for i, (a, u) in enumerate(zip(areas.intersection, areas.union))]
    return dict(stage='finetune', key=f'{dataset}{method}{seed}', status='finished',
                method=method, method_label=label or method, encoder_init='random',
                pretrain_set=None, dataset=dataset, seed=seed, protocol='clean',
                row=dict(table='table4'), metric=dict(convention='clean'),
                dataset_meta=dict(classes=['bg', 'fg']), test=dict(images=units))


def test_tables_of_5000_records_build_in_seconds():
    rng = np.random.default_rng(4)
    records = [_record(f'M{m}', s, _areas(rng), dataset=f'S{d}')
               for d in range(10) for m in range(10) for s in range(50)]
    # CPU time, not wall time: the test machine's cores are shared; default resamples
    start = time.process_time()
    table = finetune_table(records, baseline='M0')
    elapsed = time.process_time() - start
    assert len(records) == 5000 and len(table) == 100
    assert set(table.loc[table['method'] == 'M0', 'verdict']) == {'baseline'}
    assert table['ci95_low'].notna().all() and table['delta_vs_baseline'].notna().sum() == 90
    assert table['p_holm'].notna().sum() == 90
    assert elapsed < 10, elapsed
