"""Scheduling details that cost time, not results: runners defer jobs whose pretraining another
runner holds, resume checkpoints at an interval, and SSL seeds shared across fine-tuning seeds."""
from __future__ import annotations

from pathlib import Path

import pytest

from matssl_bench.engine.hooks import RESUME_EVERY_ENV, RunStateHook
from matssl_bench.suite.plan import Job, expand, load_suite
from matssl_bench.engine.runner import Outcome, SuiteRunner


def _job(key: str, stage: str = 'finetune', depends_on=None) -> Job:
    return Job(stage, key, 'MatSSL', 'P', None if stage == 'pretrain' else 'A', 0, {},
               depends_on=depends_on)


def test_a_runner_does_independent_jobs_before_waiting_for_another_runners_pretraining():
    order = []

    class Recording(SuiteRunner):
        def __init__(self):  # only what run() reads
            self.suite, self.rank, self.world_size = type('S', (), {'suite_name': 's'})(), 0, 1

        def _run_one(self, job, outcomes):
            order.append(job.key)
            if job.key == 'ssl' and order.count('ssl') == 1:
                return Outcome(job, 'running-elsewhere')
            return Outcome(job, 'finished')

        def _wait_for(self, job, outcomes):
            order.append(f'wait-{job.key}')
            return Outcome(job, 'finished')

    jobs = [_job('ssl', 'pretrain'), _job('ft-ssl', depends_on='ssl'), _job('ft-plain')]
    outcomes = Recording().run(jobs)
    assert order.index('ft-plain') < order.index('ft-ssl')  # not stuck behind the pretraining
    assert [o.job.key for o in outcomes] == ['ssl', 'ft-ssl', 'ft-plain']  # plan order kept


class _Loop:
    max_epochs = 5


class _Runner:
    train_loop = _Loop()
    iter = 0

    def __init__(self):
        self.saved = []

    def save_checkpoint(self, out_dir, name, **kwargs):
        self.saved.append(kwargs['meta']['epoch'])
        Path(out_dir, name).write_bytes(b'checkpoint')


@pytest.mark.parametrize('every, saved', [(None, [1, 2, 3, 4, 5]), ('3600', [5])])
def test_resume_checkpoints_follow_the_interval_and_the_last_epoch_always_saves(
        tmp_path, monkeypatch, every, saved):
    if every is None:
        monkeypatch.delenv(RESUME_EVERY_ENV, raising=False)
    else:
        monkeypatch.setenv(RESUME_EVERY_ENV, every)
    hook, runner = RunStateHook(str(tmp_path)), _Runner()
    for epoch in range(1, 6):
        hook._save(runner, completed_epochs=epoch)
    assert runner.saved == saved and (tmp_path / 'resume.pth').exists()


def test_a_bad_resume_interval_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(RESUME_EVERY_ENV, 'soon')
    with pytest.raises(ValueError, match=f'{RESUME_EVERY_ENV}.*soon'):
        RunStateHook(str(tmp_path))


def test_pretrain_seeds_share_one_encoder_and_row_seeds_narrow_a_row(monkeypatch, shared_data):
    monkeypatch.setenv('MATSSL_DATA', str(shared_data))
    suite = load_suite('cpu-protocols')
    suite.pretrain_seeds = [0]
    jobs = expand(suite)
    pretraining = [j for j in jobs if j.stage == 'pretrain']
    assert [j.seed for j in pretraining] == [0]  # pretrain_seeds = [0]
    matssl = [j for j in jobs if j.stage == 'finetune' and j.method == 'MatSSL']
    assert {j.depends_on for j in matssl} == {pretraining[0].key}
    label_runs = [j for j in matssl if 'labels' in j.spec]
    assert {j.seed for j in label_runs} == {0}  # the label rows' own seeds
    assert {j.seed for j in matssl if 'labels' not in j.spec} == {0, 1, 2}
    # --seeds overrides the rows' seeds too
    assert {j.seed for j in expand(suite, seeds=[5]) if j.stage == 'finetune'} == {5}
    # without pretrain_seeds every fine-tuning seed pretrains its own encoder
    suite.pretrain_seeds = None
    assert sorted(j.seed for j in expand(suite) if j.stage == 'pretrain') == [0, 1, 2]
