"""Performance of the suite's training loops against bare PyTorch loops, in one run on one machine.

    python benchmarks/perf/measure.py --out perf.json [--repeats 3 --warmup 1 --with-smoke]

Figures (each the median over ``--repeats`` repetitions after ``--warmup`` discarded ones;
the suite and the bare loop of a repetition run back to back, alternating which goes first):

- ``runner_overhead_ratio``: steady-state fine-tuning steps/s of ``stages.finetune`` (mmengine
  Runner, the suite's hooks, validation each epoch) over a bare PyTorch loop training the same
  U-Net++ on the same patches, batch and optimiser (1.0 = no overhead).
- ``ssl_step_ratio``: the same for MatSSL pretraining (``stages.pretrain``) against a
  straightforward loop: both views through ``MatSSLModel.embed``, NT-Xent, SGD, per-step cosine LR.
- ``finetune.runner_loop_ratio``, ``pretrain.runner_loop_ratio``: the suite's steps/s over a bare
  loop calling the suite's own step (same model, optimiser wrapper, precision and
  ``train_step``): what mmengine's Runner loop and the suite's hooks alone cost (1.0 = nothing).
- ``loader_headroom``: patches/s the suite's data loaders deliver on their own (built as
  stages.py builds them) over patches/s the suite's training step (its model, optimiser
  wrapper and ``train_step``) consumes on batches already loaded; the smaller of fine-tuning
  and pretraining.
- ``finetune_peak_rss_mb``: peak RSS of one ``stages.finetune`` run in a fresh process.
- ``smoke_wall_s`` (``--with-smoke``): wall time of ``tools/run_benchmark.py --suite smoke``.

What differs: the suite runs as its suites configure it (here the smoke suite's scale):
channels-last U-Net++, fused optimiser updates, and the precision of each stage's ``scale``
(the smoke suite pretrains under bf16 autocast where the device has native bf16). The bare
loops are what one writes first: float32, contiguous tensors, torch's default optimiser
implementation. ``settings`` records both.

Steady state: a run's steps/s counts epochs after the first only, each timed from the start
of the epoch (loader iterator creation included) to the end of its last step; the work
between epochs (validation, checkpoints) is reported separately. CUDA is synchronised at those
two points only. The bare fine-tuning loop uses the suite's sampler order, so it trains the
same values up to the rounding of channels-last convolutions and the fused update
(``finetune.max_loss_difference`` checks it). Data: the embedded synthetic micrographs;
scale: the smoke suite's. On a CPU shared with other jobs, ``--threads 1`` avoids the large
stalls of OpenMP threads waiting for each other.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __name__ == '__main__':  # run as a file: keep benchmarks/ itself off the import path
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or '.').resolve()) != _here]

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmengine.device import get_device
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, set_random_seed
from torch.utils.data import DataLoader

from matssl_bench.perf import scaling as perf_scale
from matssl_bench.engine import stages
from matssl_bench.data.patches import SegmentationPatches, TwoViewPatches, resize_items
from matssl_bench.models.losses import nt_xent
from matssl_bench.suite.plan import build_method, load_suite
from matssl_bench.plugins import load_builtin_plugins
from matssl_bench.suite.precision import resolve_precision
from matssl_bench.fileio.atomic import write_json_atomic
from matssl_bench.registry import SCOPE
from matssl_bench.engine.runner import selection_and_metric

REPO = Path(__file__).resolve().parents[2]
TARGETS = dict(runner_overhead_ratio=0.95, ssl_step_ratio=1.0, loader_headroom=2.0)
# upper bounds in seconds (issue 25; issue 14 had 10 and 30), met when at most the bound
TIME_LIMITS = dict(plan_5000_s=2.0, tables_5000_s=10.0)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class EpochTimer(Hook):
    """Times each training epoch from its start to the end of its last step (runs first)."""

    priority = 'HIGHEST'

    def __init__(self):
        self.epochs: list[tuple[int, float]] = []   # (steps, seconds)
        self.boundaries: list[float] = []           # seconds between epochs (val, checkpoints)
        self._end = None

    def before_train_epoch(self, runner) -> None:
        _sync()
        self._t0 = time.perf_counter()
        if self._end is not None:
            self.boundaries.append(self._t0 - self._end)
        self._steps = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._steps += 1

    def after_train_epoch(self, runner) -> None:
        _sync()
        self._end = time.perf_counter()
        self.epochs.append((self._steps, self._end - self._t0))


def steady_rate(epochs: list[tuple[int, float]]) -> float:
    """Steps per second over every epoch but the first."""
    timed = epochs[1:]
    if not timed:
        raise ValueError('steady-state timing needs at least 2 epochs')
    return sum(n for n, _ in timed) / sum(s for _, s in timed)


@contextlib.contextmanager
def timed_runner(timer: EpochTimer):
    """Make stages.py's Runner register ``timer``; stages.py itself runs unchanged."""
    class TimedRunner(Runner):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.register_hook(timer)

    original, stages.Runner = stages.Runner, TimedRunner
    try:
        yield
    finally:
        stages.Runner = original


