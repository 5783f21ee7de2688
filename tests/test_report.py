"""Tables and figures are rebuilt from records alone."""
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import run_tool
from matssl_bench.engine.records import RecordStore
from matssl_bench.fileio.atomic import write_json_atomic
from matssl_bench.report.tables import finetune_table


def _images(miou, n=3):
    """Per-image areas whose pooled clean mIoU is ``miou`` % for both classes."""
    return [dict(name=f'img{i}', height=10, width=10, intersection=[miou, miou],
                 union=[100, 100], pred_area=[50, 50], gt_area=[50 + i, 50 - i])
            for i in range(n)]


def _record(dataset, method, seed, miou, table='table5', published=96.79, status='finished',
            registry_name=None):
    rec = dict(stage='finetune', key=f'{dataset}-{method}-{seed}', status=status, suite='paper',
               method=registry_name or method, method_label=method, encoder_init='imagenet',
               pretrain_set='Aachen+UHCS+MetalDAM', dataset=dataset, seed=seed, protocol='clean',
               row=dict(table=table, published=published, index=0),
               metric=dict(convention='clean', num_classes=2),
               dataset_meta=dict(classes=['background', 'foreground']),
               selection_split='val',
               history=[{'epoch': e, 'val/mIoU': miou - 5 + e} for e in (1, 2, 3)])
    if status == 'finished':
        rec['test'] = {'mIoU': miou, 'IoU.background': miou, 'IoU.foreground': miou,
                       'images': _images(miou)}
        rec['test_last'] = {'mIoU': miou - 1, 'images': _images(miou - 1)}
    else:
        rec['reason'] = 'weights missing'
    return rec


def test_mean_interval_and_difference_over_seeds():
    records = [_record('EBC-1', 'MatSSL', s, v) for s, v in ((0, 90), (1, 92), (2, 94))]
    table = finetune_table(records)
    row = table.iloc[0]
    assert row['seeds'] == '0,1,2' and row['per_seed'] == '90.00;92.00;94.00'
    # the images agree within each seed: the interval is the t-interval over the 3 seeds
    from scipy import stats as sps
    low, high = sps.t.interval(0.95, 2, loc=92.0, scale=2.0 / np.sqrt(3))
    assert row['mean'] == 92.0 and row['ci95_low'] == pytest.approx(low)
    assert row['ci95_high'] == pytest.approx(high)
    assert math.isclose(row['difference'], 92.0 - 96.79)
    assert row['metric'] == 'clean'


def test_comparison_with_the_baseline_row_and_its_absence():
    records = [_record('EBC-1', 'MatSSL', s, 90 + s) for s in (0, 1, 2)]
    base = [_record('EBC-1', 'random init', s, 80 + s, registry_name='RandomInit')
            for s in (0, 1, 2)]
    table = finetune_table(records + base)
    mat = table[table['method'] == 'MatSSL'].iloc[0]
    assert mat['delta_vs_baseline'] == pytest.approx(10.0) == mat['delta_ci95_low']
    assert mat['delta_holm_low'] == pytest.approx(10.0)
    assert mat['verdict'] == 'better' and mat['p_vs_baseline'] < 0.05 and mat['p_holm'] < 0.05
    two = finetune_table(records[:2] + base[:2])
    row = two[two['method'] == 'MatSSL'].iloc[0]
    assert math.isnan(row['ci95_low']) and math.isnan(row['p_vs_baseline'])
    assert row['verdict'] == '' and '2 seeds: fewer than 3' in row['note']
    assert row['per_seed'] == '90.00;91.00' and row['mean'] == 90.5
    assert table[table['method'] == 'random init'].iloc[0]['verdict'] == 'baseline'
    alone = finetune_table(records, baseline='RandomInit').iloc[0]
    assert math.isnan(alone['delta_vs_baseline']) and alone['verdict'] == ''
    assert 'baseline RandomInit has no finished run' in alone['note']


def test_precision_column_names_what_each_stage_ran_with():
    pretrain = dict(stage='pretrain', key='ssl-0', status='finished', precision='bf16')
    ssl_row = dict(_record('EBC-1', 'MatSSL', 0, 90.0), depends_on='ssl-0', precision='fp32')
    legacy = _record('EBC-2', 'MatSSL', 0, 90.0)  # from before the option: float32
    missing = _record('EBC-3', 'MatSSL', 0, 0, status='unavailable')
    orphan = dict(_record('EBC-4', 'MatSSL', 0, 90.0), depends_on='not-given', precision='bf16')
    table = finetune_table([pretrain, ssl_row, legacy, missing, orphan])
    assert list(table['precision']) == ['SSL bf16, FT fp32', 'FT fp32', '-', 'SSL ?, FT bf16']


