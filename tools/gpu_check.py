#!/usr/bin/env python
"""Check the paper recipe's stages on one GPU and a tiny real-data suite; JSON on stdout.
`python tools/gpu_check.py --data DIR` (see --help for what it needs)."""
import sys

from matssl_bench.perf.gpu_check import main

if __name__ == '__main__':
    sys.exit(main())