def bare_loop(loader, step, epochs: int) -> tuple[list[tuple[int, float]], list[float]]:
    """Run ``step(batch)`` over ``loader`` for ``epochs``; time epochs as EpochTimer does.
    Also returns each epoch's mean loss, averaged as RunStateHook does (after the timing)."""
    times, mean_losses = [], []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # as DistSamplerSeedHook does
        losses = []
        _sync()
        t0 = time.perf_counter()
        for batch in loader:
            losses.append(step(batch))
        _sync()
        times.append((len(losses), time.perf_counter() - t0))
        mean_losses.append(sum(float(v) for v in losses) / len(losses))
    return times, mean_losses


def loader_rate(loader, epochs: int) -> tuple[float, list]:
    """Patches/s a loader delivers alone (epochs after the first) and its last epoch's batches."""
    times, batches = [], []
    for _ in range(epochs):
        batches, t0, n = [], time.perf_counter(), 0
        for batch in loader:
            batches.append(batch)
            n += len(batch['data_samples']['index'])
        times.append((n, time.perf_counter() - t0))
    return steady_rate(times), batches


def compute_rate(step, batches: list, batch_size: int) -> float:
    """Patches/s the training step consumes from batches already in memory."""
    _sync()
    t0 = time.perf_counter()
    for batch in batches:
        step(batch)
    _sync()
    return len(batches) * batch_size / (time.perf_counter() - t0)


def _plain_loader(dataset, batch: int, workers: int, drop_last: bool, seed: int) -> DataLoader:
    """A plain DataLoader; its sampler gives the suite's sample order, so both loops compute
    the same values (on CPU the speed of Adam's updates depends on them: denormals)."""
    return DataLoader(dataset, batch_size=batch, drop_last=drop_last,
                      sampler=DefaultSampler(dataset, shuffle=True, seed=seed),
                      num_workers=workers, persistent_workers=workers > 0)


