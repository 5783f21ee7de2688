#!/usr/bin/env python
"""Regenerate tables (CSV, Markdown, LaTeX) and figures from stored records, without training.

    python tools/make_tables.py --work-dir work_dirs/paper [--out results/paper] [--formats svg pdf]
"""
import argparse
import sys
import time
from pathlib import Path

from matssl_bench.report.build import make_report
from matssl_bench.report.figures import FIGURE_FORMATS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--work-dir', type=Path, required=True)
    parser.add_argument('--out', type=Path, help='output folder (default: WORK_DIR/tables)')
    parser.add_argument('--formats', nargs='+', default=['png'], choices=FIGURE_FORMATS,
                        help='figure formats besides png (svg, pdf: vector copies beside each png)')
    args = parser.parse_args()
    if not (args.work_dir / 'records').is_dir():
        print(f'error: {args.work_dir}: no records folder; run tools/run_benchmark.py first',
              file=sys.stderr)
        return 2
    if args.out is not None and (args.out.is_symlink() and not args.out.exists()
                                 or args.out.exists() and not args.out.is_dir()):
        print(f'error: {args.out}: --out is a dangling link or not a folder', file=sys.stderr)
        return 2
    start = time.time()
    try:
        written = make_report(args.work_dir, args.out, tuple(args.formats))
    except KeyboardInterrupt:
        print('error: interrupted; tables already written are complete, rerun to finish',
              file=sys.stderr)
        return 130
    for kind, paths in written.items():
        for path in paths:
            print(f'{kind:10s} {path}')
            if kind == 'figures':
                for fmt in args.formats:
                    if fmt != 'png' and path.with_suffix(f'.{fmt}').is_file():
                        print(f'{kind:10s} {path.with_suffix(f".{fmt}")}')
    print(f'done in {time.time() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
