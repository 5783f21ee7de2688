"""tools/rescore.py: the same models scored again under other evaluation settings."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import run_tool


def _rescore(*args):
    return run_tool('rescore.py', *args)


def _records(work_dir):
    return {p.name: p.read_bytes() for p in (work_dir / 'records').rglob('*.json')}


@pytest.mark.slow
def test_unchanged_settings_reproduce_the_records_and_a_new_stride_is_compared(
        finished_suite, tmp_path):
    finished_work_dir = finished_suite.work_dir  # read only: the results go to --out
    records = _records(finished_work_dir)
    same = _rescore('--work-dir', str(finished_work_dir), '--set', 'eval_stride=16',
                    '--out', str(tmp_path / 'a'))
    assert same.returncode == 0, same.stderr[-3000:]
    # eval_stride 16 is the default (half the 32 px patch): identical scores, zero difference
    table = pd.read_csv(tmp_path / 'a' / 'rescore.csv').set_index('method')
    assert sorted(table.index) == ['DenseCL', 'MatSSL', 'MoCoV2', 'random init']
    row = table.loc['random init']  # seeds 0 and 1
    assert row['runs'] == 2 and row['original_mIoU'] == pytest.approx(row['changed_mIoU'])
    # two seeds: the observed difference, no interval or verdict (minimum evidence: 3)
    assert row['delta'] == pytest.approx(0.0) and pd.isna(row['verdict'])
    assert pd.isna(row['delta_ci95_low']) and '2 seeds: fewer than 3' in row['note']

    wider = _rescore('--work-dir', str(finished_work_dir), '--set', 'eval_stride=32',
                     '--out', str(tmp_path / 'b'))
    assert wider.returncode == 0, wider.stderr[-3000:]
    row = pd.read_csv(tmp_path / 'b' / 'rescore.csv').set_index('method').loc['random init']
    # windows side by side: fewer windows, so no slower by much; two seeds: no interval
    assert pd.notna(row['delta']) and pd.isna(row['delta_ci95_low'])
    assert row['original_s'] > 0 and row['changed_s'] > 0 and row['pairs'] == 2
    assert _records(finished_work_dir) == records  # no record was added or changed


def test_training_settings_are_refused_by_name(tmp_path):
    refused = _rescore('--work-dir', str(tmp_path), '--set', 'epochs=3')
    assert refused.returncode == 2 and 'epochs' in refused.stderr
    assert 'without retraining' in refused.stderr
