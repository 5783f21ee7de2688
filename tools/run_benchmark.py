#!/usr/bin/env python
"""Run a benchmark suite: `python tools/run_benchmark.py --suite smoke --work-dir DIR`."""
import sys

from matssl_bench.commands.run_benchmark import main

if __name__ == '__main__':
    sys.exit(main())
