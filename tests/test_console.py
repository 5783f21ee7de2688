"""Suite progress lines (engine/console.py) when stderr is not a terminal."""
from __future__ import annotations

from types import SimpleNamespace

from matssl_bench.engine import console


def _job(seed: int):
    return SimpleNamespace(stage='finetune', method='RandomInit', dataset='set', seed=seed,
                           pretrain_set=None, spec={}, est_cost=1.0)


def test_runs_of_cached_jobs_take_one_line_each(monkeypatch, capsys):
    monkeypatch.setattr(console, 'interactive', lambda: False)
    jobs = [_job(s) for s in range(6)]
    progress = console.SuiteProgress(jobs, 'demo')
    for job, status in zip(jobs, ['cached', 'cached', 'cached', 'finished', 'cached',
                                  'cached']):
        progress.started(job)
        progress.finished(job, status, 3.0)
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == '[1-3/6] 3 cached'
    assert lines[1].startswith('[4/6] ') and ': finished in 3 s' in lines[1]
    assert lines[2] == '[5-6/6] 2 cached' and len(lines) == 3
