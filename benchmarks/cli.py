"""`tools/run_benchmark.py`: run a suite, list what is registered, or print a suite's plan."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import BenchmarkError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be at least 1, got {value}')
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='run_benchmark.py', description=__doc__)
    p.add_argument('--suite', default='smoke', help='built-in suite name or path to a suite config')
    p.add_argument('--work-dir', type=Path, help='where records, checkpoints and tables go '
                   '(default: work_dirs/<suite>)')
    p.add_argument('--list', action='store_true', help='list methods, suites and data sets')
    p.add_argument('--seeds', type=int, nargs='+', help='seeds (default: the suite\'s)')
    p.add_argument('--methods', nargs='+', help='glob patterns of method names to run')
    p.add_argument('--datasets', nargs='+', help='glob patterns of fine-tuning sets to run')
    p.add_argument('--rows', type=int, nargs='+', help='indices of suite rows to run')
    p.add_argument('--protocol', choices=['published', 'clean'],
                   help="model selection and mIoU convention (default: the suite's)")
    p.add_argument('--precision', choices=['fp32', 'bf16', 'fp16', 'auto'],
                   help="training precision of both stages (default: the suite's; "
                   "bf16/fp16 are autocast mixed precision, auto = bf16 where native)")
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
    return p.parse_args(argv)


def first_doc_line(obj) -> str:
    lines = (obj.__doc__ or '').strip().splitlines()
    return lines[0] if lines else ''


def list_registered() -> str:
    from .plan import available_suites, load_suite
    from .registry import METHODS, MICROGRAPH_SETS

    lines = ['methods:']
    for name in sorted(METHODS.module_dict):
        cls = METHODS.module_dict[name]
        stage = 'SSL pretraining' if cls.needs_pretraining else 'no pretraining'
        lines.append(f'  {name:20s} {stage}; {first_doc_line(cls)}')
    lines.append('suites:')
    for name in available_suites():
        lines.append(f'  {name:20s} {load_suite(name).get("description", "")}')
    lines.append('data sets:')
    for name in sorted(MICROGRAPH_SETS.module_dict):
        lines.append(f'  {name:20s} {first_doc_line(MICROGRAPH_SETS.module_dict[name])}')
    return '\n'.join(lines)


def format_plan(jobs, fmt: str) -> str:
    if fmt == 'json':
        return json.dumps([j.summary() for j in jobs], indent=2)
    lines = [f'{len(jobs)} jobs ({sum(j.stage == "pretrain" for j in jobs)} pretraining, '
             f'{sum(j.stage == "finetune" for j in jobs)} fine-tuning)']
    for j in jobs:
        lines.append(f'  {j.stage:9s} {j.key} {j.method:20s} pretrain={j.pretrain_set or "-":24s}'
                     f' finetune={j.dataset or "-":12s} seed={j.seed} cost~{j.est_cost:.1f}')
    return '\n'.join(lines)


def main(argv=None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print('error: interrupted; rerun the same command to resume', file=sys.stderr)
        return 130


def _main(argv=None) -> int:
    args = parse_args(argv)
    from .plugins import import_user_plugin, load_builtin_plugins

    load_builtin_plugins()
    for plugin in args.plugin:
        import_user_plugin(plugin)
    if args.list:
        print(list_registered())
        return 0

    from .cli_checks import check_selection, check_work_dir, validate_args
    from .locks import break_locks
    from .plan import expand, load_suite
    from .report import make_report, save_suite_meta
    from .runner import SuiteRunner

    try:
        suite = load_suite(args.suite)
        if args.protocol:
            suite.protocol = args.protocol
        if args.precision:
            for stage in ('pretrain', 'finetune'):
                suite.scale[stage]['precision'] = args.precision
        validate_args(args, suite)
        jobs = expand(suite, seeds=args.seeds, methods=args.methods, datasets=args.datasets,
                      rows=args.rows)
        check_selection(jobs, args)
        if args.dry_run:
            print(format_plan(jobs, args.format))
            return 0
        work_dir = args.work_dir or Path('work_dirs') / suite.suite_name
        check_work_dir(work_dir)
        if args.break_locks:
            for path in break_locks(Path(work_dir) / 'locks'):
                print(f'removed lock {path}', file=sys.stderr)
        if args.vis_backend != 'local':
            from .hooks import visualizer_cfg
            visualizer_cfg(args.vis_backend)  # a missing package stops the run before any job
        runner = SuiteRunner(suite, work_dir, args.launcher, vis_backend=args.vis_backend,
                             keep_checkpoints=args.keep_checkpoints, threads=args.threads)
        if runner.rank == 0:
            save_suite_meta(work_dir, suite)
        start = time.time()
        outcomes = runner.run(jobs)
    except (BenchmarkError, FileNotFoundError, KeyError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if runner.rank != 0:
        return 0
    written = make_report(work_dir)
    for name, paths in written.items():
        if name != 'figures':
            print(next(p for p in paths if p.suffix == '.md').read_text())
    counts = {s: sum(o.status == s for o in outcomes) for s in sorted({o.status for o in outcomes})}
    print(f'{len(outcomes)} jobs: {", ".join(f"{n} {s}" for s, n in counts.items())}; '
          f'{time.time() - start:.1f} s. Tables and figures in {work_dir / "tables"}')
    return 0
