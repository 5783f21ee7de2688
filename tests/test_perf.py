"""benchmarks/perf.py in a tiny configuration: every figure is present, positive and finite."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIGURES = ('runner_overhead_ratio', 'ssl_step_ratio', 'loader_headroom', 'finetune_peak_rss_mb')


def test_perf_tiny(tmp_path):
    out = tmp_path / 'perf.json'
    subprocess.run(
        [sys.executable, str(REPO / 'benchmarks' / 'perf.py'), '--out', str(out),
         '--repeats', '1', '--warmup', '0', '--threads', '1', '--image-size', '64',
         '--patch', '32', '--train-images', '2', '--val-images', '1', '--ssl-images', '2',
         '--ft-batch', '4', '--ssl-batch', '8', '--ft-epochs', '2', '--ssl-epochs', '2'],
        check=True, cwd=tmp_path, timeout=900, stdout=subprocess.PIPE)
    result = json.loads(out.read_text())
    values = [result[k] for k in FIGURES]
    for stage in ('finetune', 'pretrain'):
        values += [result[stage][k] for k in ('suite_steps_per_s', 'bare_steps_per_s',
                                              'same_step_bare_steps_per_s', 'runner_loop_ratio')]
        values += [result['loader'][stage][k] for k in
                   ('delivered_patches_per_s', 'consumed_patches_per_s', 'headroom')]
    assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in values), values
    # the bare loop trains exactly what stages.finetune trains
    # same work: the suite's channels-last convolutions differ from the bare loop's only by rounding
    assert result['finetune']['max_loss_difference'] < 1e-3
    assert result['settings']['finetune']['patch_size'] == 32
    # what the suite does differently from the reference loops is written down
    assert result['settings']['reference_loops']['precision'] == 'fp32'
    assert result['settings']['suite_precision']['pretrain'] in ('fp32', 'bf16')
    assert result['settings']['suite_optim_wrappers']['finetune']['optimizer']['fused'] is True
    assert result['machine']['torch_threads'] == 1 and result['machine']['cpu_count'] > 0
