"""Issue 15 trials on job locks: contenders started at the same instant run each job once.

The contenders are real processes. They load ``benchmarks/fileio/locks.py`` by path (it
needs only the standard library and filelock), so 4 of them start in well under a
second and each replays many simultaneous starts.
"""
import pytest
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, write_tiny_suite
from matssl_bench.fileio.locks import JobLock, break_locks

ROUNDS = 24
CONTENDERS = 4

CONTENDER = r'''
import importlib.util, os, sys, time
from pathlib import Path

spec = importlib.util.spec_from_file_location('locks', sys.argv[1])
locks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(locks)
work, start, gap, me = Path(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
for r in range(int(sys.argv[6])):
    while time.time() < start + r * gap:   # every contender starts round r at the same instant
        time.sleep(0.0005)
    record = work / 'records' / f'job{r}'
    if record.exists():
        continue
    lock = locks.JobLock(work / 'locks' / f'job{r}.lock')
    if not lock.acquire():
        continue
    try:
        holding = work / 'holding' / f'{r}-{me}'
        holding.touch()
        if not record.exists():           # the runner's second look, under the lock
            with open(work / f'ran{r}', 'a') as f:
                f.write(me + '\n')
            time.sleep(0.03)
            record.write_text('finished')
        others = [p.name for p in (work / 'holding').glob(f'{r}-*') if p != holding]
        if others:
            with open(work / f'overlap{r}', 'a') as f:
                f.write(f'{me} with {others}\n')
        holding.unlink()
    finally:
        lock.release()
'''


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, '-c', 'pass'])
    child.wait()
    return child.pid


@pytest.mark.slow
def test_simultaneous_contenders_run_each_job_exactly_once(tmp_path):
    work = tmp_path / 'work'
    for sub in ('records', 'locks', 'holding'):
        (work / sub).mkdir(parents=True)
    # every third round starts with a lock left by a dead process on this host (taken over once),
    # every third with an empty lock file of another writer that is still fresh (held: nobody runs)
    dead = _dead_pid()
    stale_rounds = set(range(1, ROUNDS, 3))
    empty_rounds = set(range(2, ROUNDS, 3))
    for r in stale_rounds:
        (work / 'locks' / f'job{r}.lock').write_text(
            json.dumps(dict(host=socket.gethostname(), pid=dead, token='dead', since=0)))
    for r in empty_rounds:
        (work / 'locks' / f'job{r}.lock').write_text('')
    script = tmp_path / 'contender.py'
    script.write_text(CONTENDER)
    start = time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, str(script), str(REPO / 'benchmarks' / 'fileio' / 'locks.py'),
                               str(work), str(start), '0.25', f'c{i}', str(ROUNDS)],
                              stderr=subprocess.PIPE, text=True) for i in range(CONTENDERS)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    for r in range(ROUNDS):
        ran = (work / f'ran{r}').read_text().split() if (work / f'ran{r}').exists() else []
        expected = 0 if r in empty_rounds else 1
        assert len(ran) == expected, f'round {r}: run by {ran}'
        assert not (work / f'overlap{r}').exists(), (work / f'overlap{r}').read_text()
    left = sorted(p.name for p in (work / 'locks').glob('*.lock'))
    assert left == sorted(f'job{r}.lock' for r in empty_rounds)  # every holder released its own


def test_empty_lock_is_held_until_it_expires_and_release_is_only_for_the_owner(tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv('MATSSL_LOCK_EXPIRY_S', '30')
    path = tmp_path / 'locks' / 'job.lock'
    path.parent.mkdir()
    path.write_text('')
    assert not JobLock(path).acquire() and JobLock(path).held_by_other()
    old = time.time() - 60
    os.utime(path, (old, old))
    mine = JobLock(path)
    assert mine.acquire(), 'an empty lock without heartbeat for longer than the expiry is stale'
    assert json.loads(path.read_text())['pid'] == os.getpid()
    # another runner took the lock over (e.g. after a long pause): our release leaves it alone
    path.write_text(json.dumps(dict(host='elsewhere', pid=1, token='other', since=time.time())))
    mine.release()
    assert json.loads(path.read_text())['token'] == 'other'


def test_heartbeat_keeps_a_lock_and_a_silent_one_expires(tmp_path, monkeypatch):
    monkeypatch.setenv('MATSSL_LOCK_EXPIRY_S', '1')
    path = tmp_path / 'locks' / 'job.lock'
    holder = JobLock(path)
    assert holder.acquire()
    time.sleep(2.0)  # twice the expiry: only the heartbeat keeps it fresh
    other = JobLock(path)
    assert not other.acquire()
    assert f'pid {os.getpid()} on {socket.gethostname()}' in other.describe()
    holder.release()
    assert not path.exists()
    # a live but unrelated process (a reused PID, or one on another host) whose lock went silent
    for host, pid in ((socket.gethostname(), 1), ('other-host', 12345)):
        path.write_text(json.dumps(dict(host=host, pid=pid, token='t', since=0)))
        assert not JobLock(path).acquire()   # fresh: held
        old = time.time() - 5
        os.utime(path, (old, old))
        taker = JobLock(path)
        assert taker.acquire()               # silent for longer than the expiry: taken over
        taker.release()


def test_break_locks_removes_every_lock(tmp_path):
    locks = tmp_path / 'locks'
    locks.mkdir()
    for name in ('a.lock', 'b.lock'):
        (locks / name).write_text(json.dumps(dict(host='h', pid=1, token='t', since=0)))
    assert [p.name for p in break_locks(locks)] == ['a.lock', 'b.lock']
    assert not list(locks.glob('*.lock'))


@pytest.mark.slow
def test_four_real_runners_started_together_run_the_job_once(tmp_path):
    suite = write_tiny_suite(tmp_path, methods='RandomInit', epochs=1)  # one fine-tuning job
    cmd = [sys.executable, str(REPO / 'tools' / 'run_benchmark.py'), '--suite', str(suite),
           '--work-dir', str(tmp_path / 'work')]
    env = {**os.environ, 'MATSSL_POLL_SECONDS': '0.2', 'OMP_NUM_THREADS': '1'}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(CONTENDERS)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    summaries = [next(line for line in o[0].splitlines() if ' jobs: ' in line) for o in outputs]
    assert sum('1 finished' in s for s in summaries) == 1, summaries
    assert sum('1 cached' in s for s in summaries) == CONTENDERS - 1, summaries
    records = list((tmp_path / 'work' / 'records' / 'finetune').glob('*.json'))
    assert len(records) == 1 and json.loads(records[0].read_text())['status'] == 'finished'
    assert not list((tmp_path / 'work' / 'locks').glob('*.lock'))
    run_dirs = list((tmp_path / 'work' / 'runs' / 'finetune').iterdir())
    assert len(run_dirs) == 1 and not list(run_dirs[0].glob('*.tmp'))
