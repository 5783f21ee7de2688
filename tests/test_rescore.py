"""tools/rescore.py: the same models scored again under other evaluation settings."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO, run_cli, write_tiny_suite


def _rescore(*args):
    return subprocess.run([sys.executable, str(REPO / 'tools' / 'rescore.py'), *args],
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope='module')
def finished_work_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp('rescore')
    suite = write_tiny_suite(folder, methods='RandomInit', epochs=1)
    done = run_cli('--suite', str(suite), '--work-dir', str(folder / 'work'), '--seeds', '0', '1')
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / 'work'


def test_unchanged_settings_reproduce_the_records_and_a_new_stride_is_compared(
        finished_work_dir, tmp_path):
    same = _rescore('--work-dir', str(finished_work_dir), '--set', 'eval_stride=16',
                    '--out', str(tmp_path / 'a'))
    assert same.returncode == 0, same.stderr[-3000:]
    # eval_stride 16 is the default (half the 32 px patch): identical scores, zero difference
    row = pd.read_csv(tmp_path / 'a' / 'rescore.csv').iloc[0]
    assert row['runs'] == 2 and row['original_mIoU'] == pytest.approx(row['changed_mIoU'])
    # two seeds: the observed difference, no interval or verdict (minimum evidence: 3)
    assert row['delta'] == pytest.approx(0.0) and pd.isna(row['verdict'])
    assert pd.isna(row['delta_ci95_low']) and '2 seeds: fewer than 3' in row['note']

    wider = _rescore('--work-dir', str(finished_work_dir), '--set', 'eval_stride=32',
                     '--out', str(tmp_path / 'b'))
    assert wider.returncode == 0, wider.stderr[-3000:]
    row = pd.read_csv(tmp_path / 'b' / 'rescore.csv').iloc[0]
    # windows side by side: fewer windows, so no slower by much
    assert pd.notna(row['delta']) and pd.isna(row['delta_ci95_low'])
    assert row['original_s'] > 0 and row['changed_s'] > 0 and row['pairs'] == 2
    records = list((finished_work_dir / 'records' / 'finetune').glob('*.json'))
    assert len(records) == 2  # no record was added or changed


def test_training_settings_are_refused_by_name(finished_work_dir):
    refused = _rescore('--work-dir', str(finished_work_dir), '--set', 'epochs=3')
    assert refused.returncode == 2 and 'epochs' in refused.stderr
    assert 'without retraining' in refused.stderr
