"""`tools/gpu_check.py`: a few steps of every stage of the paper recipe on one GPU, and a tiny
suite on real data, before anyone books GPU time. Prints one JSON object; exit 1 on any error.

What it needs: this checkout with its Python packages installed (``requirements.txt``: torch
with CUDA, mmengine, mmsegmentation, mmselfsup, segmentation-models-pytorch, ...; bring them as
wheels on a machine without internet), and for the real-data suite a small data subset in the
layout of ``docs/datasets.md``, given by ``--data DIR`` or ``MATSSL_DATA``: ``MetalDAM/`` with a
few labelled and unlabelled images, and ``EBC/`` (the cpu suite keeps EBC's test images out of
its pretraining pool, so without it the pretraining job is unavailable and the check fails). Nothing is downloaded: no ImageNet weights are
needed (the stages start from random init; the step time does not depend on the weights).

Stages, each under the paper suite's settings (``benchmarks/suites/paper.py``: ResNet-50, its
batch sizes, patch and crop sizes, loader workers, precision, channels-last), on synthetic
micrographs (a step's time does not depend on the image content):

- ``pretrain``: MatSSL steps (two views, NT-Xent, the suite's optimiser wrapper);
- ``finetune``: U-Net++ training steps (encoder and decoder);
- ``infer``: U-Net++ forward passes over patch batches (validation and test on patches);
- ``sliding_window``: whole-image inference by half-overlapping windows (``clean``);
- ``linear_probe``: training steps of the frozen-encoder linear probe (``--suite frozen``).

Per stage: steps/s and samples/s after ``--warmup`` steps, peak GPU memory, mean GPU
utilisation while stepping (``torch.cuda.utilization``, else ``nvidia-smi``; null when
neither answers), and for the training stages the loader's headroom: patches/s the suite's
loader delivers alone (its workers, as ``stages.py`` builds it) over patches/s the step
consumes (below 1: the GPU waits for data). ``--record`` writes the measured step times
into the table the dry run's GPU-hours come from (``benchmarks/suite/step_times.json``).
Then ``suite``: ``tools/run_benchmark.py --suite cpu`` on the real data for MatSSL and
random init on MetalDAM, one seed, one epoch each (``--tiny`` without ``--data``: the smoke
suite on synthetic data), in a temporary work dir; it must finish and write its table.

``--device cpu --tiny`` runs the same code on the CPU at toy sizes (ResNet-18, 64 px, batch 4):
what the tests use.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = dict(arch='resnet18', patch=64, crop=64, batch=4, eval_batch=4, workers=0, image=128,
            window_image=128)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='gpu_check.py', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', choices=['cuda', 'cpu'], default='cuda',
                   help='cuda (default; fails without a GPU) or cpu (for tests, with --tiny)')
    p.add_argument('--tiny', action='store_true', help='toy sizes (ResNet-18, 64 px, batch 4)')
    p.add_argument('--data', type=Path, help='folder with the real-data subset (default: '
                   'MATSSL_DATA; --tiny without either: the smoke suite on synthetic data)')
    p.add_argument('--steps', type=int, default=10, help='timed steps per stage (default 10)')
    p.add_argument('--warmup', type=int, default=3, help='untimed steps first (default 3)')
    p.add_argument('--skip-suite', action='store_true', help='stages only, no suite run')
    p.add_argument('--record', action='store_true',
                   help="write the step times into the dry run's table for this device")
    p.add_argument('--step-times', type=Path,
                   help='the table --record writes (default benchmarks/suite/step_times.json)')
    p.add_argument('--out', type=Path, help='also write the JSON to this file')
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error('--steps must be >= 1 and --warmup >= 0')
    return args


class UtilisationSampler:
    """Mean GPU utilisation (%) over a block, sampled every 0.1 s; None where unreadable."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.samples: list[float] = []

    @staticmethod
    def read() -> float | None:
        import torch
        with contextlib.suppress(Exception):
            return float(torch.cuda.utilization())
        if shutil.which('nvidia-smi'):
            with contextlib.suppress(Exception):
                out = subprocess.run(['nvidia-smi', '--query-gpu=utilization.gpu',
                                      '--format=csv,noheader,nounits', '-i', '0'],
                                     capture_output=True, text=True, timeout=5).stdout
                return float(out.split()[0])
        return None

    @contextlib.contextmanager
    def sampling(self):
        stop = threading.Event()

        def loop():
            while not stop.wait(0.1):
                value = self.read()
                if value is not None:
                    self.samples.append(value)

        thread = threading.Thread(target=loop, daemon=True) if self.enabled else None
        if thread:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread:
                thread.join()

    def mean(self) -> float | None:
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None


