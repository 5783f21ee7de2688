"""Issue 15 trials on the runner: bad records, checkpoints and weight files cost one row, not the suite."""
import json
import os
import pickle
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from conftest import run_cli, run_tool, write_tiny_suite
from matssl_bench.commands.run_benchmark import main
from matssl_bench.engine.hooks import RunStateHook, check_resume_checkpoint
from matssl_bench.suite.plan import expand, load_suite


def _lines_naming(text: str, path: Path) -> list[str]:
    return [line for line in text.splitlines() if str(path) in line]


@pytest.mark.slow
def test_corrupt_record_resume_checkpoint_and_weight_file_each_cost_one_line(tmp_path):
    suite_path = write_tiny_suite(tmp_path, methods='[RS]*', epochs=1)  # RandomInit, SupervisedImageNet
    suite = load_suite(str(suite_path))
    jobs = {(j.method, j.seed): j for j in expand(suite, seeds=[0, 1])}
    work = tmp_path / 'work'
    # a record holding only a status: formerly counted as cached, its row silently vanished
    bad_record = work / 'records' / 'finetune' / f'{jobs["RandomInit", 0].key}.json'
    bad_record.parent.mkdir(parents=True)
    bad_record.write_text('{"status": "finished"}')
    # a resume checkpoint of random bytes: formerly aborted the suite on every rerun
    bad_resume = work / 'runs' / 'finetune' / jobs['RandomInit', 1].key / 'resume.pth'
    bad_resume.parent.mkdir(parents=True)
    bad_resume.write_bytes(os.urandom(3000))
    # an ImageNet weight file that does not load: formerly aborted the suite (given by path:
    # under torchvision's name the hash check refuses it before any load is tried)
    weights = tmp_path / 'weights'
    weights.mkdir()
    bad_weights = weights / 'my-resnet18.pth'
    bad_weights.write_bytes(b'PK\x03\x04 truncated')
    with open(suite_path, 'a') as f:
        f.write(f"\nmethod_cfg['SupervisedImageNet'] = dict(weights_path={str(bad_weights)!r})\n")
    suite = load_suite(str(suite_path))
    jobs = {(j.method, j.seed): j for j in expand(suite, seeds=[0, 1])}
    env = {**os.environ, 'MATSSL_WEIGHTS': str(weights), 'TORCH_HOME': str(tmp_path / 'torch'),
           'OMP_NUM_THREADS': '1'}

    result = run_cli('--suite', str(suite_path), '--seeds', '0', '1', '--work-dir', str(work),
                     env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert 'Traceback' not in output
    record_lines = _lines_naming(result.stderr, bad_record)
    assert len(record_lines) == 1 and 'treated as not run' in record_lines[0]
    resume_lines = _lines_naming(result.stderr, bad_resume)
    assert len(resume_lines) == 1 and 'resume.pth.corrupt' in resume_lines[0]
    assert bad_resume.with_name('resume.pth.corrupt').is_file()
    # one terminal line per seed naming the run; the full reason in the run's log file
    weight_lines = [line for line in result.stderr.splitlines()
                    if re.match(r'finetune/SupervisedImageNet/synthetic/seed\d unavailable: ',
                                line)]
    assert len(weight_lines) == 2, weight_lines
    (log,) = (work / 'logs').glob('run-*.log')
    logged = [line for line in log.read_text().splitlines() if 'unavailable: ' in line]
    assert len(logged) == 2 and all(str(bad_weights) in line and 'unreadable weight file' in line
                                    for line in logged), logged

    for seed in (0, 1):
        record = json.loads((work / 'records' / 'finetune' /
                             f'{jobs["RandomInit", seed].key}.json').read_text())
        assert record['status'] == 'finished' and 0 <= record['test']['mIoU'] <= 100
    table = pd.read_csv(work / 'tables' / 'table4.csv').set_index('method')
    assert table.loc['random init', 'seeds'] == '0,1'
    assert str(bad_weights) in table.loc['supervised ImageNet', 'note']

    # a truncated record: make_tables skips it with one warning line naming it
    truncated = work / 'records' / 'finetune' / 'truncated.json'
    truncated.write_text(bad_record.read_text()[:40])
    tables = run_tool('make_tables.py', '--work-dir', work, '--out', tmp_path / 'tables')
    assert tables.returncode == 0, tables.stderr
    lines = _lines_naming(tables.stderr, truncated)
    assert len(lines) == 1 and 'skipped' in lines[0] and 'Traceback' not in tables.stderr
    assert pd.read_csv(tmp_path / 'tables' / 'table4.csv').set_index('method').loc[
        'random init', 'seeds'] == '0,1'


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


@pytest.mark.parametrize('content', ['truncated', 'code'])
def test_resume_checkpoint_is_loaded_weights_only(tmp_path, content):
    path = tmp_path / 'resume.pth'
    marker = tmp_path / 'marker'
    if content == 'truncated':
        torch.save(dict(state_dict={'w': torch.ones(1000)}, meta={}), path)
        path.write_bytes(path.read_bytes()[:500])
    else:
        torch.save(dict(state_dict={'w': torch.ones(3)}, meta=dict(evil=_Payload(marker))), path,
                   pickle_module=pickle)
    assert check_resume_checkpoint(path) is None
    assert not path.exists() and path.with_name('resume.pth.corrupt').is_file()
    assert not marker.exists()
    torch.save(dict(state_dict={'w': torch.ones(3)}, meta={}), path)
    assert check_resume_checkpoint(path) == f'weights-only://{path}'


def test_failed_resume_save_leaves_no_temporary_file(tmp_path):
    hook = RunStateHook(str(tmp_path))

    def full_disk(out_dir, filename, **kwargs):
        Path(out_dir, filename).write_bytes(b'x' * 1000)  # half written, then the disk is full
        raise OSError(28, 'No space left on device')

    runner = SimpleNamespace(save_checkpoint=full_disk, iter=3)
    with pytest.raises(OSError, match=f'no space left writing {tmp_path / "resume.pth"}'):
        hook._save(runner, completed_epochs=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('args,message', [
    (['--methods', 'NoSuch*'], "--methods 'NoSuch*' matches nothing; valid: "),
    (['--datasets', 'EBC-*'], "--datasets 'EBC-*' matches nothing; valid: synthetic"),
    (['--rows', '7'], '--rows: 7 is not a row of suite tiny'),
    (['--seeds', '0', '0'], '--seeds: 0 given more than once'),
    (['--seeds', '-1'], '--seeds: -1 is out of range'),
    (['--format', 'json'], '--format json only applies to --dry-run'),
])
def test_bad_arguments_give_one_error_line(tmp_path, capsys, args, message):
    suite = write_tiny_suite(tmp_path, methods='RandomInit')
    assert main(['--suite', str(suite), '--work-dir', str(tmp_path / 'work'), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f'error: {message}'), err
    assert not (tmp_path / 'work').exists()


def test_unwritable_work_dir_and_ctrl_c_give_one_error_line(tmp_path, capsys, monkeypatch):
    suite = write_tiny_suite(tmp_path, methods='RandomInit')
    blocker = tmp_path / 'file'
    blocker.write_text('')
    assert main(['--suite', str(suite), '--work-dir', str(blocker / 'work')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f'error: {blocker / "work"}: work dir is not writable')

    from matssl_bench.engine.runner import SuiteRunner

    def interrupted(self, jobs):
        raise KeyboardInterrupt

    monkeypatch.setattr(SuiteRunner, 'run', interrupted)
    assert main(['--suite', str(suite), '--work-dir', str(tmp_path / 'work')]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    # the run's first line names its log file; the interruption is one line after it
    assert err[-1] == 'error: interrupted; rerun the same command to resume' and len(err) <= 2


def test_make_tables_refuses_a_dangling_out_link(tmp_path):
    (tmp_path / 'work' / 'records').mkdir(parents=True)
    out = tmp_path / 'out'
    out.symlink_to(tmp_path / 'gone')
    result = run_tool('make_tables.py', '--work-dir', tmp_path / 'work', '--out', out)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f'error: {out}: --out is a dangling link or not a folder']
