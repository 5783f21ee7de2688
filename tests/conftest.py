"""Shared fixtures: the shared real data, tiny suite configs and a CLI runner."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import matssl_bench  # noqa: F401  (applies the compatibility layer)
from matssl_bench.plugins import load_builtin_plugins

load_builtin_plugins()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get('MATSSL_SHARED_DATA', REPO.parent / 'shared' / 'data'))

# A suite small enough to train every method in seconds on 2 CPU cores.
TINY_SUITE = '''
description = 'tiny test suite'
table = 'table4'
protocol = 'clean'
seeds = [0]
backbone = 'resnet18'
ssl_init = 'random'
method_cfg = dict(
    MatSSL=dict(hidden_dim=64, out_dim=32),
    MoCoV2=dict(queue_len=64, hidden_dim=64, feat_dim=32),
    DenseCL=dict(queue_len=64, hidden_dim=64, feat_dim=32),
)
pretrain_sets = dict(synthetic=[dict(type='SyntheticMicrographs', size=64, unlabeled=6,
                                      train=4, val=2, test=2)])
finetune_sets = dict(synthetic=dict(type='SyntheticMicrographs', size=64, train=4, val=2, test=2))
rows = [dict(finetune='synthetic', method={methods!r}, pretrain='synthetic')]
scale = dict(
    pretrain=dict(epochs=1, batch_size=8, patch_size=32, crop_size=32, overlap=0.0, num_workers=0),
    finetune=dict(epochs={epochs}, batch_size=8, patch_size=32, lr=1e-3,
                  decoder_channels=(16, 16, 8, 8, 8), num_workers=0),
)
'''


def write_tiny_suite(folder: Path, methods: str = '*', epochs: int = 2) -> Path:
    path = Path(folder) / 'tiny.py'
    path.write_text(textwrap.dedent(TINY_SUITE.format(methods=methods, epochs=epochs)))
    return path


def run_cli(*args: str, timeout: int = 900, cwd: Path | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run tools/run_benchmark.py in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, str(REPO / 'tools' / 'run_benchmark.py'), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO,
                          env=env)


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """Tiny in-process models: on 2 (possibly shared) cores extra OpenMP threads only wait."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_suite(tmp_path) -> Path:
    return write_tiny_suite(tmp_path)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f'real data folder {SHARED_DATA} is absent (set MATSSL_SHARED_DATA)')
    return SHARED_DATA