class Workloads:
    """The smoke suite's MatSSL pretraining and fine-tuning, with command-line overrides."""

    def __init__(self, args):
        from matssl_bench.datasets.synthetic import SyntheticMicrographs
        self.suite = load_suite('smoke')
        self.arch = args.arch or self.suite.backbone
        self.seed = args.seed
        self.device = get_device()
        ft, ssl = dict(self.suite.scale.finetune), dict(self.suite.scale.pretrain)
        for scale, batch, epochs in ((ft, args.ft_batch, args.ft_epochs),
                                     (ssl, args.ssl_batch, args.ssl_epochs)):
            if args.patch:
                scale['patch_size'] = args.patch
            if batch:
                scale['batch_size'] = batch
            if args.num_workers is not None:
                scale['num_workers'] = args.num_workers
            if args.precision:
                scale['precision'] = args.precision
            scale['epochs'] = epochs
        if args.patch:
            ssl['crop_size'] = args.patch
        self.ft, self.ssl = ft, ssl
        self.data = SyntheticMicrographs(size=args.image_size, train=args.train_images,
                                         val=args.val_images, test=1,
                                         unlabeled=args.ssl_images)
        self.selection, self.metric_cfg = selection_and_metric(self.data, 'clean')
        self.pool = self.data.unlabeled_pool()
        self.method = build_method(self.suite, 'MatSSL')
        self.train_set = SegmentationPatches(
            resize_items(self.data.labeled_split('train'), ft.get('resize'), ft.get('rescale')),
            ft['patch_size'])
        self.ssl_set = TwoViewPatches(resize_items(self.pool, factor=ssl.get('rescale')),
                                      ssl['patch_size'], ssl.get('overlap', 0.0),
                                      self.method.view_transform(ssl.get('crop_size',
                                                                         ssl['patch_size'])))
        # stages.py's per-rank batch on one process
        self.ft_batch = min(ft['batch_size'], len(self.train_set))
        self.ssl_batch = min(ssl['batch_size'], len(self.ssl_set))

    def settings(self) -> dict:
        return dict(arch=self.arch, seed=self.seed, device=str(self.device),
                    finetune=dict(self.ft, batch_per_step=self.ft_batch,
                                  patches=len(self.train_set), image_size=self.data.size,
                                  train_images=self.data.counts['train'],
                                  val_images=self.data.counts['val']),
                    pretrain=dict(self.ssl, batch_per_step=self.ssl_batch,
                                  patches=len(self.ssl_set), pool_images=len(self.pool),
                                  method_cfg=self.method.config()),
                    suite_optim_wrappers=dict(
                        finetune=stages.finetune_optim_wrapper(self.ft),
                        pretrain=stages.pretrain_optim_wrapper(self.method, self.ssl_batch,
                                                               self.ssl)),
                    suite_precision=dict(finetune=resolve_precision(self.ft.get('precision'),
                                                                    stage='finetune'),
                                         pretrain=resolve_precision(self.ssl.get('precision'))),
                    reference_loops=dict(precision='fp32', memory_format='contiguous',
                                         optimizer="torch's default implementation"))

    # -- the suite's loops -------------------------------------------------------------
    def suite_finetune(self, run_dir: Path) -> EpochTimer:
        timer = EpochTimer()
        with timed_runner(timer):
            _, history = stages.finetune(None, 'random init', self.data, self.selection,
                                         self.arch, self.ft, self.seed, run_dir,
                                         metric_cfg=self.metric_cfg)
        timer.losses = [h['train_loss'] for h in history]
        return timer

    def suite_pretrain(self, run_dir: Path) -> EpochTimer:
        timer = EpochTimer()
        with timed_runner(timer):
            _, history = stages.pretrain(self.method, self.pool, self.arch, self.ssl, self.seed,
                                         run_dir)
        timer.losses = [h['train_loss'] for h in history]
        return timer

    # -- bare loops ---------------------------------------------------------------------
    def finetune_step(self):
        """A fresh U-Net++ as stages.finetune builds it, and a plain Adam training step."""
        set_random_seed(self.seed, deterministic=True)  # same seed and algorithms as the Runner
        model = stages.build_segmenter(self.arch, self.data.num_classes,
                                       dict(self.ft, channels_last=False)).to(self.device)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=self.ft['lr'],
                               weight_decay=self.ft['weight_decay'])

        def step(batch):
            x = batch['inputs'].to(self.device, non_blocking=True)
            y = batch['data_samples']['gt'].to(self.device, non_blocking=True)
            loss = model.loss_fn(model.net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.detach()
        return step

    def pretrain_step(self):
        """A fresh MatSSLModel, NT-Xent over both views, SGD with a per-step cosine schedule."""
        set_random_seed(self.seed, deterministic=True)
        model = self.method.build_model(self.arch, None).to(self.device)
        model.train()
        opt_cfg = dict(self.method.hparams['optimizer'])
        opt = getattr(torch.optim, opt_cfg.pop('type'))(model.parameters(), **opt_cfg)
        steps = self.ssl['epochs'] * (len(self.ssl_set) // self.ssl_batch)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps),
                                                           eta_min=self.method.hparams['min_lr'])

        def step(batch):
            v1, v2 = (v.to(self.device, non_blocking=True) for v in batch['inputs'])
            loss = nt_xent(model.embed(v1), model.embed(v2), model.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            return loss.detach()
        return step

    def _stage_data(self, which: str) -> tuple:
        """(patch set, scale, per-step batch, drop_last) of 'finetune' or 'pretrain'."""
        if which == 'finetune':
            return (self.train_set, self.ft, self.ft_batch, len(self.train_set) > self.ft_batch)
        return self.ssl_set, self.ssl, self.ssl_batch, True

    def _bare_run(self, which: str, step) -> tuple[list[tuple[int, float]], list[float]]:
        dataset, scale, batch, drop_last = self._stage_data(which)
        loader = _plain_loader(dataset, batch, scale.get('num_workers', 0), drop_last, self.seed)
        return bare_loop(loader, step, scale['epochs'])

    def bare_finetune(self):
        return self._bare_run('finetune', self.finetune_step())

    def bare_pretrain(self):
        return self._bare_run('pretrain', self.pretrain_step())

    # -- the suite's own step in a bare loop: what the Runner loop alone costs ----------
    def same_step_finetune(self):
        return self._bare_run('finetune', self.suite_step('finetune'))

    def same_step_pretrain(self):
        return self._bare_run('pretrain', self.suite_step('pretrain'))

    # -- loader headroom ----------------------------------------------------------------
    def suite_step(self, which: str):
        """The suite's training step as its Runner runs it: the stage's model, optimiser
        wrapper (fused update, precision) and ``train_step``."""
        init_default_scope(SCOPE)
        set_random_seed(self.seed, deterministic=True)
        if which == 'finetune':
            model = stages.build_segmenter(self.arch, self.data.num_classes, self.ft)
            wrapper_cfg = stages.finetune_optim_wrapper(self.ft)
        else:
            model = self.method.build_model(self.arch,
                                            self.method.initial_encoder_state(self.arch))
            wrapper_cfg = stages.pretrain_optim_wrapper(self.method, self.ssl_batch, self.ssl)
        model.to(self.device).train()
        wrapper = build_optim_wrapper(model, wrapper_cfg)
        return lambda batch: model.train_step(batch, optim_wrapper=wrapper)['loss']

    def first_batch(self, which: str) -> dict:
        """One training batch of ``which`` stage, as the suite's loader delivers it."""
        dataset, scale, batch, drop_last = self._stage_data(which)
        loader = Runner.build_dataloader(
            stages.dataloader_cfg(dataset, batch, 0, True, drop_last), seed=self.seed)
        return next(iter(loader))

    def precision(self, which: str) -> str:
        return resolve_precision((self.ft if which == 'finetune' else self.ssl).get('precision'),
                                 stage=which)

    def compute_efficiency(self, which: str, steps_per_s: float, peaks: dict) -> dict:
        """The stage's model FLOPs per step x its steps/s over this machine's matmul peak."""
        precision = self.precision(which)
        return perf_scale.compute_efficiency(self.suite_step(which), self.first_batch(which),
                                             steps_per_s, precision, peaks[precision])

    def finetune_epoch_seconds(self, images: int) -> tuple[int, float]:
        """(patches, best seconds of one fine-tuning epoch of the suite's step) on ``images``
        training images of the same size; the loader is built as stages.py builds it."""
        from matssl_bench.datasets.synthetic import SyntheticMicrographs
        data = SyntheticMicrographs(size=self.data.size, train=images, val=1, test=1, unlabeled=0)
        dataset = SegmentationPatches(
            resize_items(data.labeled_split('train'), self.ft.get('resize'),
                         self.ft.get('rescale')), self.ft['patch_size'])
        loader = Runner.build_dataloader(
            stages.dataloader_cfg(dataset, self.ft_batch, 0, True, False), seed=self.seed)
        step = self.suite_step('finetune')
        step(next(iter(loader)))  # warm the fresh model
        return len(dataset), perf_scale.best_time(lambda: [step(b) for b in loader], 2)

    def sliding_window_seconds(self, side: int) -> tuple[int, float]:
        """(pixels, best seconds) of whole-image sliding-window inference (evaluation.py, the
        suite's window, default stride and eval batch) on one ``side`` x ``side`` image."""
        from matssl_bench.evaluation.sliding_window import default_stride, model_logits_fn, slide_logits
        model = stages.build_segmenter(self.arch, self.data.num_classes, self.ft).to(self.device)
        model.eval()
        image = np.random.default_rng(self.seed).integers(0, 256, (side, side, 3), np.uint8)
        window = self.ft['patch_size']
        logits_fn = model_logits_fn(model)
        batch = self.ft.get('eval_batch_size') or self.ft['batch_size']

        def infer():
            slide_logits(logits_fn, image, window, default_stride(window, self.ft.get(
                'eval_stride')), batch)
        infer()  # warm-up
        return side * side, perf_scale.best_time(infer, 2)

    def headroom(self, which: str) -> dict:
        """The suite's loader alone (as stages.py configures it) against its step alone."""
        dataset, scale, batch, drop_last = self._stage_data(which)
        step = self.suite_step(which)
        loader = Runner.build_dataloader(
            stages.dataloader_cfg(dataset, batch, scale.get('num_workers', 0), True, drop_last),
            seed=self.seed)
        delivered, batches = loader_rate(loader, max(2, scale['epochs']))
        step(batches[0])  # warm the fresh model
        consumed = compute_rate(step, batches, batch)
        return dict(delivered_patches_per_s=delivered, consumed_patches_per_s=consumed,
                    headroom=delivered / consumed)


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    info = dict(cpu=cpu, cpu_count=os.cpu_count(),
                cpus_usable=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
                else os.cpu_count(),
                torch=torch.__version__, torch_threads=torch.get_num_threads(),
                torch_interop_threads=torch.get_num_interop_threads(),
                python=platform.python_version(), platform=platform.platform(),
                cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    with contextlib.suppress(OSError):
        info['load_average'] = list(os.getloadavg())
    return info


def _median(values: list[float]) -> float:
    return statistics.median(values)


def measure_rss(argv: list[str]) -> dict:
    """Peak RSS of one stages.finetune run, in a fresh process (the same settings)."""
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv, '--rss-probe'],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _tree_rss_mb() -> float:
    """RSS of this process plus its direct children (loader workers), from /proc."""
    me, total = os.getpid(), 0
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / 'stat').read_text()
            ppid = int(stat.rsplit(')', 1)[1].split()[1])
            if int(entry.name) == me or ppid == me:
                total += int(stat.rsplit(')', 1)[1].split()[21]) * os.sysconf('SC_PAGE_SIZE')
    return total / 2 ** 20


def rss_probe(work: Workloads) -> None:
    """One stages.finetune run; print the peak RSS of the process (and of it with its workers)."""
    peak, done = [0.0], threading.Event()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], _tree_rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory(prefix='matssl-perf-') as tmp:
        work.suite_finetune(Path(tmp) / 'ft')
    done.set()
    sampler.join()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(dict(peak_rss_mb=own, peak_rss_with_workers_mb=max(own, peak[0]))))


