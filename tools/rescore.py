#!/usr/bin/env python
"""Score a work dir's fine-tuned models again with other evaluation settings, side by side.

    python tools/rescore.py --work-dir work_dirs/cpu --set eval_stride=16 --out results/x

Every finished Table 4-5 run's selected weights are tested twice in this one process: with
the run's own settings and with the `--set` ones (evaluation settings only: eval_stride,
eval_batch_size, tta, tta_scales). Writes `rescore.csv/.md/.tex`: per set and method, the
mean test mIoU both ways, the paired difference (same models, same test images) with its
95 % bootstrap interval, Holm-adjusted p and verdict, and the ratio of evaluation seconds.
No record is changed.
"""
import argparse
import ast
import sys
from pathlib import Path

from matssl_bench.errors import BenchmarkError


def _setting(text: str) -> tuple:
    key, sep, value = text.partition('=')
    if not sep:
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r}')
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', type=Path, required=True)
    parser.add_argument('--set', type=_setting, action='append', required=True,
                        metavar='KEY=VALUE', help='evaluation setting to compare; repeatable')
    parser.add_argument('--out', type=Path, help='folder for rescore.* (default: WORK_DIR/tables)')
    args = parser.parse_args(argv)

    from matssl_bench.plugins import load_builtin_plugins
    from matssl_bench.commands.rescore import check_overrides, comparison_table, rescore
    from matssl_bench.report.tables import write_table

    overrides = dict(args.set)
    try:
        check_overrides(overrides)
        load_builtin_plugins()
        table = comparison_table(rescore(args.work_dir, overrides))
    except (BenchmarkError, ValueError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if table.empty:
        print(f'error: {args.work_dir}: no finished fine-tuning records', file=sys.stderr)
        return 2
    settings = ', '.join(f'{k}={v!r}' for k, v in overrides.items())
    written = write_table(table, args.out or args.work_dir / 'tables', 'rescore',
                          f'Test mIoU (%) of the same models with their own evaluation settings '
                          f'and with {settings}; delta = changed - original (paired over seeds '
                          'and test images), time_ratio = changed / original evaluation seconds')
    print(table.to_string(index=False))
    print('written: ' + ', '.join(str(p) for p in written))
    return 0


if __name__ == '__main__':
    sys.exit(main())
