"""Bootstrap intervals, paired comparisons and Holm's correction on cases with known answers."""
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


def test_identical_methods_give_an_interval_around_zero_and_no_verdict():
    rng = np.random.default_rng(1)
    seeds = [_areas(rng) for _ in range(3)]
    delta, low, high, p = stats.paired_difference(seeds, seeds, CLEAN, n_resamples=2000)
    assert delta == 0 and low <= 0 <= high and p == 1.0
    assert stats.verdict(delta, p) == 'not resolved'


def test_a_constant_shift_of_every_image_is_recovered_exactly():
    rng = np.random.default_rng(2)
    union = np.full((7, 2), 100.0)
    base = [stats.SeedAreas(rng.integers(20, 80, (7, 2)).astype(float), union) for _ in range(2)]
    shifted = [stats.SeedAreas(a.intersection + 5, union) for a in base]  # +5 % IoU everywhere
    delta, low, high, p = stats.paired_difference(shifted, base, CLEAN, n_resamples=2000)
    assert delta == pytest.approx(5.0) and low == pytest.approx(5.0) and high == pytest.approx(5.0)
    assert p < 0.01 and stats.verdict(delta, p) == 'better'
    assert stats.verdict(-delta, p) == 'worse'


def test_row_interval_contains_the_mean_and_shrinks_with_more_seeds():
    rng = np.random.default_rng(3)
    few = [_areas(rng) for _ in range(2)]
    many = few + [_areas(rng) for _ in range(18)]
    mean, low, high = stats.row_interval(few, CLEAN, n_resamples=2000)
    assert low <= mean <= high
    mean20, low20, high20 = stats.row_interval(many, CLEAN, n_resamples=2000)
    assert low20 <= mean20 <= high20 and high20 - low20 < high - low
    assert stats.row_interval(few, CLEAN, n_resamples=2000) == (mean, low, high)  # seeded


def test_authors_batch_bootstrap_matches_its_point_value_without_variation():
    units = stats.SeedAreas(np.tile([[30.0, 20.0]], (300, 1)), np.tile([[60.0, 40.0]], (300, 1)))
    cfg = dict(convention='authors-batch', mean_classes=None, class_names=['a', 'b'])
    mean, low, high = stats.row_interval([units], cfg, n_resamples=500)
    assert mean == pytest.approx(50.0) and low == pytest.approx(50.0) == high


def test_holm_matches_the_textbook_example():
    adjusted = stats.holm([0.01, 0.04, 0.03, np.nan])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and np.isnan(adjusted[3])


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
    # CPU time, not wall time: the test machine's cores are shared. A tenth of the default
    # resamples keeps the test short; the default takes about 15 s of CPU for these records.
    start = time.process_time()
    table = finetune_table(records, baseline='M0', n_resamples=1000)
    elapsed = time.process_time() - start
    assert len(records) == 5000 and len(table) == 100
    assert set(table.loc[table['method'] == 'M0', 'verdict']) == {'baseline'}
    assert table['ci95_low'].notna().all() and table['delta_vs_baseline'].notna().sum() == 90
    assert elapsed < 10, elapsed
