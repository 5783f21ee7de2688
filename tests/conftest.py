"""Shared fixtures: the shared real data, the tiny suite, a finished tiny work dir made once
per session, and the command-line tools run in this interpreter (fast) or in a fresh one."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import runpy
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

# One intra-op thread in this interpreter and every process it starts: the thread count is
# part of every job key, so runs in here and in fresh processes share keys (and records).
os.environ['OMP_NUM_THREADS'] = '1'

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import matssl_bench  # noqa: F401  (applies the compatibility layer)
from matssl_bench.plugins import load_builtin_plugins

load_builtin_plugins()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get('MATSSL_SHARED_DATA', REPO.parent / 'shared' / 'data'))
SMOKE_SUITE = REPO / 'benchmarks' / 'suites' / 'smoke.py'

# The smoke suite (`_base_`) at a scale that trains every method in seconds on 2 CPU cores:
# smaller images, heads, queues and decoder, one pretraining epoch; SSL in float32 (smoke's
# 'auto' picks bf16 on CPUs with native bf16, and tests compare fp32 with --precision bf16).
TINY_SUITE = '''
_base_ = {smoke!r}
description = 'tiny test suite: suites/smoke.py at a smaller scale'
method_cfg = dict(
    MatSSL=dict(hidden_dim=64, out_dim=32),
    MoCoV2=dict(queue_len=64, hidden_dim=64, feat_dim=32),
    DenseCL=dict(queue_len=64, hidden_dim=64, feat_dim=32),
)
pretrain_sets = dict(synthetic=[dict(type='SyntheticMicrographs', size=64, unlabeled=6,
                                      train=4, val=2, test=2)])
finetune_sets = dict(synthetic=dict(size=64, train=4, val=2, test=2))
rows = [dict(finetune='synthetic', method={methods!r}, pretrain='synthetic')]
scale = dict(
    pretrain=dict(epochs=1, batch_size=8, patch_size=32, crop_size=32, overlap=0.0,
                  precision='fp32'),
    finetune=dict(epochs={epochs}, patch_size=32, decoder_channels=(16, 16, 8, 8, 8)),
)
'''


def write_tiny_suite(folder: Path, methods: str = '*', epochs: int = 2) -> Path:
    path = Path(folder) / 'tiny.py'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(TINY_SUITE.format(smoke=str(SMOKE_SUITE), methods=methods,
                                                      epochs=epochs)))
    return path


# -- the command-line tools --------------------------------------------------------------

def run_cli(*args: str, timeout: int = 900, cwd: Path | None = None, env: dict | None = None,
            fresh_process: bool = False) -> subprocess.CompletedProcess:
    """tools/run_benchmark.py with ``args``: its exit status, stdout and stderr.

    Runs in this interpreter (seconds faster per call) with the process state a run may
    change saved and restored; ``fresh_process=True`` starts a new interpreter, as a user
    does, for tests of process behaviour (exit status of the real script, signals, locks
    between processes, what a fresh registry holds).
    """
    return run_tool('run_benchmark.py', *args, timeout=timeout, cwd=cwd, env=env,
                    fresh_process=fresh_process)


def run_tool(script: str, *args, timeout: int = 900, cwd: Path | None = None,
             env: dict | None = None, fresh_process: bool = False
             ) -> subprocess.CompletedProcess:
    """``tools/<script>`` (or a path to a script) with ``args``, like :func:`run_cli`."""
    path = Path(script) if Path(script).is_absolute() else REPO / 'tools' / script
    argv = [str(path), *map(str, args)]
    if fresh_process:
        return subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                              timeout=timeout, cwd=cwd or REPO, env=env)
    stdout, stderr = io.StringIO(), io.StringIO()
    with _as_a_process(argv, cwd or REPO, env, stderr):
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                runpy.run_path(str(path), run_name='__main__')
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
                if done.code is not None and not isinstance(done.code, int):
                    print(done.code, file=sys.stderr)
            except Exception:  # noqa: BLE001 - as the interpreter would: traceback, status 1
                traceback.print_exc()
                code = 1
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


@contextlib.contextmanager
def _as_a_process(argv: list[str], cwd: Path, env: dict | None, stderr: io.StringIO):
    """What a fresh interpreter would give the tool, and back afterwards: argv, cwd,
    environment, sys.path, registries, loaded user plugins, torch threads and
    determinism, random states; warnings and log records go to the tool's stderr."""
    from mmengine.logging import MMLogger

    saved = dict(argv=sys.argv[:], path=sys.path[:], cwd=os.getcwd(), env=dict(os.environ),
                 modules=set(sys.modules), registries=_registry_contents(),
                 threads=torch.get_num_threads(),
                 deterministic=torch.are_deterministic_algorithms_enabled(),
                 rng=(random.getstate(), np.random.get_state(), torch.get_rng_state()),
                 loggers=set(MMLogger._instance_dict))
    handler = logging.StreamHandler(stderr)  # Python's last-resort handler, as in a process
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    # mmengine's loggers made earlier write to the stream of their day; a tool's log lines
    # (the suite sends them to stderr) belong to this run's stderr
    consoles = [(h, h.stream) for logger in MMLogger._instance_dict.values()
                for h in logger.handlers if type(h) is logging.StreamHandler]
    try:
        for console, _ in consoles:
            console.stream = stderr  # not setStream: it flushes the old one, maybe closed
        sys.argv = argv
        sys.path.insert(0, str(Path(argv[0]).parent))
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        os.chdir(cwd)
        root.addHandler(handler)
        with warnings.catch_warnings():
            _fresh_warning_filters(stderr)
            yield
    finally:
        root.removeHandler(handler)
        for console, stream in consoles:
            console.stream = stream
        os.chdir(saved['cwd'])
        os.environ.clear()
        os.environ.update(saved['env'])
        sys.argv, sys.path[:] = saved['argv'], saved['path']
        _forget_plugins(saved['registries'], saved['modules'])
        for name in set(MMLogger._instance_dict) - saved['loggers']:
            for log_handler in MMLogger._instance_dict.pop(name).handlers:
                log_handler.close()  # each run's log file
        torch.set_num_threads(saved['threads'])
        torch.use_deterministic_algorithms(saved['deterministic'])
        random.setstate(saved['rng'][0])
        np.random.set_state(saved['rng'][1])
        torch.set_rng_state(saved['rng'][2])


