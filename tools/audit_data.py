#!/usr/bin/env python
"""Audit a suite's pretraining pools for leakage, without training.

    python tools/audit_data.py --suite paper --format json
    python tools/audit_data.py --suite paper --pretrain-sets MetalDAM --datasets MetalDAM EBC-1

For each pool: `images` (kept), `excluded` (`{"name", "matches", "score"}`: the
fine-tuning test image, or under `clean` validation image, it copies, and their
similarity; exact-name matches score 1.0) and `duplicates` (copies kept once);
then the near-duplicate groups found across sources. A pool whose data cannot be
read is reported with the reason, and the exit status is then 1.
"""
import argparse
import contextlib
import fnmatch
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
    parser.add_argument('--datasets', nargs='+', metavar='PATTERN',
                        help='fine-tuning sets whose images are protected (as run_benchmark)')
    parser.add_argument('--pretrain-sets', nargs='+', metavar='PATTERN',
                        help='pretraining sets, or their sources, to audit (as run_benchmark)')
    parser.add_argument('--plugin', action='append', default=[],
                        help='extra plugin module (dotted name or .py path); repeatable')
    args = parser.parse_args(argv)

    from matssl_bench.data.sources import audit_suite
    from matssl_bench.commands.run_benchmark import route_logs_to_stderr
    from matssl_bench.suite.plan import load_suite, select_pools
    from matssl_bench.plugins import import_user_plugin, load_builtin_plugins

    load_builtin_plugins()
    for plugin in args.plugin:
        import_user_plugin(plugin)
    try:
        stdout = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):  # mmengine's log lines: not on stdout
            route_logs_to_stderr(stdout)
            suite = load_suite(args.suite)
        names = None
        if args.datasets:
            names = [n for n in suite.finetune_sets
                     if any(fnmatch.fnmatch(n, p) for p in args.datasets)]
            if not names:
                raise BenchmarkError(f'--datasets {" ".join(args.datasets)} matches no '
                                     f'fine-tuning set of {suite.suite_name}')
        pools = {pool.label: pool.sources
                 for pool in select_pools(suite, args.pretrain_sets).values()}
        report = audit_suite(suite, args.protocol, pools, names)
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
