#!/usr/bin/env python
"""Download and verify the weight files suites name: `python tools/fetch_weights.py [--suite paper] [--dir DIR] [--list|--verify]`."""
import sys

from matssl_bench.commands.fetch_weights import main

if __name__ == '__main__':
    sys.exit(main())
