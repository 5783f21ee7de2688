"""Fine-tuning time with a resume checkpoint after every epoch against one per interval.

    python benchmarks/perf/resume_interval.py --out results/perf/checkpoints_cpu.json

One job of ``--suite`` (default ``cpu``: random init on the real MetalDAM micrographs at the
CPU scale) is fine-tuned and tested ``--repeats`` times with ``MATSSL_RESUME_EVERY_S=0`` (the
default: a resume checkpoint after every epoch) and with ``--every`` seconds, alternating
in one process, each time in a fresh folder. Reports the median wall times, their ratio and
whether the two settings gave the same training history and test mIoU (they must: the
interval changes what an interruption repeats, not what is computed).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __name__ == '__main__':  # run as a file: keep benchmarks/ itself off the import path
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or '.').resolve()) != _here]

from matssl_bench.engine import stages  # noqa: E402
from matssl_bench.data.sources import build_micrograph_set  # noqa: E402
from matssl_bench.engine.hooks import RESUME_EVERY_ENV  # noqa: E402
from matssl_bench.suite.plan import load_suite  # noqa: E402
from matssl_bench.plugins import load_builtin_plugins  # noqa: E402
from matssl_bench.fileio.atomic import write_json_atomic  # noqa: E402
from matssl_bench.engine.runner import selection_and_metric  # noqa: E402


def timed_job(suite, dataset: str, every: float, run_dir: Path) -> dict:
    """Fine-tune random init on ``dataset`` at the suite's scale and test it; seconds and
    results."""
    os.environ[RESUME_EVERY_ENV] = str(every)
    data = build_micrograph_set(suite.finetune_sets[dataset], suite.protocol)
    selection, metric_cfg = selection_and_metric(data, suite.protocol)
    scale = {**suite.scale.finetune, **suite.get('finetune_scale', {}).get(dataset, {})}
    start = time.perf_counter()
    weights, history = stages.finetune(None, 'random init', data, selection, suite.backbone,
                                       scale, 0, run_dir, metric_cfg=metric_cfg)
    test = stages.evaluate(weights, data, 'test', suite.backbone, scale, metric_cfg)
    return dict(seconds=time.perf_counter() - start, history=history, mIoU=test['mIoU'])


def measure(suite_name: str, dataset: str, every: float, repeats: int) -> dict:
    suite = load_suite(suite_name)
    runs: dict[str, list[dict]] = {'0': [], str(every): []}
    with tempfile.TemporaryDirectory(prefix='matssl-perf-ckpt-') as tmp:
        for rep in range(repeats):
            order = list(runs) if rep % 2 == 0 else list(reversed(runs))  # cancel drift
            for setting in order:
                run_dir = Path(tmp) / f'{setting}-{rep}'
                runs[setting].append(timed_job(suite, dataset, float(setting), run_dir))
                print(f'[perf] rep {rep} {RESUME_EVERY_ENV}={setting}: '
                      f'{runs[setting][-1]["seconds"]:.1f} s', file=sys.stderr)
    os.environ.pop(RESUME_EVERY_ENV, None)
    every_epoch, interval = runs['0'], runs[str(every)]
    median = {k: statistics.median(r['seconds'] for r in v) for k, v in runs.items()}
    return dict(
        suite=suite_name, dataset=dataset, repeats=repeats, interval_s=every,
        every_epoch_s=median['0'], interval_run_s=median[str(every)],
        speedup=median['0'] / median[str(every)],
        seconds=dict((k, [r['seconds'] for r in v]) for k, v in runs.items()),
        same_results=all(a['history'] == b['history'] and a['mIoU'] == b['mIoU']
                         for a, b in zip(every_epoch, interval)),
        test_mIoU=[r['mIoU'] for r in every_epoch],
        load_average_end=list(os.getloadavg()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--suite', default='cpu')
    parser.add_argument('--dataset', default='MetalDAM')
    parser.add_argument('--every', type=float, default=300.0,
                        help='resume-checkpoint interval to compare with every epoch (s)')
    parser.add_argument('--repeats', type=int, default=2)
    args = parser.parse_args(argv)
    load_builtin_plugins()
    result = measure(args.suite, args.dataset, args.every, args.repeats)
    write_json_atomic(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != 'seconds'}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
