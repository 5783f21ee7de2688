"""Work dirs a team can share: files honour the umask, finished jobs keep no resume
checkpoint, runs log to mmengine's visualizer backends, and runs stay quiet."""
import importlib.util
import json
import os
import stat

import pytest

from conftest import run_cli, write_tiny_suite
from matssl_bench.suite.plan import expand, load_suite
from matssl_bench.fileio.atomic import atomic_write, write_json_atomic
from matssl_bench.engine.runner import SuiteRunner


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_honour_the_umask(tmp_path):
    for mask, expected in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        old = os.umask(mask)
        try:
            path = tmp_path / f'record-{mask:o}.json'
            write_json_atomic(path, dict(a=1))
            atomic_write(tmp_path / f'sub-{mask:o}' / 'x.bin', lambda tmp: tmp.write_bytes(b'x'))
        finally:
            os.umask(old)
        assert _mode(path) == expected
        assert _mode(tmp_path / f'sub-{mask:o}' / 'x.bin') == expected


@pytest.mark.slow
def test_tiny_run_is_shareable_small_and_logged_to_tensorboard(tmp_path, umask_022):
    suite = write_tiny_suite(tmp_path, methods='MatSSL', epochs=1)
    work = tmp_path / 'work'
    out = run_cli('--suite', str(suite), '--work-dir', str(work), '--vis-backend', 'tensorboard',
                  '--threads', '1')
    assert out.returncode == 0, out.stderr[-3000:]

    assert not list(work.rglob('resume.pth'))  # finished jobs keep no resume checkpoint
    assert list(work.glob('runs/finetune/*/best.pth')) and list(work.glob('encoders/*.pth'))
    shared = [*work.glob('records/*/*.json'), *work.glob('tables/*'), *work.glob('encoders/*')]
    assert len(shared) > 5
    for path in shared:
        assert _mode(path) & 0o044 == 0o044, (path, oct(_mode(path)))
    # live logs under run names <stage>/<method>/<set>/seed<k>, not hashes
    for run in ('pretrain/MatSSL/synthetic/seed0', 'finetune/MatSSL/synthetic@synthetic/seed0'):
        assert list(work.glob(f'tensorboard/{run}/events.out.tfevents.*')), run
    scalars = [json.loads(line) for p in work.glob('runs/finetune/*/*/vis_data/scalars.json')
               for line in p.read_text().splitlines()]
    assert any('train/loss' in s for s in scalars)
    assert [s['step'] for s in scalars if 'val/mIoU' in s] == [1]  # validation per epoch
    assert any('test/mIoU' in s for s in scalars)  # the final test score, logged once
    logs = '\n'.join(p.read_text() for p in work.glob('runs/*/*/*/*.log'))
    assert logs and 'Failed to search registry' not in logs


def test_keep_checkpoints_keeps_resume_files(tmp_path):
    suite = load_suite(str(write_tiny_suite(tmp_path, methods='RandomInit')))
    (job,) = expand(suite)
    for keep in (False, True):
        runner = SuiteRunner(suite, tmp_path / f'work-{keep}', keep_checkpoints=keep)
        resume = runner.run_dir(job) / 'resume.pth'
        resume.parent.mkdir(parents=True)
        resume.write_bytes(b'state')
        runner._drop_resume_checkpoint(job)
        assert resume.exists() == keep


@pytest.mark.skipif(importlib.util.find_spec('wandb') is not None, reason='wandb is installed')
def test_missing_vis_backend_package_is_one_clear_error(tmp_path):
    suite = write_tiny_suite(tmp_path, methods='RandomInit', epochs=1)
    out = run_cli('--suite', str(suite), '--work-dir', str(tmp_path / 'w'), '--vis-backend', 'wandb')
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "error: --vis-backend wandb needs the Python package 'wandb': pip install wandb")
    assert not (tmp_path / 'w' / 'records').exists()


def test_prepared_copies_are_readable_by_the_group(tmp_path, umask_022):
    from _data_fakes import fake_metaldam
    from matssl_bench.data.prepare import prepare

    src = fake_metaldam(tmp_path / 'src', labeled=6, unlabeled=1)
    prepare('MetalDAM', src, tmp_path / 'prep')
    paths = [tmp_path / 'prep', *(tmp_path / 'prep').rglob('*')]
    assert len(paths) > 10
    for path in paths:
        wanted = 0o755 if path.is_dir() else 0o644
        assert _mode(path) == wanted, (path, oct(_mode(path)))


def test_threads_set_torch_threads_and_loader_workers(tmp_path):
    import torch

    from matssl_bench.suite.runtime import current_runtime

    suite = load_suite(str(write_tiny_suite(tmp_path, methods='RandomInit')))
    (job,) = expand(suite)
    (threaded,) = expand(suite, runtime=current_runtime(threads=2))
    before = torch.get_num_threads()
    try:
        runner = SuiteRunner(suite, tmp_path / 'work', threads=2)
        assert torch.get_num_threads() == 2
        assert runner._scale(threaded.spec['scale'])['num_workers'] == 2
        # threads and loader workers change results: both are in the job's key
        assert threaded.spec['scale']['num_workers'] == 2 and job.spec['scale']['num_workers'] == 0
        assert threaded.spec['runtime']['threads'] == 2 and threaded.key != job.key
    finally:
        torch.set_num_threads(before)
    assert SuiteRunner(suite, tmp_path / 'w2')._scale(job.spec['scale']) is job.spec['scale']
