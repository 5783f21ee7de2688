"""The paired bf16-vs-fp32 fine-tuning comparison (benchmarks/perf/precision_quality.py)."""
from __future__ import annotations

import copy
import json

import pytest

from matssl_bench.perf import precision_quality
from matssl_bench.report.build import export_records, load_records


def _as_bf16(record: dict, lost_pixels: int) -> dict:
    """The same run as if fine-tuned under bf16: half the time, ``lost_pixels`` fewer correct
    pixels of class 0 on the first test image."""
    twin = copy.deepcopy(record)
    twin['precision'] = 'bf16'
    twin['config']['runtime']['precision'] = 'bf16'
    twin['wall_time_s'] = record['wall_time_s'] / 2
    first = twin['test']['images'][0]
    first['intersection'][0] = max(0, first['intersection'][0] - lost_pixels)
    twin['test']['mIoU'] = record['test']['mIoU'] - 1.0
    return twin


def test_pairs_runs_by_set_method_and_seed(finished_suite, tmp_path):
    fp32 = [r for r in load_records(finished_suite.work_dir)
            if r['stage'] == 'finetune' and r['method'] == 'RandomInit']
    assert sorted(r['seed'] for r in fp32) == [0, 1]
    bf16_dir = tmp_path / 'bf16'
    bf16_dir.mkdir()
    export_records([_as_bf16(r, 5) for r in fp32], bf16_dir)

    out = tmp_path / 'out' / 'precision_quality'
    assert precision_quality.main(['--fp32', str(finished_suite.work_dir), '--bf16', str(bf16_dir),
                                   '--out', str(out)]) == 0
    summary = json.loads(out.with_suffix('.json').read_text())
    [row] = summary['rows']
    assert (row['method'], row['seeds']) == (fp32[0]['method_label'], '0,1')
    assert row['bf16_mIoU'] == pytest.approx(row['fp32_mIoU'] - 1.0)
    assert row['time_ratio'] == pytest.approx(2.0)
    # two seeds: below the minimum evidence, so a difference but no interval or verdict
    assert row['delta'] <= 0 and row['verdict'] == '' and '2 seeds' in row['note']
    assert summary['resolved_loss'] is False and summary['devices']
    assert out.with_suffix('.md').read_text().count(fp32[0]['method_label']) == 1


def test_folders_without_shared_runs_are_refused(finished_suite, tmp_path):
    with pytest.raises(SystemExit, match='both in fp32 and in bf16'):
        precision_quality.main(['--fp32', str(finished_suite.work_dir), '--bf16',
                                str(finished_suite.work_dir), '--out', str(tmp_path / 'x')])
