#!/usr/bin/env python
"""Submit a suite to Slurm as job arrays: `python tools/submit_slurm.py --suite paper --partition gpu`."""
import sys

from matssl_bench.commands.submit import main

if __name__ == '__main__':
    sys.exit(main())