def test_unavailable_rows_keep_their_reason():
    table = finetune_table([_record('EBC-1', 'MatSSL', 0, 0, status='unavailable')])
    assert math.isnan(table.iloc[0]['mean']) and table.iloc[0]['note'] == 'weights missing'


def test_legacy_records_without_images_say_why_they_have_no_interval():
    rec = _record('EBC-1', 'MatSSL', 0, 90)
    del rec['test']['images']
    row = finetune_table([rec]).iloc[0]
    assert row['mean'] == 90 and math.isnan(row['ci95_low']) and 'predates' in row['note']


def _make_tables(work_dir, *extra):
    return run_tool('make_tables.py', '--work-dir', work_dir, *extra)


def test_make_tables_rebuilds_everything_from_records(tmp_path):
    store = RecordStore(tmp_path)
    for i, split in enumerate(('EBC-1', 'EBC-2')):
        rec = _record(split, 'MatSSL', 0, 90 + i)
        rec['predictions'] = f'runs/{split}.npz'
        rng = np.random.default_rng(i)
        (tmp_path / 'runs').mkdir(exist_ok=True)
        np.savez(tmp_path / rec['predictions'], image=rng.integers(0, 255, (2, 16, 16, 3), np.uint8),
                 truth=rng.integers(0, 2, (2, 16, 16), np.uint8),
                 pred=rng.integers(0, 2, (2, 16, 16), np.uint8), title=np.array(['a@0,0', 'b@0,16']))
        rec['depends_on'] = 'ssl'
        store.put('finetune', rec['key'], rec)
    store.put('pretrain', 'ssl', dict(stage='pretrain', key='ssl', status='finished',
                                      precision='bf16'))
    write_json_atomic(tmp_path / 'suite.json', dict(name='paper', protocol='published', notes='',
                      quoted=[dict(table='table5', finetune='EBC-1', model='UNet++',
                                   encoder='MicroNet', mIoU=95.17)]))
    out = _make_tables(tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    tables = tmp_path / 'tables'
    table5 = pd.read_csv(tables / 'table5.csv')
    assert list(table5['split']) == ['EBC-1', 'EBC-2']
    assert table5['UNet++ / MicroNet (quoted)'].iloc[0] == 95.17
    assert math.isnan(table5['UNet++ / MicroNet (quoted)'].iloc[1])
    assert list(table5['precision']) == ['SSL bf16, FT fp32'] * 2  # read from the SSL record
    assert 'ours' in ' '.join(table5.columns)
    for column in ('per_seed', 'mean', 'ci95_low', 'ci95_high', 'delta_vs_baseline',
                   'delta_ci95_low', 'delta_ci95_high', 'p_vs_baseline', 'verdict'):
        assert column in table5.columns
    tex = (tables / 'table5.tex').read_text()
    assert '\\begin{tabular}' in tex and '2000 resamples, bootstrap seed 0' in tex
    per_class = pd.read_csv(tables / 'table5_per_class_iou.csv')
    assert list(per_class.columns[5:7]) == ['background', 'foreground']
    # images 0..2 have true foreground 50, 49, 48 % and predicted 50 %: mean error 1 point
    assert per_class['|fraction error| foreground'].iloc[0] == 1.0
    assert (tables / 'table5_last_epoch.csv').is_file()
    for name in ('curves_EBC-1.png', 'overlays_EBC-2.png', 'miou_intervals.png'):
        assert (tables / name).read_bytes()[:4] == b'\x89PNG'
    first = {p.name: p.read_bytes() for p in tables.glob('*.[cmt][sde]*')}
    # again, without the runs/ folder: identical tables, overlays skipped with a note
    shutil.rmtree(tmp_path / 'runs')
    again = _make_tables(tmp_path, '--out', str(tmp_path / 'again'))
    assert again.returncode == 0, again.stderr[-2000:]
    assert 'missing' in again.stdout and not (tmp_path / 'again' / 'overlays_EBC-1.png').exists()
    assert {p.name: p.read_bytes() for p in (tmp_path / 'again').glob('*.[cmt][sde]*')} == first


def test_make_tables_refuses_a_folder_without_records(tmp_path):
    out = _make_tables(tmp_path)
    assert out.returncode == 2 and str(tmp_path) in out.stderr


def test_overlay_colours():
    from matssl_bench.report.figures import FN, FP, TP, overlay
    image = np.zeros((1, 4, 3), np.uint8)
    truth = np.array([[0, 1, 1, 2]])
    pred = np.array([[0, 1, 0, 1]])
    out = overlay(image, truth, pred, alpha=1.0)
    assert tuple(out[0, 0]) == (0, 0, 0)
    assert tuple(out[0, 1]) == TP and tuple(out[0, 2]) == FN and tuple(out[0, 3]) == FP
