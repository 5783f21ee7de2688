#!/usr/bin/env python
"""Convert a foreign checkpoint into the suite's encoder format (torchvision ResNet keys, no fc).

    python tools/convert_checkpoint.py SRC DST [--arch resnet50] [--layout auto] [--copy query]

Layouts: the MatSSL authors' MatSSL/MoCoV2/DenseCL checkpoints, mmselfsup or
mmpretrain checkpoints (``backbone.``), MicroNet and torchvision files; see
benchmarks/models/foreign_checkpoints.py. DST is written atomically.
"""
import argparse
import sys

from matssl_bench.models.foreign_checkpoints import LAYOUTS, convert_checkpoint
from matssl_bench.errors import BenchmarkError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--arch', help='resnet18/34/50/101/152 (default: inferred from the keys)')
    parser.add_argument('--layout', default='auto', choices=['auto', *LAYOUTS])
    parser.add_argument('--copy', default='query', choices=['query', 'momentum'],
                        help='which encoder of a momentum-contrast checkpoint (default: query)')
    args = parser.parse_args()
    try:
        done = convert_checkpoint(args.src, args.dst, args.arch, args.layout, args.copy)
    except (BenchmarkError, OSError, RuntimeError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f'error: interrupted; {args.dst} was not written', file=sys.stderr)
        return 130
    dropped = ', '.join(f'{g} ({n})' for g, n in sorted(done.dropped.items())) or 'nothing'
    print(f'{args.src}: {done.layout} layout, {done.arch} encoder under {done.prefix!r}, '
          f'{len(done.state)} tensors -> {args.dst}; dropped: {dropped}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
