"""One configuration per row, rare classes, and results folders that rebuild byte for byte."""
import runpy
import sys

import numpy as np
import pandas as pd
import pytest

from matssl_bench.engine.records import RecordStore
from matssl_bench.fileio.atomic import write_json_atomic
from matssl_bench.report.build import RECORDS_ARCHIVE, make_report
from matssl_bench.report.configurations import select, slot
from matssl_bench.report.tables import finetune_table, per_class_table

CLASSES = ['matrix', 'phase', 'pore']


def _record(method, seed, quality, lr=1e-3, rng=None, pore=0, dataset='S'):
    """A finished record on 4 test images; ``pore`` pixels of class 'pore' in image 0."""
    rng = rng or np.random.default_rng(seed)
    units = []
    for i in range(4):
        gt = [600 - (pore if i == 0 else 0), 400, pore if i == 0 else 0]
        union = [g + 50 for g in gt[:2]] + [pore if i == 0 else 0]
        q = np.clip(quality + rng.normal(0, 0.03, 3), 0, 1)
        inter = [int(u * qq) for u, qq in zip(union, q)]
        units.append(dict(name=f'img{i}', height=32, width=32, intersection=inter, union=union,
                          pred_area=union, gt_area=gt))
    config = dict(method={'name': method}, scale=dict(lr=lr), seed=seed, protocol='clean',
                  finetune_set=dataset)
    key = f'{method}-{seed}-{lr}'
    return dict(stage='finetune', key=key, status='finished', method=method, method_label=method,
                encoder_init='random', pretrain_set=None, dataset=dataset, seed=seed,
                protocol='clean', row=dict(table='table4', index=0 if method == 'RandomInit' else 1),
                config=config, metric=dict(convention='clean'),
                dataset_meta=dict(classes=CLASSES), history=[],
                test=dict(mIoU=100 * quality, images=units))


def _runs(rng):
    old = [_record(m, s, q, rng=rng) for s in (0, 1, 2)
           for m, q in (('RandomInit', 0.6), ('MatSSL', 0.7))]
    new = [_record('RandomInit', s, 0.62, lr=2e-3, rng=rng) for s in (0, 1, 2)]
    return old, new


def test_a_rerun_with_other_settings_replaces_the_row_instead_of_adding_seeds():
    old, new = _runs(np.random.default_rng(0))
    plan = [r['key'] for r in old if r['method'] == 'MatSSL'] + [r['key'] for r in new]
    chosen = select(old + new, plan)
    assert len(chosen.ignored) == 3 and {r['config']['scale']['lr'] for r in chosen.ignored} == {1e-3}
    assert chosen.note().startswith('3 records of other configurations ignored; --all-records')
    table = finetune_table(chosen.records, ignored=chosen.ignored, n_resamples=300)
    assert list(table['per_seed'].str.count(';')) == [2, 2]  # 3 values each
    base = table[table['method'] == 'RandomInit'].iloc[0]
    assert '3 records of other configurations ignored' in base['note']
    assert base['mean'] > 61  # the new configuration's values
    # every configuration its own row, labelled by the setting that differs
    both = finetune_table(select(old + new, plan, all_records=True).records, n_resamples=300)
    assert sorted(both['method']) == ['MatSSL', 'RandomInit [scale.lr=0.001]',
                                      'RandomInit [scale.lr=0.002]']
    verdicts = dict(zip(both['method'], both['verdict']))  # the planned one stays the baseline
    assert verdicts['RandomInit [scale.lr=0.002]'] == 'baseline'
    assert both['delta_vs_baseline'].notna().sum() == 2
    # without a plan: the configuration with the most seeds
    assert len(select(old + new[:2]).ignored) == 2


def test_the_slot_of_a_record_leaves_out_its_configuration():
    a, b = _record('MatSSL', 0, 0.7), _record('MatSSL', 0, 0.7, lr=5.0)
    assert slot(a) == slot(b) != slot(_record('MatSSL', 1, 0.7))
    assert slot(a, with_seed=False) == slot(_record('MatSSL', 1, 0.7), with_seed=False)