class Stages:
    """The paper suite's stages at its settings (or toy ones), on synthetic micrographs."""

    def __init__(self, args):
        import torch
        from mmengine.device import get_device
        from mmengine.registry import init_default_scope

        from matssl_bench.plugins import load_builtin_plugins
        from matssl_bench.registry import SCOPE, scope_mmengine_registries
        from matssl_bench.suite.plan import build_method, load_suite

        load_builtin_plugins()
        init_default_scope(SCOPE)
        scope_mmengine_registries()
        self.torch = torch
        self.args = args
        self.suite = load_suite('paper')
        self.device = get_device()
        self.cuda = self.device == 'cuda'
        ssl, ft = dict(self.suite.scale.pretrain), dict(self.suite.scale.finetune)
        self.arch = self.suite.backbone
        if args.tiny:
            self.arch = TINY['arch']
            for scale in (ssl, ft):
                scale.update(patch_size=TINY['patch'], batch_size=TINY['batch'],
                             num_workers=TINY['workers'])
            ssl['crop_size'] = TINY['crop']
            ft['eval_batch_size'] = TINY['eval_batch']
        self.ssl, self.ft = ssl, ft
        self.method = build_method(self.suite, 'MatSSL')
        self.sampler = UtilisationSampler(self.cuda)

    def settings(self) -> dict:
        from matssl_bench.suite.precision import resolve_precision
        return dict(arch=self.arch, device=self.device_name(), tiny=self.args.tiny,
                    steps=self.args.steps, warmup=self.args.warmup,
                    pretrain={k: self.ssl.get(k) for k in ('batch_size', 'patch_size',
                              'crop_size', 'num_workers')},
                    finetune={k: self.ft.get(k) for k in ('batch_size', 'patch_size',
                              'eval_batch_size', 'num_workers', 'channels_last')},
                    precision=dict(pretrain=resolve_precision(self.ssl.get('precision')),
                                   finetune=resolve_precision(self.ft.get('precision'))))

    def device_name(self) -> str:
        if self.cuda:
            return self.torch.cuda.get_device_name(0)
        from matssl_bench.perf.measure import machine_info
        return f'cpu: {machine_info()["cpu"]}'

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    # -- data ------------------------------------------------------------------------------
    def images(self, side: int, batch: int) -> tuple[list, list, int]:
        """(labeled, unlabeled items, classes): four synthetic micrographs of ``side`` px tiled
        into images that hold two batches of ``side`` px patches (large synthetic images
        cost too much memory to draw; the step time does not depend on the content)."""
        from matssl_bench.data_api import LabeledImage, UnlabeledImage
        from matssl_bench.datasets.synthetic import SyntheticMicrographs
        import numpy as np
        data = SyntheticMicrographs(size=side, train=4, val=1, test=1, unlabeled=0)
        tiles = -(-2 * batch // 4)
        reps = max(1, int(tiles ** 0.5 + 0.999))
        labeled = [LabeledImage(item.name, np.tile(item.image, (reps, reps, 1)),
                                np.tile(item.mask, (reps, reps)))
                   for item in data.labeled_split('train')]
        return labeled, [UnlabeledImage(i.name, i.image) for i in labeled], data.num_classes

    def loader(self, dataset, batch: int, workers: int):
        from mmengine.runner import Runner
        from matssl_bench.engine import stages
        return Runner.build_dataloader(stages.dataloader_cfg(dataset, batch, workers, True, True),
                                       seed=0)

    def pretrain_set(self):
        from matssl_bench.data.patches import TwoViewPatches
        side = self.ssl['patch_size']
        _, pool, _ = self.images(side, self.ssl['batch_size'])
        return TwoViewPatches(pool, side, 0.0,
                              self.method.view_transform(self.ssl.get('crop_size', side)))

    def finetune_set(self):
        from matssl_bench.data.patches import SegmentationPatches
        side = self.ft['patch_size']
        labeled, _, classes = self.images(side, self.ft['batch_size'])
        return SegmentationPatches(labeled, side), classes

    # -- timing ----------------------------------------------------------------------------
    def time_steps(self, step, batches: list) -> tuple[float, dict]:
        """Seconds per step over ``--steps`` steps (cycling ``batches``) after the warm-up."""
        torch = self.torch
        for i in range(self.args.warmup):
            step(batches[i % len(batches)])
        self.sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        self.sampler.samples = []
        with self.sampler.sampling():
            t0 = time.perf_counter()
            for i in range(self.args.steps):
                step(batches[i % len(batches)])
            self.sync()
            seconds = (time.perf_counter() - t0) / self.args.steps
        extra = dict(gpu_utilisation_pct=self.sampler.mean())
        if self.cuda:
            extra['peak_memory_gb'] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
        return seconds, extra

    def loader_rate(self, loader, batches: int) -> tuple[float, list]:
        """Patches/s the loader delivers (after its first batch) and the batches it gave."""
        it = iter(loader)
        got = [next(it)]
        t0, n = time.perf_counter(), 0
        for _ in range(batches - 1):
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                batch = next(it)
            got.append(batch)
            n += len(batch['data_samples']['index'])
        return n / (time.perf_counter() - t0), got

    def training_stage(self, model, wrapper_cfg: dict, dataset, scale: dict) -> dict:
        from mmengine.optim import build_optim_wrapper
        model.to(self.device).train()
        wrapper = build_optim_wrapper(model, wrapper_cfg)
        batch = min(scale['batch_size'], len(dataset))
        loader = self.loader(dataset, batch, scale.get('num_workers', 0))
        delivered, batches = self.loader_rate(loader, max(3, min(self.args.steps, 8)))
        seconds, extra = self.time_steps(
            lambda b: model.train_step(b, optim_wrapper=wrapper)['loss'], batches)
        consumed = batch / seconds
        return dict(steps_per_s=round(1 / seconds, 3), samples_per_s=round(consumed, 1),
                    s_per_sample=seconds / batch, batch_size=batch,
                    loader_patches_per_s=round(delivered, 1),
                    loader_headroom=round(delivered / consumed, 2), **extra)

    # -- the stages ------------------------------------------------------------------------
    def pretrain(self) -> dict:
        from matssl_bench.engine import stages
        dataset = self.pretrain_set()
        batch = min(self.ssl['batch_size'], len(dataset))
        model = self.method.build_model(self.arch, None)
        out = self.training_stage(model, stages.pretrain_optim_wrapper(self.method, batch,
                                                                       self.ssl),
                                  dataset, self.ssl)
        return dict(out, side=self.ssl.get('crop_size') or self.ssl['patch_size'])

    def finetune(self, scale_extra: dict | None = None) -> dict:
        from matssl_bench.engine import stages
        scale = dict(self.ft, **(scale_extra or {}))
        dataset, classes = self.finetune_set()
        model = stages.build_segmenter(self.arch, classes, scale)
        out = self.training_stage(model, stages.finetune_optim_wrapper(scale), dataset, scale)
        return dict(out, side=scale['patch_size'])

    def linear_probe(self) -> dict:
        return self.finetune(dict(encoder_mode='linear-probe'))

    def _eval_model(self):
        from matssl_bench.engine import stages
        from matssl_bench.suite.precision import resolve_precision
        model = stages.build_segmenter(self.arch, 5, self.ft).to(self.device).eval()
        return model, resolve_precision(self.ft.get('precision'))

    def infer(self) -> dict:
        torch = self.torch
        model, _ = self._eval_model()
        side, batch = self.ft['patch_size'], self.ft.get('eval_batch_size') or 8
        x = torch.rand(batch, 3, side, side, device=self.device)

        def step(_):
            with torch.no_grad():
                return model.logits(x)
        seconds, extra = self.time_steps(step, [None])
        return dict(steps_per_s=round(1 / seconds, 3), samples_per_s=round(batch / seconds, 1),
                    s_per_sample=seconds / batch, batch_size=batch, side=side, **extra)

    def sliding_window(self) -> dict:
        import numpy as np
        from matssl_bench.evaluation.sliding_window import (default_stride, model_logits_fn,
                                                            slide_logits)
        model, _ = self._eval_model()
        window = self.ft['patch_size']
        side = TINY['window_image'] if self.args.tiny else 1024
        image = np.random.default_rng(0).integers(0, 256, (side, side, 3), np.uint8)
        stride = default_stride(window, self.ft.get('eval_stride'))
        logits_fn = model_logits_fn(model)
        batch = self.ft.get('eval_batch_size') or self.ft['batch_size']
        seconds, extra = self.time_steps(
            lambda _: slide_logits(logits_fn, image, window, stride, batch), [None])
        return dict(images_per_s=round(1 / seconds, 3),
                    s_per_megapixel=seconds / (side * side / 1e6), image_side=side,
                    side=window, stride=stride, **extra)


def run_suite(args, work: Path) -> dict:
    """A tiny suite through tools/run_benchmark.py; its table must be written."""
    data = args.data or (Path(os.environ['MATSSL_DATA']) if os.environ.get('MATSSL_DATA')
                         else None)
    env = dict(os.environ)
    if data is not None:
        env['MATSSL_DATA'] = str(data.resolve())
        cmd = ['--suite', 'cpu', '--datasets', 'MetalDAM', '--methods', 'MatSSL', 'RandomInit',
               '--seeds', '0', '--cfg-options', 'scale.pretrain.epochs=1',
               'scale.finetune.epochs=1']
    elif args.tiny:
        cmd = ['--suite', 'smoke', '--methods', 'MatSSL', 'RandomInit', '--cfg-options',
               'scale.pretrain.epochs=1', 'scale.finetune.epochs=1',
               'finetune_sets.synthetic.train=4', 'pretrain_sets.synthetic.0.unlabeled=8']
    else:
        raise RuntimeError('the real-data suite needs --data DIR or MATSSL_DATA (a small '
                           'subset of MetalDAM in the layout of docs/datasets.md)')
    if args.device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    t0 = time.perf_counter()
    # the module's main, so that an installed (non-editable) copy runs it too
    runner = 'import sys; from matssl_bench.commands.run_benchmark import main; sys.exit(main())'
    done = subprocess.run([sys.executable, '-c', runner, *cmd,
                           '--work-dir', str(work)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f'run_benchmark.py exited {done.returncode}: '
                           f'{" ".join(done.stderr.split()[-60:])}')
    table = work / 'tables' / 'table4.csv'
    if not table.is_file():
        raise RuntimeError(f'the suite wrote no {table}')
    records = [json.loads(p.read_text()) for p in sorted(work.glob('records/*/*.json'))]
    failed = [r for r in records if r.get('status') != 'finished']
    if failed or not records:  # every job must have run: a blocked or unavailable one is a failure
        raise RuntimeError(f'{len(failed)} of {len(records)} jobs did not finish, e.g. '
                           f'{failed[0].get("stage")} {failed[0].get("method")}: '
                           f'{failed[0].get("reason")}' if failed else 'the suite wrote no record')
    return dict(command=cmd, wall_s=round(time.perf_counter() - t0, 1),
                rows=table.read_text().count('\n') - 1, summary=done.stdout.strip().splitlines()[-1])


def record(stages_out: dict, device: str, arch: str, settings: dict, path: Path | None) -> Path:
    from matssl_bench.perf.step_times import record_step_times
    return record_step_times(stages_out, device, arch, settings, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # library logs on stderr, the JSON alone on stdout
        result = check_all(args)
    return _finish(result, args, out)


def check_all(args) -> dict:
    result: dict = dict(ok=False, errors=[], stages={},
                        date=datetime.datetime.now(datetime.timezone.utc).isoformat(
                            timespec='seconds'))
    try:
        import torch
        if args.device == 'cuda' and not torch.cuda.is_available():
            raise RuntimeError('no CUDA device visible (use --device cpu --tiny to test on CPU)')
        if args.device == 'cuda':
            from matssl_bench.perf.scaling import matmul_peak_flops  # noqa: F401 (import check)
        check = Stages(args)
        result['settings'] = check.settings()
        from matssl_bench.perf.measure import machine_info
        result['machine'] = machine_info()
    except Exception as err:  # noqa: BLE001 - every failure goes into the JSON
        result['errors'].append(dict(stage='setup', error=f'{type(err).__name__}: {err}',
                                     traceback=traceback.format_exc()[-3000:]))
        return result
    for name in ('pretrain', 'finetune', 'infer', 'sliding_window', 'linear_probe'):
        t0 = time.perf_counter()
        try:
            result['stages'][name] = dict(getattr(check, name)(),
                                          wall_s=round(time.perf_counter() - t0, 1))
            print(f'[gpu_check] {name}: {json.dumps(result["stages"][name])}', file=sys.stderr)
            if args.out:  # what was measured survives a later crash or time-out
                from matssl_bench.fileio.atomic import write_json_atomic
                write_json_atomic(args.out, dict(result, ok=None))
        except Exception as err:  # noqa: BLE001
            result['errors'].append(dict(stage=name, error=f'{type(err).__name__}: {err}',
                                         traceback=traceback.format_exc()[-3000:]))
        finally:
            if check.cuda:
                torch.cuda.empty_cache()
    heads = [s['loader_headroom'] for k, s in result['stages'].items()
             if k in ('pretrain', 'finetune') and 'loader_headroom' in s]
    result['loader_headroom'] = min(heads) if heads else None
    if not args.skip_suite:
        with tempfile.TemporaryDirectory(prefix='matssl-gpu-check-') as tmp:
            try:
                result['suite'] = run_suite(args, Path(tmp) / 'work')
            except Exception as err:  # noqa: BLE001
                result['errors'].append(dict(stage='suite', error=f'{type(err).__name__}: {err}'))
    if args.record and not result['errors']:
        path = record(result['stages'], check.device_name(), check.arch, result['settings'],
                      args.step_times)
        result['recorded_in'] = str(path)
    return result


def _finish(result: dict, args, out) -> int:
    result['ok'] = not result['errors']
    text = json.dumps(result, indent=2, default=str)
    print(text, file=out)
    if args.out:
        from matssl_bench.fileio.atomic import write_json_atomic
        write_json_atomic(args.out, result)
    return 0 if result['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
