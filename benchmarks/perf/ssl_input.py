"""Can the SSL input pipeline feed the paper's ResNet-50 pretraining step? Loader headroom
with views made in loader workers (CPU) and on the training device (``views='device'``).

    python benchmarks/perf/ssl_input.py --out ssl_input.json [--workers 8 --steps 20]

Defaults: the paper suite's pretraining scale (MatSSL, ResNet-50, 256 px patches, 224 px
crops, batch 128, precision ``auto`` = bf16 where native, channels-last) on random uint8
micrographs (views cost the same on any content). Figures (images/s; one image = one patch
= two views):

- ``step_images_per_s``: the suite's training step (model, optimiser wrapper, ``train_step``
  as ``stages.pretrain`` builds them) on batches already in memory; with device views it
  includes making the views on the device.
- ``loader_images_per_s``: the suite's loader alone (``stages.dataloader_cfg``: workers,
  pinned memory) delivering batches, moved to the device for device views.
- ``headroom``: loader over step (>= 1: the loader keeps the step fed), per view place.
- ``cpu_ms_per_view``: one worker's time for one torchvision view (single-threaded).
- ``device_view_ms``: milliseconds per batch of each step of the device views (kornia) on
  the training device, and of the whole sequence (one view of the batch).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __name__ == '__main__':  # run as a file: keep benchmarks/ itself off the import path
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or '.').resolve()) != _here]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.device import get_device  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import Runner, set_random_seed  # noqa: E402

from matssl_bench.data.patches import resize_items  # noqa: E402
from matssl_bench.data_api import UnlabeledImage  # noqa: E402
from matssl_bench.engine import stages  # noqa: E402
from matssl_bench.fileio.atomic import write_json_atomic  # noqa: E402
from matssl_bench.plugins import load_builtin_plugins  # noqa: E402
from matssl_bench.registry import SCOPE  # noqa: E402
from matssl_bench.suite.plan import build_method, load_suite  # noqa: E402
from matssl_bench.suite.precision import resolve_precision  # noqa: E402


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def random_pool(images: int, side: int, seed: int = 0) -> list[UnlabeledImage]:
    rng = np.random.default_rng(seed)
    return [UnlabeledImage(f'random{i}', rng.integers(0, 256, (side, side, 3), np.uint8), None)
            for i in range(images)]


def _loader(dataset, scale: dict, batch: int, workers: int):
    return Runner.build_dataloader(stages.dataloader_cfg(dataset, batch, workers, True, True),
                                   seed=0)


def loader_rate(loader, batches: int, device: str, to_device: bool) -> float:
    """Images/s the loader delivers (after one warm-up batch), moved to ``device`` if asked."""
    def forever():
        while True:
            yield from loader

    it = forever()
    next(it)
    _sync()
    t0, n = time.perf_counter(), 0
    for _ in range(batches):
        batch = next(it)
        if to_device:
            inputs = batch['inputs']
            for tensor in inputs if isinstance(inputs, list) else [inputs]:
                tensor.to(device, non_blocking=True)
        n += len(batch['data_samples']['index'])
    _sync()
    return n / (time.perf_counter() - t0)


def step_rate(method, arch: str, scale: dict, pool, batch: int, steps: int) -> float:
    """Images/s of the suite's SSL training step on batches already loaded (views included
    where they are made on the device)."""
    init_default_scope(SCOPE)
    set_random_seed(0, deterministic=True)
    model = method.build_model(arch, None)
    dataset, model = stages.ssl_inputs(method, model, scale, pool)
    model.to(get_device()).train()
    wrapper = build_optim_wrapper(model, stages.pretrain_optim_wrapper(method, batch, scale))
    loader = _loader(dataset, scale, batch, 0)
    first = next(iter(loader))
    for _ in range(3):  # warm-up: cuDNN, autocast caches
        model.train_step(first, optim_wrapper=wrapper)
    _sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_step(first, optim_wrapper=wrapper)
    _sync()
    return steps * batch / (time.perf_counter() - t0)


def cpu_ms_per_view(method, crop: int, patch: int, views: int = 40) -> float:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        transform = method.view_transform(crop)
        patch_t = torch.randint(0, 256, (3, patch, patch), dtype=torch.uint8)
        transform(patch_t)
        t0 = time.perf_counter()
        for _ in range(views):
            transform(patch_t)
        return 1000 * (time.perf_counter() - t0) / views
    finally:
        torch.set_num_threads(threads)


def device_view_ms(method, crop: int, patch: int, batch: int, reps: int = 5) -> dict:
    """Milliseconds per batch of each step of ``method.batch_views`` on this device."""
    device = get_device()
    views = method.batch_views(crop).to(device)
    images = torch.rand(batch, 3, patch, patch, device=device)

    def timed(fn) -> float:
        fn()
        _sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        _sync()
        return 1000 * (time.perf_counter() - t0) / reps

    out, current = {}, images
    with torch.no_grad():
        for i, step in enumerate(views.children()):
            given = current
            out[f'{i}:{type(step).__name__}'] = timed(lambda: step(given))
            current = step(given)
        out['whole'] = timed(lambda: views(images))
    return out


def measure(args) -> dict:
    load_builtin_plugins()
    suite = load_suite(args.suite)
    scale = dict(suite.scale.pretrain, num_workers=args.workers, channels_last=True,
                 precision=args.precision)
    batch, crop = args.batch or scale['batch_size'], scale.get('crop_size', scale['patch_size'])
    method = build_method(suite, args.method)
    arch = args.arch or suite.backbone
    pool = resize_items(random_pool(args.images, args.image_side), factor=scale.get('rescale'))
    device = get_device()
    out = dict(device=device, gpu=torch.cuda.get_device_name() if torch.cuda.is_available()
               else None, cpu_count=len(__import__('os').sched_getaffinity(0)),
               torch=torch.__version__, arch=arch, method=args.method, batch=batch,
               patch=scale['patch_size'], crop=crop, workers=args.workers,
               precision=resolve_precision(args.precision),
               cpu_ms_per_view=cpu_ms_per_view(method, crop, scale['patch_size']),
               device_view_ms=device_view_ms(method, crop, scale['patch_size'], batch))
    for place in ('device', 'workers'):
        place_scale = dict(scale, views=place)
        steps = step_rate(method, arch, place_scale, pool, batch, args.steps)
        dataset, _ = stages.ssl_inputs(method, method.build_model(arch, None), place_scale, pool)
        delivered = loader_rate(_loader(dataset, place_scale, batch, args.workers),
                                args.loader_batches, device, to_device=True)
        out.setdefault('views', {})[place] = dict(
            step_images_per_s=steps, loader_images_per_s=delivered, headroom=delivered / steps)
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', type=Path, required=True, help='JSON file to write')
    p.add_argument('--suite', default='paper', help='suite whose pretraining scale is used')
    p.add_argument('--method', default='MatSSL')
    p.add_argument('--arch', default=None, help='encoder (default: the suite backbone)')
    p.add_argument('--batch', type=int, default=None, help='default: the suite batch')
    p.add_argument('--precision', default='auto')
    p.add_argument('--workers', type=int, default=8)
    p.add_argument('--steps', type=int, default=20, help='timed training steps')
    p.add_argument('--loader-batches', type=int, default=20, help='timed loader batches')
    p.add_argument('--images', type=int, default=64, help='random micrographs in the pool')
    p.add_argument('--image-side', type=int, default=1024)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    result = measure(args)
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
