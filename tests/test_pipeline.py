"""End-to-end runs of a tiny suite through the real CLI (pretrain -> fine-tune -> evaluate)."""
import json
import math
import os
import time

import pandas as pd
import pytest
import torch
import torchvision

from conftest import run_cli, write_tiny_suite

pytestmark = pytest.mark.slow  # trains suites or starts processes


def _finetune_records(work_dir):
    return [json.loads(p.read_text()) for p in sorted((work_dir / 'records' / 'finetune').glob('*.json'))]


def test_tiny_suite_end_to_end_then_cached(finished_suite, tmp_path):
    first = finished_suite.first_run  # every method, trained in a fresh process
    assert '9 jobs: 7 finished, 2 unavailable' in first.stdout, first.stdout[-2000:]
    work = finished_suite.copy_to(tmp_path)

    table = pd.read_csv(work / 'tables' / 'table4.csv')
    assert set(table['method']) == {'MatSSL', 'MoCoV2', 'DenseCL', 'random init',
                                    'supervised ImageNet', 'MicroNet'}
    missing_files = {'supervised ImageNet': 'resnet18-f37072fd.pth',
                     'MicroNet': 'resnet18_pretrained_microscopynet_v1.0.pth.tar'}
    for column in ('per_seed', 'mean', 'ci95_low', 'ci95_high', 'delta_vs_baseline',
                   'delta_ci95_low', 'delta_ci95_high', 'p_vs_baseline', 'verdict'):
        assert column in table.columns
    for _, row in table.iterrows():
        if row['method'] in missing_files:  # no weights on this machine: said plainly
            assert math.isnan(row['mean'])
            assert missing_files[row['method']] in row['note'] and 'checkpoints' in row['note']
        else:  # one or two seeds: the mean, no interval or verdict, and the note says why
            assert 0.0 < row['mean'] <= 100.0
            assert math.isnan(row['ci95_low']) and math.isnan(row['p_vs_baseline'])
            assert ('2 seeds: fewer than 3' if row['method'] == 'random init'  # seeds 0 and 1
                    else '1 seed: seed-to-seed variance not estimable') in row['note']
            assert row['verdict'] == 'baseline' if row['method'] == 'random init' \
                else pd.isna(row['verdict'])
    assert table.loc[table['method'] == 'random init', 'verdict'].item() == 'baseline'
    assert (work / 'tables' / 'table4.md').read_text().count('\n|') >= 6

    records = [r for r in _finetune_records(work) if r['status'] == 'finished' and r['seed'] == 0]
    assert len(records) == 4
    for rec in records:
        assert rec['config']['seed'] == 0
        assert rec['versions']['torch'] == torch.__version__
        assert rec['test']['mIoU'] == rec['test']['mIoU']  # not NaN
        assert any(k.startswith('IoU.') for k in rec['test'])
        assert len(rec['history']) == 2 and 'val/mIoU' in rec['history'][-1]
        for result in ('test', 'test_last'):  # whole test images (64 px), every pixel scored
            images = rec[result]['images']
            assert len(images) == 2 and all(im['height'] == im['width'] == 64 for im in images)
            assert all(sum(im['pred_area']) == im['height'] * im['width'] for im in images)
    pretrain = list((work / 'records' / 'pretrain').glob('*.json'))
    assert len(pretrain) == 3 and len(list((work / 'encoders').glob('*.pth'))) == 3

    start = time.time()
    second = run_cli('--suite', str(finished_suite.suite), '--work-dir', str(work))
    second_time = time.time() - start
    assert second.returncode == 0, second.stderr[-3000:]
    assert '9 jobs: 7 cached, 2 unavailable' in second.stdout  # no phantom rows
    assert second_time < finished_suite.first_run_seconds / 2
    assert pd.read_csv(work / 'tables' / 'table4.csv').equals(table)


def test_identical_runs_give_identical_records(finished_suite, tmp_path):
    """The session's MatSSL run (a fresh process) again in this one: the same record."""
    suite = write_tiny_suite(tmp_path, methods='MatSSL')  # same settings, same job keys
    out = run_cli('--suite', str(suite), '--work-dir', str(tmp_path / 'again'))
    assert out.returncode == 0, out.stderr[-3000:]
    (b,) = _finetune_records(tmp_path / 'again')
    (a,) = [r for r in _finetune_records(finished_suite.work_dir) if r['key'] == b['key']]
    assert a['test'] == b['test'] and a['test_last'] == b['test_last']
    assert a['history'] == b['history']


def test_imagenet_row_refuses_a_mismatching_cache_file_and_records_the_weights_hash(tmp_path):
    from matssl_bench.models.weights import file_sha256

    torch_home = tmp_path / 'torch_home'
    folder = torch_home / 'hub' / 'checkpoints'
    folder.mkdir(parents=True)
    weights = torchvision.models.resnet18().state_dict()
    torch.save(weights, folder / 'resnet18-f37072fd.pth')  # not torchvision's content
    suite = write_tiny_suite(tmp_path, methods='SupervisedImageNet', epochs=1)
    env = {**os.environ, 'TORCH_HOME': str(torch_home)}
    out = run_cli('--suite', str(suite), '--work-dir', str(tmp_path / 'w'), env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    (record,) = _finetune_records(tmp_path / 'w')
    assert record['status'] == 'unavailable'
    assert 'resnet18-f37072fd.pth' in record['reason'] and 'expected f37072fd' in record['reason']

    mine = tmp_path / 'my_resnet18.pth'
    torch.save(weights, mine)
    suite.write_text(suite.read_text() + f'\nmethod_cfg.update(SupervisedImageNet=dict('
                     f'weights_path={str(mine)!r}))\n')
    out = run_cli('--suite', str(suite), '--work-dir', str(tmp_path / 'w2'), env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    (record,) = _finetune_records(tmp_path / 'w2')
    assert record['status'] == 'finished'
    assert record['encoder_init'] == 'imagenet'
    assert record['encoder_init_variant'] == 'imagenet (my_resnet18.pth)'
    assert record['weights_sha256'] == {'my_resnet18.pth': file_sha256(mine)}
    table = pd.read_csv(tmp_path / 'w2' / 'tables' / 'table4.csv')
    assert list(table['SSL init']) == ['imagenet (my_resnet18.pth)']
