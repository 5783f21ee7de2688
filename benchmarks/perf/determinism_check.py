"""Every training path of the suite, twice, on this machine's device: do both runs agree
bit for bit, and does none of them hit an op without a deterministic kernel?

    python benchmarks/perf/determinism_check.py --out determinism.json [--arch resnet50]

Paths: SSL pretraining of every built-in SSL method with views made in loader workers and
on the device; fine-tuning with a full, frozen-decoder and linear-probe encoder, validated
on whole images (``clean``) and on the authors' patch grid with their per-batch metric
(``published``), then the test scoring. All run as ``stages.pretrain``/``finetune``/
``evaluate`` run them (precision ``auto``, channels-last, two loader workers, suite
``deterministic=True``) on small synthetic micrographs. ``legacy_ops`` checks that the ops
the suite avoids do raise here under deterministic algorithms (on CUDA), so the check can
tell a fixed path from an untested one.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

if __name__ == '__main__':  # run as a file: keep benchmarks/ itself off the import path
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or '.').resolve()) != _here]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.device import get_device  # noqa: E402

from matssl_bench.engine import stages  # noqa: E402
from matssl_bench.engine.determinism import apply_determinism  # noqa: E402
from matssl_bench.fileio.atomic import write_json_atomic  # noqa: E402
from matssl_bench.plugins import load_builtin_plugins  # noqa: E402
from matssl_bench.registry import METHODS  # noqa: E402
from matssl_bench.suite.precision import resolve_precision  # noqa: E402

SSL_METHODS = dict(MatSSL=dict(hidden_dim=256, out_dim=64),
                   MoCoV2=dict(queue_len=256, hidden_dim=256, feat_dim=64),
                   DenseCL=dict(queue_len=256, hidden_dim=256, feat_dim=64))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def legacy_ops(device: str) -> dict:
    """Whether each op the suite replaced raises under deterministic algorithms here."""
    from mmseg.evaluation import IoUMetric

    apply_determinism(True)
    x = torch.randn(2, 3, 8, 8, device=device, requires_grad=True)
    target = torch.randint(0, 3, (2, 16, 16), device=device)
    checks = dict(
        histc_metric=lambda: IoUMetric.intersect_and_union(target[0], target[0], 3, 255),
        bilinear_backward=lambda: F.interpolate(x, size=(16, 16), mode='bilinear',
                                                align_corners=False).sum().backward(),
        cross_entropy_4d=lambda: F.cross_entropy(
            F.interpolate(x.detach(), size=(16, 16)), target))
    out = {}
    for name, fn in checks.items():
        try:
            fn()
            out[name] = 'runs'
        except RuntimeError as err:
            out[name] = 'raises: ' + str(err).splitlines()[0][:120]
    return out


def run_twice(fn) -> dict:
    """``fn(run_dir)`` -> a dict of tensors (and numbers); run twice in fresh folders."""
    results, seconds = [], []
    try:
        for _ in range(2):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                results.append(fn(Path(tmp)))
                seconds.append(time.perf_counter() - t0)
    except Exception as err:  # noqa: BLE001 - reported per path
        return dict(ok=False, error=f'{type(err).__name__}: {err}'.splitlines()[0][:300],
                    where=traceback.format_exc().splitlines()[-3:])
    tensors = [{k: v for k, v in r.items() if isinstance(v, torch.Tensor)} for r in results]
    others = [{k: v for k, v in r.items() if not isinstance(v, torch.Tensor)} for r in results]
    return dict(ok=True, identical=_same(*tensors) and others[0] == others[1],
                seconds=[round(s, 2) for s in seconds], summary=others[0].get('summary'))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', type=Path, required=True)
    p.add_argument('--arch', default='resnet50')
    p.add_argument('--image-size', type=int, default=256)
    p.add_argument('--patch', type=int, default=128)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--only', default='', help='comma-separated path name prefixes to run')
    args = p.parse_args(argv)
    load_builtin_plugins()
    from matssl_bench.datasets.synthetic import SyntheticMicrographs
    from matssl_bench.engine.runner import selection_and_metric

    device = get_device()
    data = SyntheticMicrographs(size=args.image_size, train=4, val=2, test=2, unlabeled=8)
    common = dict(patch_size=args.patch, precision='auto', channels_last=True,
                  num_workers=args.workers)
    paths = {}
    for name, cfg in SSL_METHODS.items():
        for views in ('device', 'workers'):
            def ssl(run_dir, name=name, cfg=cfg, views=views):
                method = METHODS.build(dict(type=name, init='random', **cfg))
                scale = dict(common, epochs=2, batch_size=8, crop_size=args.patch - 16,
                             views=views)
                encoder, history = stages.pretrain(method, data.unlabeled_pool(), args.arch,
                                                   scale, 0, run_dir)
                return dict(encoder, summary=history)
            paths[f'pretrain/{name}/views={views}'] = ssl
    for protocol in ('clean', 'published'):
        selection, metric = selection_and_metric(data, 'clean')
        if protocol == 'published':
            metric = dict(metric, convention='authors-batch', batch_units=128)
        for mode in ('full', 'frozen-decoder', 'linear-probe'):
            def finetune(run_dir, mode=mode, metric=metric, selection=selection):
                scale = dict(common, epochs=2, batch_size=8, lr=1e-3, encoder_mode=mode,
                             decoder_channels=(64, 32, 16, 16, 8), augment='photometric',
                             eval_batch_size=8)
                weights, history = stages.finetune(None, 'random init', data, selection,
                                                   args.arch, scale, 0, run_dir,
                                                   metric_cfg=metric)
                test = stages.evaluate(weights, data, 'test', args.arch, scale, metric)
                state = torch.load(stages.last_weights_path(run_dir), weights_only=True)
                return dict(state['state_dict'], summary=dict(
                    history=history, test_mIoU=test['mIoU'], units=test['images']))
            paths[f'finetune/{protocol}/{mode}'] = finetune
    only = [o for o in args.only.split(',') if o]
    result = dict(device=device, gpu=torch.cuda.get_device_name() if torch.cuda.is_available()
                  else None, torch=torch.__version__, arch=args.arch,
                  precision=dict(pretrain=resolve_precision('auto', stage='pretrain'),
                                 finetune=resolve_precision('auto', stage='finetune')),
                  legacy_ops=legacy_ops(device), paths={})
    for name, fn in paths.items():
        if only and not any(name.startswith(o) for o in only):
            continue
        print(f'{name} ...', file=sys.stderr, flush=True)
        outcome = run_twice(fn)
        outcome.pop('summary', None)
        result['paths'][name] = outcome
        print(name, json.dumps(outcome), file=sys.stderr, flush=True)
        write_json_atomic(args.out, result)  # what has run so far, should a later path hang
    result['all_ok'] = all(r['ok'] and r['identical'] for r in result['paths'].values())
    write_json_atomic(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != 'paths'}, indent=2))
    return 0 if result['all_ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
