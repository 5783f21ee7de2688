"""How close the suite runs to the machine's limit, and how its cost grows with work.

Used by ``benchmarks/perf/measure.py``:

- :func:`matmul_peak_flops`: FLOP/s of a large square matrix multiply at a precision, measured
  in the same run (the machine's practical limit for convolution-heavy models);
- :func:`step_flops`: FLOPs of one training step counted by ``torch.utils.flop_counter``
  (forward and backward of every matmul and convolution);
- :func:`fit_exponent`: the exponent ``b`` of ``time ~ a * size ** b`` fitted on log-log axes
  (``scipy.stats.linregress``); ~1.0 means cost grows linearly with work;
- :func:`time_prepare_data`: wall time of ``tools/prepare_data.py`` on a Folder set of N images.
"""
from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from scipy import stats
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[2]
DTYPES = dict(fp32=torch.float32, bf16=torch.bfloat16, fp16=torch.float16)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def matmul_peak_flops(precision: str = 'fp32', size: int = 1024, repeats: int = 5,
                      device: str | None = None) -> float:
    """Best FLOP/s of ``size x size`` matrix products at ``precision`` over ``repeats`` timings."""
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    a = torch.randn(size, size, device=device, dtype=DTYPES[precision])
    b = torch.randn(size, size, device=device, dtype=DTYPES[precision])
    torch.mm(a, b)  # warm the kernel and its workspace
    best = float('inf')
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        torch.mm(a, b)
        _sync()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best


def step_flops(step: Callable[[dict], object], batch: dict) -> int:
    """FLOPs of one call of ``step(batch)`` (forward, backward and what else it runs)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step(batch)
    return int(counter.get_total_flops())


def compute_efficiency(step: Callable[[dict], object], batch: dict, steps_per_s: float,
                       precision: str, peak: float) -> dict:
    """Achieved model FLOP/s of a step at ``steps_per_s`` over the matmul peak at its precision.

    ``precision`` is the one the step runs under ('auto' must be resolved first); mixed
    precision compares against the peak (``matmul_peak_flops``) of its low-precision dtype.
    """
    flops = step_flops(step, batch)
    achieved = flops * steps_per_s
    return dict(flops_per_step=flops, achieved_flops_per_s=achieved, peak_flops_per_s=peak,
                peak_precision=precision, efficiency=achieved / peak)


def fit_exponent(sizes: Sequence[float], seconds: Sequence[float]) -> dict:
    """Exponent of ``seconds ~ sizes ** b`` by least squares on logs, with its standard error."""
    if len(sizes) < 3 or len(set(sizes)) < 3:
        raise ValueError('an exponent needs at least three distinct sizes')
    fit = stats.linregress(np.log(np.asarray(sizes, float)), np.log(np.asarray(seconds, float)))
    return dict(exponent=float(fit.slope), stderr=float(fit.stderr),
                sizes=[float(s) for s in sizes], seconds=[float(s) for s in seconds])


def best_time(fn: Callable[[], object], repeats: int = 3) -> float:
    """The shortest of ``repeats`` wall times of ``fn()`` (the least disturbed by other load)."""
    best = float('inf')
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        best = min(best, time.perf_counter() - start)
    return best


def write_folder_set(root: Path, count: int, size: int = 128, seed: int = 0) -> Path:
    """A Folder data set of ``count`` synthetic micrographs with masks (PNG) under ``root``."""
    from matssl_bench.datasets.synthetic import generate_micrograph
    from matssl_bench.data.image_io import write_png

    rng = np.random.default_rng(seed)
    for sub in ('images', 'masks'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image, mask = generate_micrograph(rng, size)
        write_png(root / 'images' / f'img{i:04d}.png', image)
        write_png(root / 'masks' / f'img{i:04d}.png', mask)
    return root


def time_prepare_data(count: int, size: int = 128, repeats: int = 1) -> float:
    """Best wall time of ``prepare('Folder', ...)`` (what ``tools/prepare_data.py`` runs) over
    ``count`` images; in-process, so interpreter start-up does not flatten the exponent."""
    from matssl_bench.data.prepare import prepare

    with tempfile.TemporaryDirectory(prefix='matssl-perf-prep-') as tmp:
        src = write_folder_set(Path(tmp) / 'src', count, size)
        classes = ['matrix', 'second phase', 'boundary', 'pore']

        def run_once(rep=iter(range(repeats + 1))):
            prepare('Folder', src, Path(tmp) / f'out{next(rep)}', options=dict(classes=classes))
        return best_time(run_once, repeats)


@contextlib.contextmanager
def threads(count: int | None):
    """Run a block with ``count`` torch threads (unchanged when None)."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- planning and tabulating at thousands of jobs -------------------------------------------

