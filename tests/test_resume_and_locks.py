"""A killed suite resumes to the same table; runners sharing a work dir do not collide."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import REPO, run_cli, write_tiny_suite
from matssl_bench.fileio.locks import JobLock


def _records(work):
    return {p.stem: json.loads(p.read_text()) for p in (work / 'records' / 'finetune').glob('*.json')}


@pytest.mark.slow
def test_killed_run_resumes_to_same_table(tmp_path, finished_suite):
    # the session's run of the same suite (same job keys) is the uninterrupted reference
    suite = write_tiny_suite(tmp_path, methods='MatSSL')
    work = tmp_path / 'killed'
    child = subprocess.Popen([sys.executable, str(REPO / 'tools' / 'run_benchmark.py'),
                              '--suite', str(suite), '--work-dir', str(work)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    resume_files = []
    while time.time() < deadline and child.poll() is None and not resume_files:
        resume_files = list((work / 'runs' / 'finetune').glob('*/resume.pth'))
        time.sleep(0.02)
    assert resume_files, 'the child finished or failed before its first fine-tuning epoch ended'
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (work / 'records' / 'finetune').exists() or not _records(work)
    assert list((work / 'locks').glob('*.lock')), 'a killed runner leaves its lock behind'

    resumed = run_cli('--suite', str(suite), '--work-dir', str(work))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (res,) = _records(work).values()
    ref = _records(finished_suite.work_dir)[res['key']]
    assert res['test'] == ref['test']
    assert [h['epoch'] for h in res['history']] == [1, 2]
    assert res['history'] == ref['history']
    columns = ['method', 'seeds', 'per_seed', 'mean', 'ci95_low', 'ci95_high']
    resumed = pd.read_csv(work / 'tables' / 'table4.csv', dtype=str)[columns]
    reference = pd.read_csv(finished_suite.work_dir / 'tables' / 'table4.csv', dtype=str)[columns]
    assert resumed.to_dict('records') == reference[reference['method'] == 'MatSSL'].to_dict('records')
    assert not list((work / 'locks').glob('*.lock'))


@pytest.mark.slow
def test_lock_is_exclusive_and_stale_locks_are_taken_over(tmp_path):
    path = tmp_path / 'job.lock'
    first = JobLock(path)
    assert first.acquire()
    other = subprocess.run([sys.executable, '-c',
                            'import sys; from matssl_bench.fileio.locks import JobLock; '
                            f'sys.exit(0 if JobLock({str(path)!r}).acquire() else 3)'])
    assert other.returncode == 3
    first.release()
    assert not path.exists()
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    path.write_text(f'{os.uname().nodename} {dead.pid}\n')
    assert JobLock(path).acquire()


@pytest.mark.slow
def test_two_runners_on_one_work_dir_share_the_jobs(tmp_path):
    suite = write_tiny_suite(tmp_path, methods='M[ao]*', epochs=1)  # MatSSL and MoCoV2
    cmd = [sys.executable, str(REPO / 'tools' / 'run_benchmark.py'), '--suite', str(suite),
           '--work-dir', str(tmp_path / 'work')]
    env = {**os.environ, 'MATSSL_POLL_SECONDS': '0.2'}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    records = _records(tmp_path / 'work')
    assert len(records) == 2 and all(r['status'] == 'finished' for r in records.values())
    # every job ran exactly once: the two runners' 'finished' counts add up to the 4 jobs
    finished = sum(int(o[0].split(' jobs: ')[1].split(' finished')[0].split()[-1])
                   if ' finished' in o[0] else 0 for o in outputs)
    assert finished == 4
