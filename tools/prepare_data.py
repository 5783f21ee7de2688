#!/usr/bin/env python
"""Validate and convert a public data set into the suite's prepared layout.

    python tools/prepare_data.py MetalDAM --src ../shared/data/MetalDAM --out data/MetalDAM
    python tools/prepare_data.py EBC --src path/to/benchmark_segmentation_data --out data/EBC
    python tools/prepare_data.py UHCS --src path/to/UHCS --out data/UHCS --download

Writes PNG images/masks, split lists and manifest.json (counts, patch counts,
sha256); nothing is left behind on failure. Errors end with one line
``error: <file>: <problem>`` and exit status 1.
"""
import argparse
import json
import sys
from pathlib import Path

from matssl_bench.errors import BenchmarkError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('name', help='MetalDAM, EBC, UHCS, AachenHeerlen or Folder')
    parser.add_argument('--src', type=Path, required=True, help='the unpacked public layout')
    parser.add_argument('--out', type=Path, required=True, help='new folder for the prepared copy')
    parser.add_argument('--download', action='store_true',
                        help='fetch the public archive into --src when it is missing')
    parser.add_argument('--option', action='append', default=[], metavar='KEY=JSON',
                        help='reader option, e.g. --option seed=1 --option \'classes=["a","b"]\'')
    args = parser.parse_args(argv)
    from matssl_bench.prepare import prepare
    from matssl_bench.cli import parse_json_options
    from matssl_bench.errors import ConfigError
    from matssl_bench.suite_schema import check_dataset_cfg
    try:
        options = parse_json_options(args.option)
        check_dataset_cfg('--option', dict(type=args.name, root=str(args.src), **options))
    except ConfigError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    try:
        manifests = prepare(args.name, args.src, args.out, fetch=args.download, options=options)
    except BenchmarkError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    for variant, manifest in manifests.items():
        counts = ', '.join(f'{k} {v}' for k, v in manifest['counts'].items())
        patches = manifest['patches']
        print(f'{variant}: {counts}; {patches["size"]}px patches: train {patches["train"]}, '
              f'val {patches["val"]}, test {patches["test"]}, pretraining pool '
              f'{patches["pretrain_pool"]} (overlap {patches["pretrain_overlap"]}); '
              f'{len(manifest["warnings"])} repair warning(s)')
    print(f'written: {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