MANY_JOBS_SUITE = '''
description = 'perf: many cached fine-tuning jobs'
protocol = 'clean'
seeds = list(range({seeds}))
backbone = 'resnet18'
finetune_sets = {{f'set{{i:03d}}': dict(type='SyntheticMicrographs', size=32, train=2, val=1,
                                      test={test_images}, seed=i) for i in range({sets})}}
pretrain_sets = dict()
rows = [dict(finetune=name, method='RandomInit') for name in finetune_sets]
scale = dict(
    pretrain=dict(epochs=1, batch_size=8, patch_size=32),
    finetune=dict(epochs=1, batch_size=8, patch_size=32),
)
'''


def _finished_record(runner, job, test_images: int, rng: np.random.Generator) -> dict:
    """A record as the runner writes it for a finished fine-tuning job, with per-image areas
    of ``test_images`` 32x32 test images (random but consistent: union = pred + gt - inter)."""
    classes = ['matrix', 'second phase', 'grain boundary', 'pore']
    images = []
    for i in range(test_images):
        gt = rng.multinomial(1024, [0.4, 0.3, 0.2, 0.1])
        pred = rng.multinomial(1024, [0.4, 0.3, 0.2, 0.1])
        inter = np.minimum(gt, pred) - rng.integers(0, 20, 4).clip(0, np.minimum(gt, pred))
        images.append(dict(name=f'{job.dataset}/test-{i}', height=32, width=32,
                           intersection=inter.tolist(), union=(gt + pred - inter).tolist(),
                           pred_area=pred.tolist(), gt_area=gt.tolist()))
    metric = dict(num_classes=4, class_names=classes, convention='clean')
    test = dict(mIoU=float(np.mean([sum(im['intersection'][c] for im in images)
                                    / sum(im['union'][c] for im in images) for c in range(4)])
                           * 100), images=images)
    return dict(runner._base_record(job), status='finished', selection_split='val',
                metric=metric, test=test, test_last=test, history=[], precision='fp32',
                dataset_meta=dict(classes=classes), weights=f'runs/finetune/{job.key}/best.pth',
                wall_time_s=1.0)


def planning_overhead(jobs: int = 5000, test_images: int = 8, seed: int = 0) -> dict:
    """Seconds to plan and skip a suite of ``jobs`` fine-tuning jobs whose records all exist
    (load, validate, expand, read every record), and to build every table from those records
    (``make_report`` without figures' previews: there are no ``runs/``)."""
    from matssl_bench.suite.plan import expand, load_suite
    from matssl_bench.report.build import make_report
    from matssl_bench.engine.runner import SuiteRunner

    seeds = 100
    sets = -(-jobs // seeds)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix='matssl-perf-plan-') as tmp:
        suite_path = Path(tmp) / 'many.py'
        suite_path.write_text(MANY_JOBS_SUITE.format(seeds=seeds, sets=sets,
                                                     test_images=test_images))
        work = Path(tmp) / 'work'
        suite = load_suite(str(suite_path))
        all_jobs = expand(suite)[:jobs]
        runner = SuiteRunner(suite, work)
        for job in all_jobs:
            runner.store.put(job.stage, job.key, _finished_record(runner, job, test_images, rng))

        start = time.perf_counter()
        suite = load_suite(str(suite_path))
        planned = expand(suite)[:jobs]
        outcomes = SuiteRunner(suite, work).run(planned)
        plan_s = time.perf_counter() - start
        skipped = sum(o.status == 'cached' for o in outcomes)
        if skipped != jobs:
            raise RuntimeError(f'{jobs - skipped} of {jobs} jobs were not skipped as cached')

        start = time.perf_counter()
        written = make_report(work)
        tables_s = time.perf_counter() - start
    return dict(jobs=jobs, test_images_per_record=test_images, plan_s=plan_s,
                tables_s=tables_s, tables_written=sorted(written))
