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
    cwd = tmp_path / 'cwd'
    cwd.mkdir()
    # torchrun's module: the virtual environment may have no torchrun script
    out = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(REPO / 'tools' / 'run_benchmark.py'),
                          '--suite', str(suite), '--work-dir', str(work), '--launcher', 'pytorch'],
                         capture_output=True, text=True, timeout=600, cwd=cwd,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert out.returncode == 0, out.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (work / 'records').glob('*/*.json')]
    assert len(records) == 4
    assert all(r['status'] == 'finished' and r['world_size'] == 2 for r in records)
    assert all(r['deterministic'] is True and r['precision'] == 'fp32' for r in records
               if r['stage'] == 'finetune')
    assert out.stdout.count('4 jobs: 4 finished') == 1  # only rank 0 reports
    # validation results met inside the run folders, and the folders were cleared
    assert not list(cwd.iterdir()), list(cwd.iterdir())
    assert not list(work.rglob('.dist_test'))
    assert '2 processes' in (work / 'tables' / 'table4.csv').read_text()


@pytest.mark.slow
def test_evaluation_is_sharded_and_equals_one_process(tmp_path):
    """Test, patch-grid and morphology scoring split over two processes: each scores its
    share, and the gathered per-image areas equal one process scoring all."""
    sys.path.insert(0, str(REPO / 'tests'))
    import torch
    from _eval_shard_worker import SCALE, evaluate_all
    from matssl_bench.evaluation.segmenter import build_segmenter

    torch.manual_seed(0)
    weights = tmp_path / 'weights.pth'
    torch.save(dict(state_dict=build_segmenter('resnet18', 4, SCALE).state_dict(), epoch=1),
               weights)
    result_file = tmp_path / 'two' / 'result.json'
    result_file.parent.mkdir()
    out = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                          str(REPO / 'tests' / '_eval_shard_worker.py'), str(weights),
                          str(result_file)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert out.returncode == 0, out.stderr[-3000:]
    two = json.loads(result_file.read_text())
    one = json.loads(json.dumps(evaluate_all(weights, tmp_path / 'previews.npz'), default=float))
    assert two['whole_images_per_rank'] == [3, 2]  # 5 test images (clean scoring): 3 + 2
    for key in ('clean', 'published', 'morphology', 'clean_miou'):
        assert two[key] == one[key], key


def test_multi_process_fine_tuning_without_sync_bn_needs_a_minimum_batch(monkeypatch):
    import pytest
    from matssl_bench.engine import stages
    from matssl_bench.errors import ConfigError

    monkeypatch.setattr(stages, 'get_dist_info', lambda: (0, 8))
    with pytest.raises(ConfigError, match='8 processes gives 1 patch'):
        stages.check_rank_batch(1, sync_bn=False)
    stages.check_rank_batch(1, sync_bn=True)   # SyncBN normalises over the global batch
    stages.check_rank_batch(stages.MIN_RANK_BATCH, sync_bn=False)


@pytest.mark.slow
def test_two_process_nt_xent_equals_one_process_on_the_global_batch(tmp_path):
    """MatSSL's NT-Xent gathers embeddings from every rank: loss and gradients of a run
    split over two processes equal those of one process on the same global batch."""
    out_file = tmp_path / 'result.json'
    out = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(REPO / 'tests' / '_nt_xent_worker.py'),
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
