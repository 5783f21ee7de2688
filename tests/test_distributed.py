"""One run across two processes through torchrun and mmengine's DDP (gloo on CPU)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, write_tiny_suite


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    suite = write_tiny_suite(tmp_path, methods='M[ao]*', epochs=1)  # MatSSL and MoCoV2 (batch shuffle)
    work = tmp_path / 'work'
    # torchrun's module: the virtual environment may have no torchrun script
    out = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', str(REPO / 'tools' / 'run_benchmark.py'),
                          '--suite', str(suite), '--work-dir', str(work), '--launcher', 'pytorch'],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert out.returncode == 0, out.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (work / 'records').glob('*/*.json')]
    assert len(records) == 4
    assert all(r['status'] == 'finished' and r['world_size'] == 2 for r in records)
    assert out.stdout.count('4 jobs: 4 finished') == 1  # only rank 0 reports


@pytest.mark.slow
def test_two_process_nt_xent_equals_one_process_on_the_global_batch(tmp_path):
    """MatSSL's NT-Xent gathers embeddings from every rank: loss and gradients of a run
    split over two processes equal those of one process on the same global batch."""
    out_file = tmp_path / 'result.json'
    out = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', str(REPO / 'tests' / '_nt_xent_worker.py'),
                          str(out_file)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out_file.read_text())
    assert abs(result['distributed'] - result['reference']) < 1e-5 * abs(result['reference'])
    assert abs(result['local_only'] - result['reference']) > 1e-3  # the gather matters
    assert result['max_grad_diff'] < 1e-5 * max(result['grad_scale'], 1.0)


def test_sync_bn_is_asked_for_or_refused_clearly(monkeypatch):
    import pytest
    import torch
    from matssl_bench.engine import stages

    monkeypatch.setattr(stages, 'get_dist_info', lambda: (0, 2))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert stages.uses_sync_bn({}, 'pytorch') is False          # auto: no CUDA, no SyncBN
    assert stages.uses_sync_bn({'sync_bn': True}, 'none') is False
    with pytest.raises(ValueError, match='sync_bn=True needs CUDA'):
        stages.uses_sync_bn({'sync_bn': True}, 'pytorch')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert stages.uses_sync_bn({}, 'pytorch') is True            # auto: on under a launcher
    assert stages.uses_sync_bn({'sync_bn': False}, 'pytorch') is False
