#!/usr/bin/env python
"""Validate and convert a public data set into the suite's prepared layout.

    python tools/prepare_data.py MetalDAM --src ../shared/data/MetalDAM --out data/MetalDAM
    python tools/prepare_data.py EBC --src path/to/benchmark_segmentation_data --out data/EBC
    python tools/prepare_data.py UHCS --src path/to/UHCS --out data/UHCS --download
    python tools/prepare_data.py --verify data/EBC      # check every file's sha256

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
    parser.add_argument('name', nargs='?', help='MetalDAM, EBC, UHCS, AachenHeerlen or Folder')
    parser.add_argument('--src', type=Path, help='the unpacked public layout (required)')
    parser.add_argument('--out', type=Path, help='new folder for the prepared copy (required)')
    parser.add_argument('--verify', type=Path, metavar='DIR',
                        help='check the sha256 of every file of a prepared copy, then exit')
    parser.add_argument('--download', action='store_true',
                        help='fetch the public archive into --src when it is missing')
    parser.add_argument('--sha256', metavar='HEX',
                        help='full sha256 of the archive --download fetches, where the suite '
                        'pins none (it never unpacks an unverified archive)')
    parser.add_argument('--min-size', type=int, default=32, metavar='PX',
                        help='refuse images with a side under PX pixels (default 32, the '
                        'smallest patch a shipped suite cuts)')
    parser.add_argument('--option', action='append', default=[], metavar='KEY=JSON',
                        help='reader option, e.g. --option seed=1 --option \'classes=["a","b"]\'')
    args = parser.parse_args(argv)
    if args.verify is not None:
        return verify_command(args.verify)
    if args.name is None or args.src is None or args.out is None:
        parser.error('NAME, --src and --out are required (or --verify DIR)')
    from matssl_bench.data.prepare import prepare, reader_class
    from matssl_bench.commands.run_benchmark import parse_json_options
    from matssl_bench.suite.schema import check_dataset_cfg
    try:
        cls = reader_class(args.name)  # case-insensitive: metaldam -> MetalDAM
        options = parse_json_options(args.option)
        check_dataset_cfg(f'{cls.__name__} --option', dict(type=cls.__name__, root=str(args.src),
                                                           **options))
    except BenchmarkError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    try:
        manifests = prepare(cls.__name__, args.src, args.out, fetch=args.download, options=options,
                            archive_sha256=args.sha256, min_size=args.min_size)
    except BenchmarkError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('error: interrupted; nothing was written (a rerun clears the partial folder)',
              file=sys.stderr)
        return 130
    for variant, manifest in manifests.items():
        counts = ', '.join(f'{k} {v}' for k, v in manifest['counts'].items())
        patches = manifest['patches']
        print(f'{variant}: {counts}; {patches["size"]}px patches: train {patches["train"]}, '
              f'val {patches["val"]}, test {patches["test"]}, pretraining pool '
              f'{patches["pretrain_pool"]} (overlap {patches["pretrain_overlap"]}); '
              f'{len(manifest["warnings"])} repair warning(s)')
    print(f'written: {args.out}')
    return 0


def verify_command(folder: Path) -> int:
    """--verify: one line per variant; exit status 1 when any file differs from its manifest."""
    from matssl_bench.data.prepare import verify_tree
    try:
        results = verify_tree(folder)
    except BenchmarkError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    for variant, bad in results.items():
        if bad:
            print(f'error: {variant}: {len(bad)} file(s) differ from manifest.json: '
                  f'{", ".join(bad[:10])}', file=sys.stderr)
        else:
            print(f'{variant}: every file matches manifest.json')
    return 1 if any(results.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