def test_one_seed_prints_its_mean_and_says_why_there_is_no_verdict():
    rng = np.random.default_rng(1)
    table = finetune_table([_record('RandomInit', 0, 0.6, rng=rng),
                            _record('MatSSL', 0, 0.8, rng=rng)], n_resamples=300)
    row = table[table['method'] == 'MatSSL'].iloc[0]
    assert row['verdict'] == '' and np.isnan(row['ci95_low']) and np.isnan(row['p_holm'])
    assert '1 seed: seed-to-seed variance not estimable' in row['note']
    assert row['mean'] == pytest.approx(float(row['per_seed']), abs=0.005)


def test_a_class_in_no_test_image_is_reported_not_averaged_silently():
    recs = [_record('MatSSL', s, 0.7) for s in (0, 1, 2)]
    per_class = per_class_table(recs).iloc[0]
    assert per_class['test images with pore'] == 0 and per_class['test images with phase'] == 4
    assert 'pore' in per_class['note'] and np.isnan(per_class['pore'])
    assert "in no test image's ground truth: pore" in finetune_table(recs, n_resamples=300)['note'].iloc[0]
    rare = per_class_table([_record('MatSSL', s, 0.7, pore=20) for s in (0, 1, 2)]).iloc[0]
    assert rare['test images with pore'] == 1 and rare['note'] == ''


def _make_tables(*argv):
    saved = sys.argv
    sys.argv = ['make_tables.py', *map(str, argv)]
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path('tools/make_tables.py', run_name='__main__')
    finally:
        sys.argv = saved
    return done.value.code


def test_a_results_folder_rebuilds_its_tables_byte_for_byte(tmp_path, monkeypatch):
    from conftest import REPO
    monkeypatch.chdir(REPO)
    work = tmp_path / 'work'
    store = RecordStore(work)
    old, new = _runs(np.random.default_rng(2))
    for rec in old + new:
        store.put('finetune', rec['key'], rec)
    write_json_atomic(work / 'suite.json', dict(
        name='t', protocol='clean', quoted=[], notes='', baseline='RandomInit',
        plan={slot(r): r['key'] for r in old + new if r['config']['scale']['lr'] == 2e-3
              or r['method'] == 'MatSSL'}))
    results = tmp_path / 'results'
    assert _make_tables('--work-dir', work, '--out', results) == 0
    assert (results / RECORDS_ARCHIVE).stat().st_size < 20_000
    again = tmp_path / 'again'
    assert _make_tables('--work-dir', results, '--out', again) == 0
    names = sorted(p.name for p in results.glob('*.[cmt][sde]*'))
    assert 'table4.csv' in names and 'pairwise.csv' in names and 'ranking.csv' in names
    for name in names:
        assert (again / name).read_bytes() == (results / name).read_bytes(), name
    assert (again / RECORDS_ARCHIVE).read_bytes() == (results / RECORDS_ARCHIVE).read_bytes()
    table4 = pd.read_csv(results / 'table4.csv')
    assert list(table4['per_seed'].str.count(';')) == [2, 2]
    assert 'other configurations ignored' in (results / 'table4.md').read_text()
    written = make_report(work, tmp_path / 'all', all_records=True)
    assert len(pd.read_csv(written['table4'][0])) == 3
    # a damaged archive: one line naming the file and the problem
    import gzip
    with gzip.open(again / RECORDS_ARCHIVE, 'wt') as f:
        f.write('{"stage": "finetune", "status": "finished"}\n')
    assert _make_tables('--work-dir', again) == 2


def test_rows_follow_the_plan_where_records_carry_another_suites_row_index():
    """A job shared by two suites keeps the row index of the suite that ran it first; the
    table of the other suite still lists its rows in its own plan's order."""
    rng = np.random.default_rng(0)
    records = [_record(m, s, q, rng=rng) for s in (0, 1, 2)
               for m, q in (('RandomInit', 0.6), ('MatSSL', 0.7))]
    assert list(finetune_table(records)['method']) == ['RandomInit', 'MatSSL']  # row index
    plan_first = {'MatSSL': 0, 'RandomInit': 1}
    planned = [dict(r, plan_position=plan_first[r['method']] * 3 + r['seed']) for r in records]
    assert list(finetune_table(planned)['method']) == ['MatSSL', 'RandomInit']