def _registry_contents() -> dict:
    """Every registry of the suite and mmengine's (with their children): the names it holds."""
    from mmengine.registry import Registry

    import matssl_bench.registry as ours

    found, todo = {}, [r for r in vars(ours).values() if isinstance(r, Registry)]
    while todo:
        registry = todo.pop()
        if registry not in found:
            found[registry] = set(registry._module_dict)
            todo.extend(registry.children.values())
    return found


# Where the suite's own modules and the libraries live; a module from anywhere else (a user's
# plugin file, a test's temporary one, a test module) registers plugins.
_LIBRARY_ROOTS = tuple({Path(p).resolve() for p in [
    REPO / 'benchmarks', REPO / 'methods', REPO / 'datasets', sysconfig.get_paths()['stdlib'],
    *(p for p in sys.path if p.endswith(('site-packages', 'dist-packages')))]})


def _plugin_module(name: str) -> bool:
    if name.startswith('matssl_bench_user_plugin_'):
        return True
    file = getattr(sys.modules.get(name), '__file__', None)
    return bool(file) and not any(Path(file).resolve().is_relative_to(root)
                                  for root in _LIBRARY_ROOTS)


def _forget_plugins(registries: dict, modules: set) -> None:
    """Unregister what plugin modules registered since ``registries`` was taken, and unload
    those imported since ``modules``. What the suite's and the libraries' own modules
    registered on first use stays (they stay imported, so they would not register again)."""
    unload = {m for m in set(sys.modules) - modules if m.startswith('matssl_bench_user_plugin_')}
    for registry, names in registries.items():
        for name in set(registry._module_dict) - names:
            module = getattr(registry._module_dict[name], '__module__', None) or ''
            if _plugin_module(module):
                del registry._module_dict[name]
                if module not in modules:
                    unload.add(module)
    for name in unload:
        sys.modules.pop(name, None)


