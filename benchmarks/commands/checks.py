"""Checks of `tools/run_benchmark.py` arguments and work dir before anything runs.

Each problem is a ``BenchmarkError`` with a one-line message (``main()`` prints
``error: ...`` and exits with status 2).
"""
from __future__ import annotations

import fnmatch
import os
import tempfile
from pathlib import Path

from matssl_bench.errors import BenchmarkError

MAX_SEED = 2**32 - 1  # numpy's and mmengine's seed range


def _check_patterns(option: str, patterns, names: list[str], hint: str = '') -> None:
    for pattern in patterns or []:
        if not any(fnmatch.fnmatch(str(n), pattern) for n in names):
            raise BenchmarkError(f'{option} {pattern!r} matches nothing; valid: '
                                 f'{", ".join(sorted(set(map(str, names))))}{hint}')


def _method_hint(patterns, suite_methods: list[str]) -> str:
    """Why a ``--methods`` name matches nothing: not in this suite's rows, or not loaded."""
    from matssl_bench.registry import METHODS

    unmatched = [p for p in patterns or []
                 if not any(fnmatch.fnmatch(n, p) for n in suite_methods)]
    if unmatched and any(fnmatch.fnmatch(n, p) for p in unmatched for n in METHODS.module_dict):
        return ('; that method is registered but no row of this suite uses it (add a row, '
                "or method='*')")
    return ('; a method defined in a plugin must be loaded first: --plugin path/to/file.py '
            "(or plugins = ['file.py'] in the suite)")


def validate_args(args, suite) -> None:
    """Refuse options that would run nothing, run a job twice or be silently ignored."""
    from matssl_bench.suite.plan import expand_rows, pool_patterns_valid

    if args.format == 'json' and not args.dry_run:
        raise BenchmarkError('--format json only applies to --dry-run (the plan); '
                             'add --dry-run or drop --format')
    if args.seeds is not None:
        duplicates = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
        if duplicates:
            raise BenchmarkError(f'--seeds: {", ".join(map(str, duplicates))} given more than once')
        bad = [s for s in args.seeds if not 0 <= s <= MAX_SEED]
        if bad:
            raise BenchmarkError(f'--seeds: {bad[0]} is out of range (0 to {MAX_SEED})')
    rows = expand_rows(suite)
    methods = [r['method'] for r in rows]
    _check_patterns('--methods', args.methods, methods, _method_hint(args.methods, methods))
    _check_patterns('--datasets', args.datasets, [r['finetune'] for r in rows])
    _check_patterns('--pretrain-sets', getattr(args, 'pretrain_sets', None),
                    pool_patterns_valid(suite))
    if args.rows is not None:
        bad = [i for i in args.rows if not 0 <= i < len(rows)]
        if bad:
            raise BenchmarkError(f'--rows: {bad[0]} is not a row of suite {suite.suite_name} '
                                 f'(valid: 0 to {len(rows) - 1})')
        if len(set(args.rows)) != len(args.rows):
            raise BenchmarkError('--rows: a row is given more than once')


def check_selection(jobs, args) -> None:
    """Options that each match something may still select no job together."""
    if not jobs and (args.methods or args.datasets or args.rows is not None
                     or getattr(args, 'pretrain_sets', None)):
        raise BenchmarkError('--methods, --datasets, --pretrain-sets and --rows together '
                             'select no job')


def check_work_dir(work_dir: Path) -> None:
    """The work dir must be a folder this process can write (records, locks, checkpoints)."""
    work_dir = Path(work_dir)
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix='.write-test.', dir=work_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise BenchmarkError(f'{work_dir}: work dir is not writable '
                             f'({err.strerror or type(err).__name__})') from None
