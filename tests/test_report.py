"""Tables and figures are rebuilt from records alone."""
import math
import subprocess
import sys

import numpy as np
import pandas as pd

from conftest import REPO
from matssl_bench.records import RecordStore, write_json_atomic
from matssl_bench.tables import finetune_table


def _record(dataset, method, seed, miou, table='table5', published=96.79, status='finished'):
    rec = dict(stage='finetune', key=f'{dataset}-{method}-{seed}', status=status, suite='paper',
               method=method, method_label=method, encoder_init='imagenet',
               pretrain_set='Aachen+UHCS+MetalDAM', dataset=dataset, seed=seed, protocol='published',
               row=dict(table=table, published=published, index=0),
               dataset_meta=dict(classes=['background', 'foreground']),
               history=[{'epoch': e, 'val/mIoU': miou - 5 + e} for e in (1, 2, 3)])
    if status == 'finished':
        rec['test'] = {'mIoU': miou, 'IoU.background': miou + 1, 'IoU.foreground': miou - 1}
    else:
        rec['reason'] = 'weights missing'
    return rec


def test_mean_std_and_difference_over_seeds():
    records = [_record('EBC-1', 'MatSSL', s, v) for s, v in ((0, 90.0), (1, 92.0), (2, 94.0))]
    table = finetune_table(records)
    row = table.iloc[0]
    assert row['seeds'] == '0,1,2'
    assert row['mIoU (%)'] == 92.0 and row['std'] == 2.0
    assert math.isclose(row['difference'], 92.0 - 96.79)


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
    assert math.isnan(table.iloc[0]['mIoU (%)']) and table.iloc[0]['note'] == 'weights missing'


def test_make_tables_rebuilds_everything_from_records(tmp_path):
    store = RecordStore(tmp_path)
    for i, split in enumerate(('EBC-1', 'EBC-2')):
        rec = _record(split, 'MatSSL', 0, 90.0 + i)
        rec['predictions'] = f'runs/{split}.npz'
        rng = np.random.default_rng(i)
        (tmp_path / 'runs').mkdir(exist_ok=True)
        np.savez(tmp_path / rec['predictions'], image=rng.integers(0, 255, (2, 16, 16, 3), np.uint8),
                 truth=rng.integers(0, 2, (2, 16, 16), np.uint8),
                 pred=rng.integers(0, 2, (2, 16, 16), np.uint8))
        rec['depends_on'] = 'ssl'
        store.put('finetune', rec['key'], rec)
    store.put('pretrain', 'ssl', dict(stage='pretrain', key='ssl', status='finished',
                                      precision='bf16'))
    write_json_atomic(tmp_path / 'suite.json', dict(name='paper', protocol='published', notes='',
                      quoted=[dict(table='table5', finetune='EBC-1', model='UNet++',
                                   encoder='MicroNet', mIoU=95.17)]))
    out = subprocess.run([sys.executable, str(REPO / 'tools' / 'make_tables.py'),
                          '--work-dir', str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    tables = tmp_path / 'tables'
    table5 = pd.read_csv(tables / 'table5.csv')
    assert list(table5['split']) == ['EBC-1', 'EBC-2']
    assert table5['UNet++ / MicroNet (quoted)'].iloc[0] == 95.17
    assert math.isnan(table5['UNet++ / MicroNet (quoted)'].iloc[1])
    assert list(table5['precision']) == ['SSL bf16, FT fp32'] * 2  # read from the SSL record
    assert 'ours' in ' '.join(table5.columns)
    assert '\\begin{tabular}' in (tables / 'table5.tex').read_text()
    per_class = pd.read_csv(tables / 'table5_per_class_iou.csv')
    assert list(per_class.columns[-2:]) == ['background', 'foreground']
    for name in ('curves_EBC-1.png', 'overlays_EBC-2.png'):
        assert (tables / name).read_bytes()[:4] == b'\x89PNG'


def test_make_tables_refuses_a_folder_without_records(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / 'tools' / 'make_tables.py'),
                          '--work-dir', str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2 and str(tmp_path) in out.stderr


def test_overlay_colours():
    from matssl_bench.figures import FN, FP, TP, overlay
    image = np.zeros((1, 4, 3), np.uint8)
    truth = np.array([[0, 1, 1, 2]])
    pred = np.array([[0, 1, 0, 1]])
    out = overlay(image, truth, pred, alpha=1.0)
    assert tuple(out[0, 0]) == (0, 0, 0)
    assert tuple(out[0, 1]) == TP and tuple(out[0, 2]) == FN and tuple(out[0, 3]) == FP
