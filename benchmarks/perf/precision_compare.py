"""Fine-tuning step time in float32 against bf16 autocast, side by side on this machine.

    python benchmarks/perf/precision_compare.py --out results/perf/precision_cpu.json

Times ``--steps`` training steps of the ``--suite``'s U-Net++ (its backbone, patch, batch
and decoder) on random inputs with Adam, once per precision and repetition, alternating,
after one warm-up step each. bf16 fine-tuning is worth a paired quality comparison only
where this ratio is well above 1, i.e. where the device computes bf16 natively
(``native_bf16``); emulated bf16 is many times slower than float32.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

if __name__ == '__main__':  # run as a file: keep benchmarks/ itself off the import path
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or '.').resolve()) != _here]

import torch  # noqa: E402
from mmengine.device import get_device  # noqa: E402

from matssl_bench.engine import stages  # noqa: E402
from matssl_bench.suite.plan import load_suite  # noqa: E402
from matssl_bench.suite.precision import native_bf16  # noqa: E402
from matssl_bench.fileio.atomic import write_json_atomic  # noqa: E402


def step_seconds(scale: dict, arch: str, classes: int, precision: str, steps: int) -> float:
    """Mean seconds per training step after one warm-up step."""
    torch.manual_seed(0)
    device = get_device()
    model = stages.build_segmenter(arch, classes, scale).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=scale.get('lr', 1e-3))
    size, batch = scale['patch_size'], scale['batch_size']
    inputs = torch.randn(batch, 3, size, size, device=device)
    target = torch.randint(0, classes, (batch, size, size), device=device)

    def step():
        with torch.autocast(device_type=device, dtype=torch.bfloat16,
                            enabled=precision == 'bf16'):
            loss = model.loss_fn(model.net(inputs).float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device == 'cuda':
            torch.cuda.synchronize()
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--suite', default='cpu')
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=2)
    args = parser.parse_args(argv)
    suite = load_suite(args.suite)
    scale = dict(suite.scale.finetune)
    times: dict[str, list[float]] = {'fp32': [], 'bf16': []}
    for rep in range(args.repeats):
        for precision in (('fp32', 'bf16') if rep % 2 == 0 else ('bf16', 'fp32')):
            times[precision].append(step_seconds(scale, suite.backbone, 5, precision,
                                                 args.steps))
            print(f'[perf] rep {rep} {precision}: {times[precision][-1]:.3f} s/step',
                  file=sys.stderr)
    median = {k: statistics.median(v) for k, v in times.items()}
    result = dict(suite=args.suite, device=get_device(), native_bf16=native_bf16(get_device()),
                  threads=torch.get_num_threads(), patch_size=scale['patch_size'],
                  batch_size=scale['batch_size'], arch=suite.backbone,
                  fp32_s_per_step=median['fp32'], bf16_s_per_step=median['bf16'],
                  bf16_speedup=median['fp32'] / median['bf16'], seconds=times,
                  load_average_end=list(os.getloadavg()))
    write_json_atomic(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != 'seconds'}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
