"""Paired comparisons in the variant tables: label efficiency and transfer against the
baseline method, a frozen encoder against full fine-tuning of the same method."""
from __future__ import annotations

import numpy as np
import pytest

from matssl_bench.evaluation.metrics import summarize
from matssl_bench.report.variant_tables import (frozen_table, label_efficiency_summary,
                                          label_efficiency_table, paired_runs, transfer_runs,
                                          transfer_table)

CFG = dict(convention='clean', class_names=['matrix', 'phase'])


def _result(rng: np.random.Generator, quality: float, images: int = 12) -> dict:
    """Per-image areas of a binary segmentation whose IoUs sit near ``quality``."""
    units = []
    for i in range(images):
        union = rng.integers(800, 1200, size=2)
        inter = np.minimum(union, np.round(union * np.clip(quality + rng.normal(0, 0.05, 2),
                                                           0, 1))).astype(int)
        units.append(dict(name=f'img{i}', height=32, width=32, intersection=inter.tolist(),
                          union=union.tolist(), pred_area=union.tolist(),
                          gt_area=union.tolist()))
    return dict(summarize(units, CFG), images=units, convention='clean')


def _record(rng, method: str, seed: int, quality: float, dataset='MetalDAM', **extra) -> dict:
    config = dict(scale=dict(encoder_mode=extra.pop('mode', 'full')))
    if 'labels' in extra:
        config['labels'] = extra.pop('labels')
    return dict(stage='finetune', status='finished', method=method, method_label=method,
                pretrain_set=None, dataset=dataset, seed=seed, protocol='clean',
                key=f'{method}-{dataset}-{seed}-{quality}-{config}', config=config, row={},
                dataset_meta=dict(classes=CFG['class_names']), test=_result(rng, quality),
                **extra)


def test_identical_runs_differ_by_zero_and_a_shift_is_resolved():
    rng = np.random.default_rng(0)
    same = [_result(rng, 0.6) for _ in range(4)]
    tie = paired_runs([(r, r) for r in same], CFG)
    assert tie['delta'] == 0 and tie['delta_ci95_low'] <= 0 <= tie['delta_ci95_high']
    better = [(_result(rng, 0.8), _result(rng, 0.5)) for _ in range(4)]
    shift = paired_runs(better, CFG)
    assert shift['pairs'] == 4 and 20 < shift['delta'] < 40 and shift['delta_ci95_low'] > 0


def test_variant_tables_pair_methods_draws_and_modes():
    rng = np.random.default_rng(1)
    records = []
    for seed in range(3):
        records += [_record(rng, 'MatSSL', seed, 0.7), _record(rng, 'RandomInit', seed, 0.7),
                    _record(rng, 'MatSSL', seed, 0.4, mode='frozen-decoder')]
        for n in (1, 2):  # one draw per seed, the same draws for both methods
            labels = dict(n=n, draw=seed)
            records += [_record(rng, 'MatSSL', 0, 0.65, labels=labels, n_labelled=n),
                        _record(rng, 'RandomInit', 0, 0.35, labels=labels, n_labelled=n)]

    summary = label_efficiency_summary(label_efficiency_table(records), records, 'RandomInit')
    ours = summary[(summary['method'] == 'MatSSL') & (summary['n_labelled'] == 1)].iloc[0]
    assert ours['pairs'] == 3 and ours['delta_ci95_low'] > 0 and ours['verdict'] == 'better'
    assert summary[summary['method'] == 'RandomInit']['delta'].isna().all()

    frozen = frozen_table(records)
    row = frozen[frozen['encoder mode'] == 'frozen-decoder'].iloc[0]
    assert row['delta'] < 0 and row['delta_ci95_high'] < 0 and row['verdict'] == 'worse'
    assert np.isnan(frozen[frozen['encoder mode'] == 'full']['delta']).all()


@pytest.mark.parametrize('gap', [0.0, 0.3])
def test_transfer_compares_each_cell_with_the_baseline(gap):
    rng = np.random.default_rng(2)
    records = []
    for seed in range(3):
        for method, quality in (('MatSSL', 0.5 + gap), ('RandomInit', 0.5)):
            rec = _record(rng, method, seed, 0.7, dataset='EBC-1')
            rec['transfer'] = {'EBC-2': _result(rng, quality)}
            records.append(rec)
    table = transfer_table(transfer_runs(records), records, 'RandomInit')
    cell = table[(table['method'] == 'MatSSL') & (table['target'] == 'EBC-2')].iloc[0]
    assert cell['interval'] == 'seeds + crossed images' and cell['pairs'] == 3
    if gap:
        assert cell['delta_ci95_low'] > 0 and cell['verdict'] == 'better'
    else:
        assert cell['delta_ci95_low'] < 0 < cell['delta_ci95_high']
        assert cell['verdict'] == 'not resolved'


def test_variant_rows_below_the_minimum_evidence_keep_their_mean_and_say_why():
    rng = np.random.default_rng(3)
    one_image = [(_result(rng, 0.7, images=1), _result(rng, 0.5, images=1)) for _ in range(4)]
    cell = paired_runs(one_image, CFG, image_name='unseen test image')
    assert np.isnan(cell['delta_ci95_low']) and cell['verdict'] == '' and cell['delta'] > 0
    assert cell['note'].startswith('1 unseen test image: fewer than 3')
    # two label draws, two seeds each: the draws are the replicates
    pairs = [(_result(rng, 0.7), _result(rng, 0.5)) for _ in range(4)]
    two_draws = paired_runs(pairs, CFG, clusters=[0, 0, 1, 1], replicate_name='run')
    assert two_draws['note'].startswith('2 draws: fewer than 3') and np.isnan(two_draws['p'])
    three = paired_runs(pairs[:3], CFG, clusters=[0, 1, 2], replicate_name='run')
    assert three['note'] == '' and three['verdict'] == 'better' and three['p'] < 0.05
