"""`run_benchmark.py --job KEY` and `submit_slurm.py`: one job by its key; the suite as Slurm
arrays with dependencies (a fake sbatch records them); the smoke suite through submitit's
LocalExecutor gives the plain runner's tables."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from matssl_bench.commands import run_benchmark, submit
from matssl_bench.fileio.locks import JobLock

REPO = Path(__file__).resolve().parents[1]
# a smoke suite small enough for two end-to-end runs in a test
TINY = ['--suite', 'smoke', '--methods', 'MatSSL', 'RandomInit', '--cfg-options',
        'scale.pretrain.epochs=1', 'scale.finetune.epochs=1', 'finetune_sets.synthetic.train=4',
        'finetune_sets.synthetic.val=2', 'finetune_sets.synthetic.test=2',
        'pretrain_sets.synthetic.0.unlabeled=8']


def _plan(tmp_path, *extra):
    done = run_cli(*TINY, '--work-dir', str(tmp_path / 'w'), '--dry-run', '--format', 'json',
                   *extra)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    return {(e['stage'], e['method']): e for e in json.loads(out)['jobs']}


def test_job_exit_codes_without_training(tmp_path, capsys):
    plan = _plan(tmp_path)
    work = ['--work-dir', str(tmp_path / 'w')]
    matssl_ft = plan[('finetune', 'MatSSL')]['key']
    assert run_benchmark.main([*TINY, *work, '--job', matssl_ft]) == run_benchmark.EXIT_BLOCKED
    assert 'needs pretraining job' in capsys.readouterr().err
    imagenet = _plan(tmp_path, '--methods', 'SupervisedImageNet')[('finetune',
                                                                   'SupervisedImageNet')]
    code = run_benchmark.main([*TINY[:2], '--methods', 'SupervisedImageNet', *TINY[5:], *work,
                               '--job', imagenet['key'][:6]])
    assert code == run_benchmark.EXIT_UNAVAILABLE
    assert 'unavailable (ImageNet' in capsys.readouterr().out
    assert run_benchmark.main([*TINY, *work, '--job', 'nosuchkey']) == 2
    assert "--job nosuchkey: no planned job" in capsys.readouterr().err


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sbatch that keeps each script and answers with job ids 1001, 1002, ...; a no-op srun."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'sbatch').write_text(
        '#!/bin/sh\nd=$(dirname "$0")\nn=$(( $(cat "$d/next" 2>/dev/null || echo 1000) + 1 ))\n'
        'echo $n > "$d/next"\ncp "$1" "$d/sbatch-$n.sh"\necho "Submitted batch job $n"\n')
    (bin_dir / 'srun').write_text('#!/bin/sh\nexit 0\n')
    for tool in ('sbatch', 'srun'):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    return bin_dir


def test_slurm_arrays_depend_on_their_encoders(tmp_path, fake_slurm, capsys):
    code = submit.main(['--suite', 'smoke', '--work-dir', str(tmp_path / 'w'),
                        '--partition', 'gpu', '--slurm-option', 'account=p1',
                        '--setup', 'module load cuda', '--time-finetune', '90'])
    assert code == 0
    captured = capsys.readouterr()
    # MicroNet and ImageNet weights are missing here: listed, not submitted
    assert captured.err.count('left out unavailable finetune') == 2
    scripts = {int(p.stem.split('-')[1]): p.read_text() for p in fake_slurm.glob('sbatch-*.sh')}
    pretrain, *finetune, report = [scripts[k] for k in sorted(scripts)]
    assert '#SBATCH --array=0-2%' in pretrain and '--job-name=matssl-pretrain' in pretrain
    # the smoke suite's loaders have no workers: 2 cores; USR2 before the end for the requeue
    for script in (pretrain, *finetune):
        for line in ('--cpus-per-task=2', '--gpus-per-node=1', '--partition=gpu',
                     '--account=p1', '--signal=USR2@90', '--mem=64GB'):
            assert f'#SBATCH {line}\n' in script
        assert 'module load cuda\n' in script
    dependent = sorted(s.split('--dependency=afterok:')[1].split()[0] for s in finetune
                       if '--dependency' in s)
    assert dependent == ['1001_0', '1001_1', '1001_2']
    assert all('--kill-on-invalid-dep=yes' in s for s in finetune if '--dependency' in s)
    assert sum('--dependency' not in s for s in finetune) == 1  # RandomInit
    assert all('#SBATCH --time=90\n' in s for s in finetune)
    assert '#SBATCH --dependency=afterany:1002:1003:1004:1005\n' in report
    assert ('7 jobs submitted through submitit (slurm): 3 pretrain, 4 finetune, 1 report; '
            '2 left out; scheduler ids 1001 1002 1003 1004 1005 1006') in captured.out


def test_cached_jobs_are_not_submitted(tmp_path, fake_slurm, capsys):
    from matssl_bench.engine.records import RecordStore

    plan = _plan(tmp_path)
    key = plan[('finetune', 'RandomInit')]['key']
    RecordStore(tmp_path / 'w').put('finetune', key, dict(
        status='finished', key=key, stage='finetune', method_label='random init',
        encoder_init='random', pretrain_set=None, dataset='synthetic', seed=0,
        protocol='clean', test=dict(mIoU=50.0), history=[]))
    assert submit.main([*TINY, '--work-dir', str(tmp_path / 'w'), '--no-report']) == 0
    scripts = sorted(fake_slurm.glob('sbatch-*.sh'))
    assert len(scripts) == 2  # the MatSSL pretraining, then its fine-tuning
    assert '--dependency=afterok:1001\n' in scripts[1].read_text()  # one task: no array


def test_scheduler_options_that_are_set_per_job_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        submit.main(['--suite', 'smoke', '--job', 'abc'])
    assert exit_.value.code == 2
    assert '--job is not an option of submit_slurm.py' in capsys.readouterr().err


def test_checkpoint_frees_this_process_locks_and_requeues_the_same_task(tmp_path):
    locks = tmp_path / 'locks'
    mine = JobLock(locks / 'finetune-aaa.lock')
    assert mine.acquire()
    other = locks / 'pretrain-bbb.lock'
    other.write_text(json.dumps(dict(host='elsewhere', pid=1, token='t', since=0)) + '\n')
    task = submit.JobTask(['--job', 'aaa'], 'aaa', str(tmp_path))
    delayed = task.checkpoint()
    assert delayed.function is task
    assert not mine.path.exists() and other.exists()
    mine.release()  # no longer ours: leaves the other lock alone
    assert other.exists()


@pytest.mark.slow
def test_smoke_through_local_executor_writes_the_plain_runners_tables(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    plain, local = tmp_path / 'plain', tmp_path / 'local'
    subprocess.run([sys.executable, str(REPO / 'tools' / 'run_benchmark.py'), *TINY,
                    '--work-dir', str(plain)], check=True, env=env, cwd=tmp_path,
                   capture_output=True)
    done = subprocess.run([sys.executable, str(REPO / 'tools' / 'submit_slurm.py'),
                           '--executor', 'local', *TINY, '--work-dir', str(local)],
                          env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '3 jobs submitted through submitit (local): 1 pretrain, 2 finetune' in done.stdout
    # each task ran in its own process, under submitit
    assert len(list((local / 'slurm').glob('*/*_result.pkl'))) == 3
    for table in ('table4.csv', 'table4_per_class_iou.csv', 'table4_last_epoch.csv'):
        assert (local / 'tables' / table).read_text() == (plain / 'tables' / table).read_text()
    assert (plain / 'tables' / 'table4.csv').read_text().count('\n') == 3  # header + 2 rows