def smoke_wall_time() -> float:
    with tempfile.TemporaryDirectory(prefix='matssl-perf-smoke-') as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(REPO / 'tools' / 'run_benchmark.py'), '--suite',
                        'smoke', '--work-dir', str(Path(tmp) / 'work')], check=True,
                       cwd=tmp, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0


def limits_section(work: Workloads, result: dict) -> dict:
    """``compute_efficiency`` of fine-tuning and SSL at the steps/s measured in this run, over
    the matmul peak measured now (once per precision, 1024^3, best of 10)."""
    peaks = {p: perf_scale.matmul_peak_flops(p, repeats=10)
             for p in {work.precision('finetune'), work.precision('pretrain')}}
    return {which: work.compute_efficiency(which, result[which]['suite_steps_per_s'], peaks)
            for which in ('finetune', 'pretrain')}


def scaling_section(work: Workloads, args) -> dict:
    """Fitted exponents of cost against work (~1.0 = linear), each over three sizes."""
    sizes = [max(1, args.train_images // 2), args.train_images, args.train_images * 2]
    epochs = [work.finetune_epoch_seconds(n) for n in sizes]
    counts = [4, 8, 16] if args.scaling_small else [8, 16, 32]
    prepare = [perf_scale.time_prepare_data(n, size=args.image_size) for n in counts]
    window = work.ft['patch_size']
    sides = [window * k for k in ((1, 2, 4) if args.scaling_small else (2, 4, 8))]
    sliding = [work.sliding_window_seconds(side) for side in sides]
    return dict(
        finetune_epoch_vs_patches=perf_scale.fit_exponent([p for p, _ in epochs],
                                                          [t for _, t in epochs]),
        sliding_window_eval_vs_pixels=perf_scale.fit_exponent([p for p, _ in sliding],
                                                              [t for _, t in sliding]),
        prepare_data_vs_images=perf_scale.fit_exponent(counts, prepare))


def run(args, argv: list[str]) -> dict:
    work = Workloads(args)
    machine = machine_info()
    per_rep = {f'{stage}_{k}': [] for stage in ('ft', 'ssl')
               for k in ('suite', 'bare', 'same', 'ratio', 'loop_ratio', 'boundary')}
    heads = dict(finetune=[], pretrain=[])
    loss_diff = {}
    with tempfile.TemporaryDirectory(prefix='matssl-perf-') as tmp:
        for rep in range(args.warmup + args.repeats):
            keep = rep >= args.warmup
            for stage, contenders in (
                    ('ft', (work.suite_finetune, work.bare_finetune, work.same_step_finetune)),
                    ('ssl', (work.suite_pretrain, work.bare_pretrain, work.same_step_pretrain))):
                rates, losses = [None] * 3, [None] * 3
                for which in [(rep + i) % 3 for i in range(3)]:  # rotate to cancel slow drift
                    if which == 0:
                        timer = contenders[0](Path(tmp) / f'{stage}-{rep}')  # fresh: no resume
                        rates[0] = steady_rate(timer.epochs)
                        boundary = _median(timer.boundaries) if timer.boundaries else 0.0
                        losses[0] = timer.losses
                    else:
                        times, losses[which] = contenders[which]()
                        rates[which] = steady_rate(times)
                # same model, data and order: fine-tuning losses agree (SSL views differ)
                loss_diff[stage] = max([loss_diff.get(stage, 0.0)] + [
                    abs(a - b) for a, b in zip(losses[0], losses[1])])
                if keep:
                    for name, value in zip(('suite', 'bare', 'same'), rates):
                        per_rep[f'{stage}_{name}'].append(value)
                    per_rep[f'{stage}_ratio'].append(rates[0] / rates[1])
                    per_rep[f'{stage}_loop_ratio'].append(rates[0] / rates[2])
                    per_rep[f'{stage}_boundary'].append(boundary)
                print(f'[perf] rep {rep}{"" if keep else " (warm-up)"} {stage}: suite '
                      f'{rates[0]:.3f} steps/s, bare {rates[1]:.3f}, suite step in a bare loop '
                      f'{rates[2]:.3f}', file=sys.stderr)
            for which in heads:
                head = work.headroom(which)
                if keep:
                    heads[which].append(head)
    loader = {which: {k: _median([h[k] for h in hs]) for k in hs[0]}
              for which, hs in heads.items()}
    rss = measure_rss(argv)
    result = dict(
        runner_overhead_ratio=_median(per_rep['ft_ratio']),
        ssl_step_ratio=_median(per_rep['ssl_ratio']),
        loader_headroom=min(v['headroom'] for v in loader.values()),
        finetune_peak_rss_mb=rss['peak_rss_mb'],
        finetune=dict(suite_steps_per_s=_median(per_rep['ft_suite']),
                      bare_steps_per_s=_median(per_rep['ft_bare']),
                      ratio_per_repeat=per_rep['ft_ratio'],
                      same_step_bare_steps_per_s=_median(per_rep['ft_same']),
                      runner_loop_ratio=_median(per_rep['ft_loop_ratio']),
                      runner_loop_ratio_per_repeat=per_rep['ft_loop_ratio'],
                      suite_between_epochs_s=_median(per_rep['ft_boundary']),
                      max_loss_difference=loss_diff['ft'],
                      peak_rss_with_workers_mb=rss['peak_rss_with_workers_mb']),
        pretrain=dict(suite_steps_per_s=_median(per_rep['ssl_suite']),
                      bare_steps_per_s=_median(per_rep['ssl_bare']),
                      ratio_per_repeat=per_rep['ssl_ratio'],
                      same_step_bare_steps_per_s=_median(per_rep['ssl_same']),
                      runner_loop_ratio=_median(per_rep['ssl_loop_ratio']),
                      runner_loop_ratio_per_repeat=per_rep['ssl_loop_ratio'],
                      suite_between_epochs_s=_median(per_rep['ssl_boundary'])),
        loader=loader,
        targets=TARGETS,
        machine=machine,
        settings=dict(work.settings(), repeats=args.repeats, warmup=args.warmup,
                      with_smoke=args.with_smoke),
    )
    result['compute_efficiency'] = limits_section(work, result)
    result['scaling'] = scaling_section(work, args)
    overhead = perf_scale.planning_overhead(args.plan_jobs)
    result['planning'] = overhead
    result[f'plan_{args.plan_jobs}_s'] = overhead['plan_s']
    result[f'tables_{args.plan_jobs}_s'] = overhead['tables_s']
    if args.with_smoke:
        result['smoke_wall_s'] = smoke_wall_time()
    result['meets_targets'] = {k: result[k] >= v for k, v in TARGETS.items()}
    result['meets_targets'].update({k: result[k] <= v for k, v in TIME_LIMITS.items()
                                    if k in result})
    result['machine']['load_average_end'] = list(os.getloadavg()) if hasattr(os, 'getloadavg') \
        else None
    return result


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', type=Path, help='JSON file to write (atomically)')
    p.add_argument('--repeats', type=int, default=3, help='timed repetitions (median reported)')
    p.add_argument('--warmup', type=int, default=1, help='repetitions run first and discarded')
    p.add_argument('--arch', help="encoder (default: the smoke suite's backbone)")
    p.add_argument('--patch', type=int, help="patch size (default: the smoke suite's)")
    p.add_argument('--ft-batch', type=int, help="fine-tuning batch (default: the smoke suite's)")
    p.add_argument('--ssl-batch', type=int, help="pretraining batch (default: the smoke suite's)")
    p.add_argument('--ft-epochs', type=int, default=3, help='epochs per fine-tuning run (>= 2)')
    p.add_argument('--ssl-epochs', type=int, default=2, help='epochs per pretraining run (>= 2)')
    p.add_argument('--num-workers', type=int, help="loader workers (default: the suite's)")
    p.add_argument('--precision', choices=['fp32', 'bf16', 'fp16', 'auto'],
                   help="the suite's precision in both stages (default: the smoke suite's)")
    p.add_argument('--image-size', type=int, default=128, help='synthetic image size')
    p.add_argument('--train-images', type=int, default=12, help='labeled training images')
    p.add_argument('--val-images', type=int, default=4, help='validation images')
    p.add_argument('--ssl-images', type=int, default=48,
                   help='unlabeled images (the pool adds the training images)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int,
                   help="torch intra-op threads (default: torch's; 1 is steadier on shared CPUs)")
    p.add_argument('--with-smoke', action='store_true',
                   help='also time the smoke suite in a fresh work dir')
    p.add_argument('--plan-jobs', type=int, default=5000,
                   help='cached jobs planned and tabulated in the planning-overhead figures')
    p.add_argument('--scaling-small', action='store_true',
                   help='smaller sizes in the scaling section (for tests)')
    p.add_argument('--rss-probe', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.ft_epochs < 2 or args.ssl_epochs < 2:
        p.error('--ft-epochs and --ssl-epochs must be >= 2 (the first epoch is not timed)')
    if args.repeats < 1 or args.warmup < 0:
        p.error('--repeats must be >= 1 and --warmup >= 0')
    if not args.out and not args.rss_probe:
        p.error('--out is required')
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    load_builtin_plugins()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_probe:
        rss_probe(Workloads(args))
        return 0
    result = run(args, [a for a in argv if a != '--with-smoke'])
    text = json.dumps(result, indent=2, sort_keys=True, default=str)
    print(text)
    write_json_atomic(args.out, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
