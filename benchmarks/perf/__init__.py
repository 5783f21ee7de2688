"""Performance measurements (python -m matssl_bench.perf.measure)."""
