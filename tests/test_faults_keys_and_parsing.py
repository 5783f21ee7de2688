"""Issue 24 trials: job keys that cover what changes a result, bounded and typed parsing of
every file the suite reads, and one line for each expected failure (real files, real
processes)."""
import errno
import json
import os
import pickle
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, run_cli, write_tiny_suite
from _data_fakes import labels, save, texture
from matssl_bench.commands.run_benchmark import main
from matssl_bench.engine.records import RecordStore
from matssl_bench.engine.runner import SuiteRunner
from matssl_bench.errors import ConfigError, DataError, DiskFullError, UnreadableFileError
from matssl_bench.suite.plan import expand, load_suite
from matssl_bench.suite.runtime import current_runtime

TOOLS = REPO / 'tools'
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}


def _tool_main(name: str):
    """``main`` of ``tools/<name>``, to call in this process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f'tool_{name[:-3]}', TOOLS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _tool(name: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOLS / name), *args], capture_output=True,
                          text=True, timeout=timeout, env=ENV)


def _lines_naming(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if name in line]


# -- job keys ----------------------------------------------------------------------------

def _run_tiny(folder: Path, threads=None, cfg=None, keep_checkpoints=False,
              vis_backend='local', torch_threads=None) -> dict:
    """Run the tiny suite's one RandomInit fine-tuning job; its record. ``threads`` is
    ``--threads`` (torch threads and loader workers), ``torch_threads`` torch's alone (as
    ``OMP_NUM_THREADS`` sets it)."""
    folder.mkdir(parents=True, exist_ok=True)
    suite = load_suite(str(write_tiny_suite(folder, methods='RandomInit', epochs=1)), cfg or {})
    previous = torch.get_num_threads()
    try:
        if torch_threads:
            torch.set_num_threads(torch_threads)
        runtime = current_runtime(threads=threads)
        jobs = expand(suite, runtime=runtime)
        [outcome] = SuiteRunner(suite, folder / 'work', threads=threads,
                                keep_checkpoints=keep_checkpoints,
                                vis_backend=vis_backend).run(jobs)
    finally:
        torch.set_num_threads(previous)
    assert outcome.status == 'finished', outcome.reason
    return outcome.record


def _numbers(record: dict) -> str:
    """Everything a record computed, as one comparable text."""
    return json.dumps(dict(test=record['test'], last=record['test_last'],
                           history=record['history']), sort_keys=True)


# (label, first run, second run): each a dict of _run_tiny keywords. The first three change
# results; the last two are how-to-run settings the key leaves out, so their results must match.
CANDIDATES = [
    ('threads', dict(torch_threads=1), dict(torch_threads=2)),
    ('precision', dict(cfg={'scale.finetune.precision': 'fp32'}),
     dict(cfg={'scale.finetune.precision': 'bf16'})),
    ('loader workers', dict(cfg={'scale.finetune.num_workers': 0}),
     dict(cfg={'scale.finetune.num_workers': 1})),
    ('keep checkpoints', dict(), dict(keep_checkpoints=True)),
    ('vis backend', dict(), dict(vis_backend='tensorboard')),
]
HOW_TO_RUN = ('keep checkpoints', 'vis backend')


@pytest.mark.slow
@pytest.mark.parametrize('label,first,second', CANDIDATES, ids=[c[0] for c in CANDIDATES])
def test_results_that_differ_have_different_keys(tmp_path, label, first, second):
    a, b = (_run_tiny(tmp_path / str(i), **kwargs) for i, kwargs in enumerate((first, second)))
    if _numbers(a) != _numbers(b):
        assert a['key'] != b['key'], f'{label} changed the result but not the job key'
    if label in HOW_TO_RUN:  # left out of the key: proven not to change a result
        assert a['key'] == b['key'] and _numbers(a) == _numbers(b)
    else:
        assert a['key'] != b['key']


def test_key_holds_resolved_runtime_facts(tmp_path):
    suite = load_suite(str(write_tiny_suite(tmp_path, methods='RandomInit')),
                       {'scale.finetune.precision': 'auto'})
    base = current_runtime()
    [job] = expand(suite, runtime=base)
    facts = job.spec['runtime']
    assert facts['precision'] in ('fp32', 'bf16')  # 'auto' resolved, not as typed
    assert facts['threads'] == torch.get_num_threads() and facts['world_size'] == 1
    assert facts['deterministic'] is True
    assert {'torch', 'torchvision', 'numpy', 'mmengine'} <= set(facts['versions'])
    variants = dict(threads=replace(base, threads=base.threads + 1),
                    world_size=replace(base, world_size=2),
                    device=replace(base, device='cuda:Some GPU'),
                    versions=replace(base, versions=(('torch', '0.0'),)),
                    loader_workers=replace(base, loader_workers=3))
    keys = {name: expand(suite, runtime=rt)[0].key for name, rt in variants.items()}
    assert len(set(keys.values()) | {job.key}) == len(variants) + 1, keys
    nondeterministic = load_suite(str(tmp_path / 'tiny.py'),
                                  {'scale.finetune.precision': 'auto'})
    nondeterministic.scale.finetune['deterministic'] = False
    assert expand(nondeterministic, runtime=base)[0].key != job.key


def test_cli_threads_and_world_size_change_the_key(monkeypatch, capsys):
    keys = {}
    for label, args, world in [('t1', ['--threads', '1'], '1'), ('t2', ['--threads', '2'], '1'),
                               ('w1', ['--launcher', 'pytorch'], '1'),
                               ('w2', ['--launcher', 'pytorch'], '2')]:
        monkeypatch.setenv('WORLD_SIZE', world)  # as torchrun sets it
        assert main(['--suite', 'smoke', '--methods', 'RandomInit', '--dry-run',
                     '--format', 'json', *args]) == 0
        keys[label] = [j['key'] for j in json.loads(capsys.readouterr().out)['jobs']]
    assert keys['t1'] != keys['t2'] and keys['w1'] != keys['w2']


def test_runner_refuses_jobs_planned_for_another_runtime(tmp_path):
    suite = load_suite(str(write_tiny_suite(tmp_path, methods='RandomInit')))
    jobs = expand(suite, runtime=replace(current_runtime(), threads=torch.get_num_threads() + 3))
    with pytest.raises(ConfigError, match='threads'):
        SuiteRunner(suite, tmp_path / 'work').run(jobs)


# -- method settings -------------------------------------------------------------------

def test_method_cfg_typo_exits_2_naming_the_setting(capsys):
    assert main(['--suite', 'smoke', '--dry-run', '--cfg-options',
                 'method_cfg.MatSSL.hiden_dim=3']) == 2
    err = capsys.readouterr().err
    assert "'hidden_dim'" in err and 'Traceback' not in err
    assert len(err.strip().splitlines()) == 1


def test_every_plugin_checks_its_settings(tmp_path):
    from matssl_bench.method_api import PretrainingMethod
    from matssl_bench.registry import METHODS

    suite_path = write_tiny_suite(tmp_path)
    for name, cls in sorted(METHODS.module_dict.items()):
        declared = cls.declared_settings()
        if declared is None:  # a plugin declaring free-form settings
            continue
        setting = sorted(declared)[0]
        typo = setting[:-1] + setting[-1] * 2
        with pytest.raises(ConfigError, match=f"{name} has no setting '{typo}'"):
            load_suite(str(suite_path), {f'method_cfg.{name}.{typo}': 1})

    @METHODS.register_module(name='FreeFormTestMethod')
    class FreeForm(PretrainingMethod):
        """takes anything"""
        free_form_settings = True

        def __init__(self, **hparams):
            super().__init__(init='random', **hparams)
    try:
        load_suite(str(suite_path), {'method_cfg.FreeFormTestMethod.anything': 1})
    finally:
        METHODS.module_dict.pop('FreeFormTestMethod')
    with pytest.raises(ConfigError, match="did you mean 'jitter'"):
        load_suite(str(suite_path), {'method_cfg.MatSSL.augmentation.jiter': 0.1})


# -- bounded parsing: Aachen pickle ---------------------------------------------------------

def _aachen_layout(root: Path, annotations: bytes) -> Path:
    (root / 'images').mkdir(parents=True)
    for i in range(3):
        save(root / 'images' / f'im{i}.png', texture(i, 40, 40))
    (root / 'annotations.pkl').write_bytes(annotations)
    return root


def _shared_reference_bomb(levels: int, width: int = 2) -> bytes:
    node = [0.0, 0.0]
    for _ in range(levels):
        node = [node] * width
    return pickle.dumps({'im0': [node]}, protocol=4)


def test_nested_pickle_bomb_refused_fast_in_one_line(tmp_path):
    from matssl_bench.datasets.aachen import read_polygon_pickle

    bomb = _shared_reference_bomb(25)
    assert len(bomb) < 300  # stands for 2**25 coordinates
    root = _aachen_layout(tmp_path / 'aachen', bomb)
    start = time.perf_counter()
    with pytest.raises(DataError, match='annotations.pkl.*limit MAX_POLYGON_NESTING'):
        read_polygon_pickle(root / 'annotations.pkl')
    assert time.perf_counter() - start < 5
    result = _tool('prepare_data.py', 'AachenHeerlen', '--src', str(root),
                   '--out', str(tmp_path / 'prep'))
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert len(_lines_naming(result.stderr, 'annotations.pkl')) == 1
    assert not (tmp_path / 'prep').exists()


def test_wide_pickle_bomb_bounded_by_the_value_limit(tmp_path, monkeypatch):
    from matssl_bench.datasets import aachen

    monkeypatch.setattr(aachen, 'MAX_POLYGON_VALUES', 100_000)
    # four levels of 100 shared references: 10**8 coordinates in a few kB
    root = _aachen_layout(tmp_path / 'aachen', _shared_reference_bomb(4, width=100))
    start = time.perf_counter()
    with pytest.raises(DataError, match=r'more than 100,000 values \(limit MAX_POLYGON_VALUES\)'):
        aachen.read_polygon_pickle(root / 'annotations.pkl')
    assert time.perf_counter() - start < 5
    good = pickle.dumps({'im0': [np.array([[1, 1], [20, 1], [20, 20]], float)]})
    (root / 'annotations.pkl').write_bytes(good)
    assert aachen.read_polygon_pickle(root / 'annotations.pkl')['im0'][0].shape == (3, 2)


# -- bounded, typed records ---------------------------------------------------------------

@pytest.fixture(scope='module')
def finished_work(tmp_path_factory):
    """A work dir holding one finished RandomInit fine-tuning record."""
    folder = tmp_path_factory.mktemp('finished')
    record = _run_tiny(folder)
    return folder / 'work', record


BAD_RECORDS = {
    'deep': None,  # 100,000 nested lists
    'seed-zero': dict(seed='zero'),
    'history-null': dict(history=None),
    'test-images-x': dict(test={'mIoU': 50.0, 'images': 'x'}),
    'dataset-list': dict(dataset=['a']),
    'nan-miou': dict(test={'mIoU': float('nan')}),
}


def test_make_tables_skips_each_malformed_record_in_one_line(finished_work, tmp_path):
    import shutil

    work = tmp_path / 'work'
    shutil.copytree(finished_work[0], work)
    valid = finished_work[1]
    folder = work / 'records' / 'finetune'
    for name, change in BAD_RECORDS.items():
        text = ('[' * 100_000 + ']' * 100_000 if change is None
                else json.dumps({**valid, **change, 'key': name}))
        (folder / f'{name}.json').write_text(text)
    result = _tool('make_tables.py', '--work-dir', str(work), '--out', str(tmp_path / 'tables'))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr + result.stdout
    for name in BAD_RECORDS:
        lines = _lines_naming(result.stderr, f'{name}.json')
        assert len(lines) == 1 and 'skipped' in lines[0], (name, lines)
    table = (tmp_path / 'tables' / 'table4.csv').read_text()
    assert 'random init' in table
    # the runner: its own record nested 100,000 deep is one line and the job runs again
    store = RecordStore(work)
    (folder / f'{valid["key"]}.json').write_text('[' * 100_000 + ']' * 100_000)
    assert store.finished('finetune', valid['key']) is None


# -- manifests -------------------------------------------------------------------------------

@pytest.mark.parametrize('manifest', [
    '[' * 100_000 + ']' * 100_000,
    json.dumps(dict(format='matssl-prepared/1', dataset='MetalDAM', files={'a.png': 3},
                    splits={'train': [dict(name=1, image='a', mask='b')]})),
], ids=['deep', 'wrong-types'])
def test_bad_manifest_is_one_line_in_dry_run_and_verify(tmp_path, capsys, manifest):
    prepared = tmp_path / 'prep'
    prepared.mkdir()
    (prepared / 'manifest.json').write_text(manifest)
    assert _tool_main('prepare_data.py')(['--verify', str(prepared)]) in (1, 2)
    err = capsys.readouterr().err
    assert len(_lines_naming(err, 'manifest.json')) == 1 and 'Traceback' not in err
    suite = tmp_path / 'suite.py'
    suite.write_text(f"_base_ = [{str(write_tiny_suite(tmp_path, methods='RandomInit'))!r}]\n"
                     f"finetune_sets = dict(synthetic=dict(_delete_=True, type='MetalDAM', "
                     f"root={str(prepared)!r}))\n")
    assert main(['--suite', str(suite), '--dry-run']) == 2  # data there but unusable
    out = capsys.readouterr().out
    assert len(_lines_naming(out, 'manifest.json')) == 1


# -- one line per expected failure ------------------------------------------------------------

def test_full_disk_while_saving_is_one_line(tmp_path):
    disk = tmp_path / 'disk'
    disk.mkdir()
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', str(disk)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip('cannot mount a small tmpfs here (needs root)')
    try:
        suite = write_tiny_suite(tmp_path, methods='RandomInit', epochs=1)
        result = run_cli('--suite', str(suite), '--work-dir', str(disk / 'work'), env=ENV)
    finally:
        subprocess.run(['umount', str(disk)], check=True)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    [line] = [l for l in result.stderr.splitlines() if l.startswith('error:')]
    assert line.startswith(f'error: no space left writing {disk / "work"}')
    assert line.endswith('; free space and rerun: finished jobs are kept')


def test_enospc_of_any_atomic_write_names_the_file(tmp_path, monkeypatch):
    from matssl_bench.fileio.atomic import save_torch_atomic

    def full(obj, path):
        raise OSError(errno.ENOSPC, 'No space left on device', str(path))
    monkeypatch.setattr(torch, 'save', full)
    target = tmp_path / 'encoders' / 'x.pth'
    with pytest.raises(DiskFullError, match=f'no space left writing {target}'):
        save_torch_atomic(target, {})
    assert list(target.parent.iterdir()) == []


@pytest.mark.slow
def test_prepare_race_to_one_out_is_one_line(tmp_path, monkeypatch):
    from _data_fakes import fake_metaldam
    from matssl_bench.data import prepare as prepare_module

    src = fake_metaldam(tmp_path / 'src')
    out = tmp_path / 'prep'
    real = prepare_module._write_variant
    raced = []

    def winner_first(data, folder, *args):
        manifest = real(data, folder, *args)
        if not raced:  # another run finishes first
            raced.append(True)
            prepare_module.prepare('MetalDAM', src, out)
        return manifest
    monkeypatch.setattr(prepare_module, '_write_variant', winner_first)
    with pytest.raises(DataError, match='another prepare_data run finished it first'):
        prepare_module.prepare('MetalDAM', src, out)
    monkeypatch.undo()
    assert prepare_module.verify(out) == []
    assert not list(tmp_path.glob('.prep.*'))
    # two real processes started together: one copy, no traceback
    out2 = tmp_path / 'prep2'
    procs = [subprocess.Popen([sys.executable, str(TOOLS / 'prepare_data.py'), 'MetalDAM',
                               '--src', str(src), '--out', str(out2)], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results)[0] == 0
    for rc, err in results:
        assert 'Traceback' not in err and (rc == 0 or len(err.strip().splitlines()) == 1), err
    assert prepare_module.verify(out2) == []


def _evil_checkpoint(path: Path) -> Path:
    class Evil:
        def __reduce__(self):
            return (os.system, ('true',))
    torch.save({'state_dict': {}, 'meta': Evil()}, path)
    return path


def test_refused_weight_files_never_quote_torchs_advice(tmp_path):
    from matssl_bench.models.encoders import read_state_dict

    evil = _evil_checkpoint(tmp_path / 'evil.pth')
    with pytest.raises(UnreadableFileError) as caught:
        read_state_dict(evil)
    message = str(caught.value)
    assert 'weights-only loader' in message and 'weights_only' not in message
    assert '\n' not in message


def test_rescore_of_a_bad_best_pth_is_one_line(finished_work, tmp_path, capsys):
    import shutil

    work = tmp_path / 'work'
    shutil.copytree(finished_work[0], work)
    best = work / finished_work[1]['weights']
    rescore = _tool_main('rescore.py')
    for bad in (_evil_checkpoint, lambda path: path.write_bytes(os.urandom(2000))):
        bad(best)
        assert rescore(['--work-dir', str(work), '--set', 'eval_stride=16']) == 2
        [line] = [l for l in capsys.readouterr().err.splitlines() if l.startswith('error:')]
        assert str(best) in line and 'weights_only' not in line


def test_stale_temporaries_removed_only_when_their_writer_is_gone(tmp_path):
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    suite = load_suite(str(write_tiny_suite(tmp_path, methods='RandomInit')))
    work = tmp_path / 'work'
    run_dir = work / 'runs' / 'finetune' / 'k'
    records = work / 'records' / 'finetune'
    run_dir.mkdir(parents=True)
    records.mkdir(parents=True)
    stale = [records / f'.abc.json.{host}.{dead.pid}.x1y2z3.tmp',
             run_dir / f'.resume.pth.{host}.{dead.pid}.tmp']
    alive = [records / f'.abc.json.{host}.{os.getpid()}.x1y2z3.tmp',
             run_dir / f'.resume.pth.other-host.{dead.pid}.tmp']
    for path in stale + alive:
        path.write_bytes(b'half')
    SuiteRunner(suite, work)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in alive)


def test_prepare_refuses_images_smaller_than_a_patch(tmp_path):
    src = tmp_path / 'src'
    for i in range(4):
        save(src / 'images' / f'ok{i}.png', texture(i, 40, 40))
        save(src / 'masks' / f'ok{i}.png', labels(i, 40, 40, 2))
    save(src / 'images' / 'dot.png', texture(9, 1, 1))
    save(src / 'masks' / 'dot.png', labels(9, 1, 1, 2))
    result = _tool('prepare_data.py', 'Folder', '--src', str(src), '--out', str(tmp_path / 'p'),
                   '--option', 'classes=["ferrite","pearlite"]')
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert 'dot' in line and '1x1 px, smaller than a 32x32 patch' in line
    assert not (tmp_path / 'p').exists()
