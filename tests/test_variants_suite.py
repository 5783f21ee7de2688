"""One tiny variants suite end to end through the CLI: every variant table from records."""
import json
import math
import textwrap

import pandas as pd
import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow  # trains suites or starts processes

TINY_VARIANTS = '''
description = 'tiny variants suite'
protocol = 'clean'
seeds = [0]
backbone = 'resnet18'
_synthetic = dict(type='SyntheticMicrographs', size=64, train=4, val=2, test=2)
pretrain_sets = {}
finetune_sets = {'A': _synthetic, 'B': dict(_synthetic, material='B')}
morphology = dict(A=['pore', 'second phase'])
rows = [
    dict(finetune='A', method='RandomInit', transfer=True,
         label_efficiency=dict(n_labelled=[1, 'all'], draws=1)),
    dict(finetune='B', method='RandomInit', transfer=True),
    dict(finetune='A', method='RandomInit', scale=dict(encoder_mode='frozen-decoder')),
    dict(finetune='A', method='RandomInit', scale=dict(encoder_mode='linear-probe')),
    dict(finetune='A', method='RandomInit', trick='baseline'),
    dict(finetune='A', method='RandomInit', trick='stacked',
         scale=dict(augment='strong', balanced_crops=True, downscale=0.5, tta='flips',
                    encoder_lr_mult=0.1)),
]
scale = dict(pretrain={}, finetune=dict(epochs=1, batch_size=8, patch_size=32, lr=1e-3,
                                        decoder_channels=(16, 16, 8, 8, 8), num_workers=0))
'''


def test_tiny_variants_suite_writes_every_variant_table(tmp_path):
    suite = tmp_path / 'tiny_variants.py'
    suite.write_text(textwrap.dedent(TINY_VARIANTS))
    work = tmp_path / 'work'
    out = run_cli('--suite', str(suite), '--work-dir', str(work))
    assert out.returncode == 0, out.stderr[-3000:]
    assert '7 jobs: 7 finished' in out.stdout
    tables = work / 'tables'

    labels = pd.read_csv(tables / 'label_efficiency.csv')
    assert {'method', 'dataset', 'n_labelled', 'draw', 'mIoU'} <= set(labels.columns)
    assert sorted(labels['n_labelled']) == [1, 4] and set(labels['dataset']) == {'A'}
    assert (tables / 'label_efficiency.png').stat().st_size > 0

    frozen = pd.read_csv(tables / 'frozen.csv')
    a = frozen[frozen['dataset'] == 'A']
    assert sorted(a['encoder mode']) == ['frozen-decoder', 'full', 'linear-probe']
    assert set(a['protocol']) == {'clean'}  # published/clean, as everywhere
    assert a['mIoU'].between(0, 100).all()

    transfer = pd.read_csv(tables / 'transfer.csv')
    assert {'method', 'source', 'target', 'mIoU', 'rdt'} <= set(transfer.columns)
    assert set(zip(transfer['source'], transfer['target'])) == {('A', 'A'), ('A', 'B'),
                                                                ('B', 'A'), ('B', 'B')}
    assert transfer['seeds'].astype(str).eq('0').all()  # one run per cell
    own = transfer.set_index(['source', 'target'])
    for src, tgt in (('A', 'B'), ('B', 'A')):
        expected = (own.loc[(src, tgt), 'mIoU'] - own.loc[(src, src), 'mIoU']) \
            / own.loc[(src, src), 'mIoU']
        assert math.isclose(own.loc[(src, tgt), 'rdt'], expected, rel_tol=1e-3, abs_tol=1e-4)
    assert own.loc[('A', 'A'), 'rdt'] == 0 and own.loc[('B', 'B'), 'rdt'] == 0
    assert (tables / 'transfer.png').stat().st_size > 0

    tricks = pd.read_csv(tables / 'tricks.csv')
    assert list(tricks['trick']) == ['baseline', 'stacked']
    assert tricks.loc[0, 'vs baseline'] == 0

    morphology = pd.read_csv(tables / 'per_class_morphology.csv')
    assert set(morphology['class']) == {'pore', 'second phase'}
    assert (morphology['regions (truth)'] > 0).any()
    by_row = morphology.set_index(['encoder mode', 'trick', 'class'])
    assert (by_row.loc[('full', 'baseline', 'pore')] == by_row.loc[('full', '-', 'pore')]).all()

    table4 = pd.read_csv(tables / 'table4.csv')  # variant runs stay out of Table 4
    assert sorted(table4['fine-tune set']) == ['A', 'B']
    records = [json.loads(p.read_text()) for p in (work / 'records' / 'finetune').glob('*.json')]
    stacked = next(r for r in records if r['row'].get('trick') == 'stacked')
    assert stacked['config']['scale']['augment'] == 'strong'