def _fresh_warning_filters(stderr: io.StringIO) -> None:
    """CPython's default warning filters, printed to the tool's stderr (pytest records them)."""
    warnings.resetwarnings()
    warnings.simplefilter('default')
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                     ResourceWarning):
        warnings.simplefilter('ignore', category)

    def show(message, category, filename, lineno, file=None, line=None):
        stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = show


# -- a finished tiny suite, trained once per session ---------------------------------------

@dataclass
class FinishedSuite:
    suite: Path  # the tiny suite file (every method, seed 0, 2 fine-tuning epochs)
    work_dir: Path  # read only: copy it (copy_to) before writing into it
    first_run: subprocess.CompletedProcess  # the run that trained it, in a fresh process
    first_run_seconds: float

    def copy_to(self, folder: Path) -> Path:
        """A writable copy of the work dir under ``folder``."""
        return Path(shutil.copytree(self.work_dir, Path(folder) / 'work', symlinks=True))


@pytest.fixture(scope='session')
def finished_suite(tmp_path_factory, request) -> FinishedSuite:
    """The tiny suite with every method run end to end by tools/run_benchmark.py in a fresh
    interpreter (the suite's one end-to-end process run), plus RandomInit with seed 1 so
    that paired statistics over seeds have two runs. Under pytest-xdist the first worker
    that needs it trains it and the others wait for it (a file lock in the run's shared
    temporary folder), so it is trained once per run either way."""
    worker = getattr(request.config, 'workerinput', {}).get('workerid')
    if worker is None:
        return _train_finished_suite(tmp_path_factory.mktemp('finished_suite'))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # one per run, above every worker's
    folder, done = shared / 'finished_suite', shared / 'finished_suite.json'
    with FileLock(str(shared / 'finished_suite.lock')):
        if not done.is_file():
            folder.mkdir()
            trained = _train_finished_suite(folder)
            done.write_text(json.dumps(dict(
                returncode=trained.first_run.returncode, stdout=trained.first_run.stdout,
                stderr=trained.first_run.stderr, seconds=trained.first_run_seconds)))
    first = json.loads(done.read_text())
    return FinishedSuite(folder / 'tiny.py', folder / 'work',
                         subprocess.CompletedProcess([], first['returncode'], first['stdout'],
                                                     first['stderr']), first['seconds'])


def _train_finished_suite(folder: Path) -> FinishedSuite:
    suite = write_tiny_suite(folder)
    work = folder / 'work'
    start = time.time()
    first = run_cli('--suite', str(suite), '--work-dir', str(work), fresh_process=True)
    seconds = time.time() - start
    assert first.returncode == 0, first.stderr[-3000:]
    second_seed = run_cli('--suite', str(suite), '--work-dir', str(work), '--methods',
                          'RandomInit', '--seeds', '0', '1')
    assert second_seed.returncode == 0, second_seed.stderr[-3000:]
    return FinishedSuite(suite, work, first, seconds)


# -- general fixtures ----------------------------------------------------------------------

@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """Tiny in-process models: on 2 (possibly shared) cores extra OpenMP threads only wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _plugins_forgotten():
    """A plugin a test registers (--plugin in-process, import_user_plugin) is gone after it:
    it would add a phantom row to every later `method='*'` suite."""
    registries, modules = _registry_contents(), set(sys.modules)
    yield
    _forget_plugins(registries, modules)


@pytest.fixture
def tiny_suite(tmp_path) -> Path:
    return write_tiny_suite(tmp_path)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f'real data folder {SHARED_DATA} is absent (set MATSSL_SHARED_DATA)')
    return SHARED_DATA


# -- the source tree stays as it was -------------------------------------------------------

def _tree_status() -> str | None:
    """``git status --porcelain`` of the checkout, or None outside a git checkout."""
    try:
        done = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=all'],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def pytest_sessionstart(session):
    session.config._matssl_tree_before = _tree_status()


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when the tests changed the source tree (a test must use tmp_path)."""
    before = getattr(session.config, '_matssl_tree_before', None)
    after = _tree_status()
    if before is None or after is None or after == before:
        return
    changed = sorted(set(after.splitlines()) ^ set(before.splitlines()))
    print('\nerror: the tests changed the source tree (git status --porcelain): '
          + '; '.join(changed), file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
