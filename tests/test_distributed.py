"""One run across two processes through torchrun and mmengine's DDP (gloo on CPU)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, write_tiny_suite


def test_torchrun_two_processes(tmp_path):
    torchrun = Path(sys.executable).with_name('torchrun')
    suite = write_tiny_suite(tmp_path, methods='M[ao]*', epochs=1)  # MatSSL and MoCoV2 (batch shuffle)
    work = tmp_path / 'work'
    out = subprocess.run([str(torchrun) if torchrun.exists() else shutil.which('torchrun'),
                          '--nproc_per_node', '2', str(REPO / 'tools' / 'run_benchmark.py'),
                          '--suite', str(suite), '--work-dir', str(work), '--launcher', 'pytorch'],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert out.returncode == 0, out.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (work / 'records').glob('*/*.json')]
    assert len(records) == 4
    assert all(r['status'] == 'finished' and r['world_size'] == 2 for r in records)
    assert out.stdout.count('4 jobs: 4 finished') == 1  # only rank 0 reports
