#!/usr/bin/env python
"""Regenerate tables (CSV, Markdown, LaTeX) and figures from stored records, without training.

    python tools/make_tables.py --work-dir work_dirs/paper [--out results/paper] [--formats svg pdf]
                                [--all-records]

--work-dir is a work dir (records/) or a results folder holding records.jsonl.gz. With --out,
the records (compressed, no weights) and suite.json are written beside the tables, so the
folder can be committed and rebuilt later by anyone: ``--work-dir results/paper``.
"""
import argparse
import sys
import time
from pathlib import Path

from matssl_bench.fileio.atomic import atomic_write
from matssl_bench.report.build import (SUITE_META, export_records, has_records, load_records,
                                       make_report)
from matssl_bench.report.figures import FIGURE_FORMATS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--work-dir', type=Path, required=True)
    parser.add_argument('--out', type=Path, help='output folder (default: WORK_DIR/tables); '
                        'also receives records.jsonl.gz and suite.json')
    parser.add_argument('--formats', nargs='+', default=['png'], choices=FIGURE_FORMATS,
                        help='figure formats besides png (svg, pdf: vector copies beside each png)')
    parser.add_argument('--all-records', action='store_true',
                        help='tabulate records of other configurations of a row as rows of '
                             'their own (default: the current plan\'s configuration only)')
    args = parser.parse_args()
    if not has_records(args.work_dir):
        print(f'error: {args.work_dir}: no records folder or records.jsonl.gz; run '
              'tools/run_benchmark.py first', file=sys.stderr)
        return 2
    if args.out is not None and (args.out.is_symlink() and not args.out.exists()
                                 or args.out.exists() and not args.out.is_dir()):
        print(f'error: {args.out}: --out is a dangling link or not a folder', file=sys.stderr)
        return 2
    start = time.time()
    try:
        records = load_records(args.work_dir)
        written = make_report(args.work_dir, args.out, tuple(args.formats),
                              all_records=args.all_records, records=records)
        if args.out is not None and args.out.resolve() != args.work_dir.resolve():
            written['records'] = [export_records(records, args.out)]
            if (args.work_dir / SUITE_META).is_file():
                meta = (args.work_dir / SUITE_META).read_bytes()
                atomic_write(args.out / SUITE_META, lambda tmp: tmp.write_bytes(meta))
                written['records'].append(args.out / SUITE_META)
    except KeyboardInterrupt:
        print('error: interrupted; tables already written are complete, rerun to finish',
              file=sys.stderr)
        return 130
    except (OSError, ValueError) as err:  # an unreadable archive or meta file
        print(f'error: {args.work_dir}: {err}', file=sys.stderr)
        return 2
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
