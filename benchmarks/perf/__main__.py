"""``python -m matssl_bench.perf`` or ``python benchmarks/perf``: the suite's performance figures
(see :mod:`matssl_bench.perf.measure`)."""
import sys
from pathlib import Path

if __package__ in (None, ''):  # run as a folder: keep benchmarks/perf itself off the import path
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or '.').resolve()) != _here]

from matssl_bench.perf.measure import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
