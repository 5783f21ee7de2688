#!/usr/bin/env python
"""Audit a suite's pretraining pools for leakage, without training.

    python tools/audit_data.py --suite paper --format json

For each pool: `images` (kept), `excluded` (`{"name", "matches", "score"}`: the
fine-tuning test image, or under `clean` validation image, it copies, and their
similarity; exact-name matches score 1.0) and `duplicates` (copies kept once);
then the near-duplicate groups found across sources. A pool whose data cannot be
read is reported with the reason, and the exit status is then 1.
"""
import argparse
import json
import sys

from matssl_bench.errors import BenchmarkError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--suite', required=True, help='built-in suite name or suite file')
    parser.add_argument('--format', choices=['text', 'json'], default='text')
    parser.add_argument('--protocol', choices=['published', 'clean'],
                        help="which splits are protected (default: the suite's protocol)")
    parser.add_argument('--plugin', action='append', default=[],
                        help='extra plugin module (dotted name or .py path); repeatable')
    args = parser.parse_args(argv)

    from matssl_bench.data.sources import audit_suite
    from matssl_bench.suite.plan import load_suite
    from matssl_bench.plugins import import_user_plugin, load_builtin_plugins

    load_builtin_plugins()
    for plugin in args.plugin:
        import_user_plugin(plugin)
    try:
        report = audit_suite(load_suite(args.suite), args.protocol)
    except (BenchmarkError, FileNotFoundError, KeyError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    status = 1 if any(pool['images'] is None for pool in report['pools'].values()) else 0
    if args.format == 'json':
        print(json.dumps(report, indent=2))
        return status
    print(f'suite {report["suite"]}, protocol {report["protocol"]}: excluding copies of '
          f'{" and ".join(report["excluded_splits"])} images, duplicate threshold '
          f'{report["duplicate_threshold"]}')
    for name, pool in report['pools'].items():
        if pool['images'] is None:
            print(f'  {name}: unavailable: {pool["error"]}')
            continue
        print(f'  {name}: {pool["images"]} images kept, {len(pool["excluded"])} excluded, '
              f'{pool["duplicates"]} duplicates dropped')
        for item in pool['excluded']:
            print(f'    - {item["name"]}  (copy of {item["matches"]}, score {item["score"]})')
    print(f'near-duplicate groups across sources: {len(report["cross_source_groups"])}')
    for group in report['cross_source_groups']:
        print('  ' + ', '.join(group))
    for problem in report['unreadable_sources']:
        print(f'  unreadable source: {problem}')
    return status


if __name__ == '__main__':
    sys.exit(main())
