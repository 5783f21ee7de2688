"""`tools/run_benchmark.py`: run a suite, list what is registered, or print a suite's plan."""
from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import sys
import time
import traceback
from pathlib import Path

from mmengine.config import DictAction

from matssl_bench.errors import BenchmarkError, ConfigError, DiskFullError

# Exit codes of `--job KEY` (and of every run): 0 finished or cached; 2 bad input or error.
EXIT_BLOCKED = 3       # --job: its pretraining job has no finished record yet
EXIT_UNAVAILABLE = 4   # --job: the job lacks a resource itself (weight file, data)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``error: ...`` line and exit status 2."""

    def error(self, message):
        self.exit(2, f'error: {message} (see {self.prog} --help)\n')


class CfgOptionsAction(DictAction):
    """mmengine's ``KEY=VALUE`` action; a malformed item is a usage error naming it."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values or []:
            key = item.split('=', 1)[0]
            if '=' not in item or not key or key.startswith('.') or key.endswith('.'):
                parser.error(f'{option_string} {item!r}: expected KEY=VALUE with a dotted key, '
                             'e.g. scale.finetune.epochs=3')
            value = item.split('=', 1)[1]
            if value.count('[') != value.count(']') or value.count('(') != value.count(')'):
                parser.error(f'{option_string} {item!r}: cannot parse the value (unbalanced '
                             'brackets); lists are [a,b] or a,b, tuples (a,b)')
        try:
            super().__call__(parser, namespace, values, option_string)
        except (AssertionError, ValueError) as err:  # e.g. unbalanced brackets
            parser.error(f'{option_string} {" ".join(values)!r}: cannot parse the value ({err})')


def parse_json_options(items, flag: str = '--option') -> dict:
    """``KEY=JSON`` items (``seed=1``, ``classes=["a","b"]``) as a dict; a malformed item is a
    :class:`ConfigError` naming it."""
    options = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ConfigError(f'{flag} {item!r}: expected KEY=JSON, e.g. {flag} seed=1')
        try:
            options[key] = json.loads(value)
        except ValueError as err:
            raise ConfigError(f'{flag} {item!r}: the value is not JSON ({err}); quote strings '
                              f'as {key}=\'"text"\'') from None
    return options


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be at least 1, got {value}')
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(prog='run_benchmark.py', description=__doc__)
    p.add_argument('--suite', default='smoke', help='built-in suite name or path to a suite config')
    p.add_argument('--work-dir', type=Path, help='where records, checkpoints and tables go '
                   '(default: work_dirs/<suite>)')
    p.add_argument('--list', action='store_true', help='list methods, suites and data sets')
    p.add_argument('--seeds', type=int, nargs='+', help='seeds (default: the suite\'s)')
    p.add_argument('--methods', nargs='+', help='glob patterns of method names to run')
    p.add_argument('--datasets', nargs='+', help='glob patterns of fine-tuning sets to run')
    p.add_argument('--pretrain-sets', nargs='+', metavar='PATTERN',
                   help='glob patterns of pretraining sets to run, or of their sources: '
                   '--pretrain-sets MetalDAM narrows every pool to its MetalDAM part (a pool '
                   'left empty is not run); rows without pretraining always run')
    p.add_argument('--rows', type=int, nargs='+', help='indices of suite rows to run')
    p.add_argument('--protocol', choices=['published', 'clean'],
                   help="model selection and mIoU convention (default: the suite's)")
    p.add_argument('--precision', choices=['fp32', 'bf16', 'fp16', 'auto'],
                   help="training precision of both stages (default: the suite's; "
                   "bf16/fp16 are autocast mixed precision, auto = bf16 where native)")
    p.add_argument('--job', metavar='KEY',
                   help='run exactly one planned job, by its key (or a unique prefix of it), '
                   'and write no tables; exit 0 when finished or cached, '
                   f'{EXIT_BLOCKED} when its pretraining job has not finished, '
                   f'{EXIT_UNAVAILABLE} when it lacks a resource (what Slurm arrays run)')
    p.add_argument('--dry-run', action='store_true', help='print the job plan, run nothing')
    p.add_argument('--format', choices=['text', 'json'], default='text')
    p.add_argument('--plugin', action='append', default=[],
                   help='extra plugin module (dotted name or .py path); repeatable')
    p.add_argument('--launcher', default='none', choices=['none', 'pytorch', 'slurm', 'mpi'],
                   help='mmengine launcher for distributed runs')
    p.add_argument('--break-locks', action='store_true',
                   help='delete every job lock of the work dir first (only when you know no '
                   'other runner is alive on any host)')
    p.add_argument('--vis-backend', default='local', choices=['local', 'tensorboard', 'wandb', 'mlflow'],
                   help='where mmengine logs losses and validation mIoU live (local JSON files '
                   'are always written)')
    p.add_argument('--keep-checkpoints', action='store_true',
                   help="keep each finished job's resume.pth (default: removed once its record "
                   'is written)')
    p.add_argument('--threads', type=_positive_int, metavar='N',
                   help='torch intra-op threads and data-loader workers per process')
    p.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                   metavar='KEY=VALUE',
                   help='override suite settings, e.g. scale.finetune.epochs=3 '
                   "'finetune_sets.mine.classes=[a,b]' (mmengine's DictAction)")
    p.add_argument('--debug', action='store_true',
                   help='show the full traceback of an error instead of one line')
    return p.parse_args(argv)


def first_doc_line(obj) -> str:
    lines = (obj.__doc__ or '').strip().splitlines()
    return lines[0] if lines else ''


def list_registered() -> str:
    from matssl_bench.suite.plan import available_suites, load_suite
    from matssl_bench.registry import METHODS, MICROGRAPH_SETS

    lines = ['methods:']
    for name in sorted(METHODS.module_dict):
        cls = METHODS.module_dict[name]
        stage = 'SSL pretraining' if cls.needs_pretraining else 'no pretraining'
        lines.append(f'  {name:20s} {stage}; {first_doc_line(cls)}')
        origin = '; '.join(f'{label}: {value}' for label, value in (
            ('source', getattr(cls, 'source', '')),
            ('reference config', getattr(cls, 'reference_config', ''))) if value)
        if origin:
            lines.append(f'  {"":20s} {origin}')
    lines.append('suites:')
    for name in available_suites():
        lines.append(f'  {name:20s} {load_suite(name).get("description", "")}')
    lines.append('data sets:')
    for name in sorted(MICROGRAPH_SETS.module_dict):
        lines.append(f'  {name:20s} {first_doc_line(MICROGRAPH_SETS.module_dict[name])}')
    return '\n'.join(lines)


def route_logs_to_stderr(stdout) -> None:
    """mmengine's loggers write to stdout (e.g. Config's INFO line about an environment
    variable it substituted); stdout is kept for results, so they go to stderr."""
    from mmengine.logging import MMLogger

    for logger in [MMLogger.get_current_instance(),
                   *getattr(MMLogger, '_instance_dict', {}).values()]:
        for handler in logger.handlers:
            if (isinstance(handler, logging.StreamHandler)
                    and handler.stream in (sys.__stdout__, stdout)):
                handler.setStream(sys.stderr)


def one_line(err: BaseException) -> str:
    return ' '.join(str(err).split()) or type(err).__name__


def main(argv=None) -> int:
    try:
        return _parse_and_run(argv)
    except KeyboardInterrupt:
        print('error: interrupted; rerun the same command to resume', file=sys.stderr)
        return 130


def _parse_and_run(argv=None) -> int:
    args = parse_args(argv)
    out = sys.stdout
    try:
        # every log line (mmengine's included) on stderr; results alone on stdout
        with contextlib.redirect_stdout(sys.stderr):
            route_logs_to_stderr(out)
            return _main(args, out)
    except (BenchmarkError, FileNotFoundError, KeyError, ValueError) as err:
        if args.debug:
            traceback.print_exc()
        print(f'error: {one_line(err)}', file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        if args.debug:
            traceback.print_exc()
        print(f'error: {DiskFullError(err.filename or "the work dir")}', file=sys.stderr)
        return 2


def plan_jobs(args: argparse.Namespace) -> tuple:
    """(suite, jobs, work dir) that ``args`` select: the suite with its --cfg-options,
    --protocol and --precision, expanded and filtered, every option checked."""
    from matssl_bench.commands.checks import check_selection, validate_args
    from matssl_bench.suite.plan import expand, load_suite
    from matssl_bench.suite.runtime import current_runtime

    suite = load_suite(args.suite, args.cfg_options)
    if args.protocol:
        suite.protocol = args.protocol
    if args.precision:
        for stage in ('pretrain', 'finetune'):
            suite.scale[stage]['precision'] = args.precision
    validate_args(args, suite)
    # threads, world size, device and versions enter every job key: resolved before planning
    runtime = current_runtime(threads=args.threads, launcher=args.launcher)
    jobs = expand(suite, seeds=args.seeds, methods=args.methods, datasets=args.datasets,
                  rows=args.rows, pretrain_sets=args.pretrain_sets, runtime=runtime)
    check_selection(jobs, args)
    return suite, jobs, args.work_dir or Path('work_dirs') / suite.suite_name


def _main(args: argparse.Namespace, out) -> int:
    from matssl_bench.plugins import import_user_plugin, load_builtin_plugins

    load_builtin_plugins()
    for plugin in args.plugin:
        import_user_plugin(plugin)
    if args.list:
        print(list_registered(), file=out)
        return 0

    from matssl_bench.commands.checks import check_work_dir
    from matssl_bench.fileio.locks import break_locks
    from matssl_bench.report.build import make_report, save_suite_meta
    from matssl_bench.engine.runner import SuiteRunner

    suite, jobs, work_dir = plan_jobs(args)
    from matssl_bench.engine.dry_run import (blocking_problems, format_text, inspect_plan,
                                             plan_report)
    if args.dry_run:
        entries = inspect_plan(suite, jobs, work_dir, args.suite)
        if args.job:
            entries = [e for e in entries if e['key'] == select_job(jobs, args.job)[-1].key]
        report = plan_report(entries, suite.get('data_root'))
        print(json.dumps(report, indent=2) if args.format == 'json' else format_text(report),
              file=out)
        # data that is there but unusable is an error; absent resources are only listed
        return 2 if blocking_problems(report) else 0
    check_work_dir(work_dir)
    # data checked before any training: label values, split lists, images vs patch size
    problems = blocking_problems(plan_report(inspect_plan(suite, jobs, work_dir, args.suite,
                                                          read_records=False)))
    if problems:
        for line in problems:
            print(f'error: {line}', file=sys.stderr)
        print(f'error: {len(problems)} data problem(s); nothing was run '
              '(--dry-run lists the whole plan)', file=sys.stderr)
        return 2
    if args.job:
        jobs = select_job(jobs, args.job)
    if args.break_locks:
        for path in break_locks(Path(work_dir) / 'locks'):
            print(f'removed lock {path}', file=sys.stderr)
    if args.vis_backend != 'local':
        from matssl_bench.engine.hooks import visualizer_cfg
        visualizer_cfg(args.vis_backend)  # a missing package stops the run before any job
    from matssl_bench.engine.console import library_output_to, run_log_path
    from matssl_bench.report.summary import run_summary

    runner = SuiteRunner(suite, work_dir, args.launcher, vis_backend=args.vis_backend,
                         keep_checkpoints=args.keep_checkpoints, threads=args.threads)
    if runner.rank == 0:
        save_suite_meta(work_dir, suite)
    if args.job:
        return run_single_job(runner, jobs, out)
    start = time.time()
    log_file = run_log_path(work_dir)
    if runner.rank == 0:
        print(f'{len(jobs)} jobs; library messages go to {log_file}', file=sys.stderr)
    with library_output_to(log_file):
        outcomes = runner.run(jobs)
    if runner.rank != 0:
        return 0
    written = make_report(work_dir)
    counts = {s: sum(o.status == s for o in outcomes) for s in sorted({o.status for o in outcomes})}
    print(f'{len(outcomes)} jobs: {", ".join(f"{n} {s}" for s, n in counts.items())}; '
          f'{time.time() - start:.1f} s.\n', file=out)
    print(run_summary(written, log_file), file=out)
    return 0


def select_job(jobs: list, key: str) -> list:
    """The job whose key or plan id (the key without this machine's runtime facts, as
    ``submit_slurm.py`` passes it) is (or starts with) ``key``, preceded by its pretraining
    job, if any."""
    by_key = {job.key: job for job in jobs}
    by_id = {job.plan_id: job.key for job in jobs if job.plan_id}
    names = {**{k: k for k in by_key}, **by_id}
    matches = sorted({names[n] for n in names if n == key}
                     or {names[n] for n in names if n.startswith(key)})
    if len(matches) != 1:
        what = 'no planned job has' if not matches else f'{len(matches)} planned jobs have'
        raise ConfigError(f'--job {key}: {what} this key (the suite, --cfg-options, --seeds, '
                          '--protocol and --precision must be those that planned it; '
                          '--dry-run lists the keys)')
    job = by_key[matches[0]]
    return [by_key[job.depends_on], job] if job.depends_on else [job]


def run_single_job(runner, jobs: list, out) -> int:
    """Run ``jobs[-1]`` (after :func:`select_job`), whose pretraining must have finished."""
    job = jobs[-1]
    if job.depends_on and runner.store.finished('pretrain', job.depends_on) is None:
        print(f'blocked: job {job.key} needs pretraining job {job.depends_on}, which has not '
              'finished', file=sys.stderr)
        return EXIT_BLOCKED
    outcome = runner.run(jobs)[-1]
    if runner.rank != 0:
        return 0
    print(f'{job.stage} {job.key}: {outcome.status}'
          + (f' ({outcome.reason})' if outcome.reason else ''), file=out)
    if outcome.status in ('finished', 'cached'):
        return 0
    return EXIT_BLOCKED if outcome.status == 'blocked' else EXIT_UNAVAILABLE
