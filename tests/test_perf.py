"""benchmarks/perf/measure.py in a tiny configuration: every figure is present, positive and finite."""
from __future__ import annotations

import json
import math

import pytest

from conftest import REPO, run_tool, write_tiny_suite

PERF = REPO / 'benchmarks' / 'perf'
FIGURES = ('runner_overhead_ratio', 'ssl_step_ratio', 'loader_headroom', 'finetune_peak_rss_mb')


@pytest.mark.slow
def test_perf_tiny(tmp_path):
    out = tmp_path / 'perf.json'
    done = run_tool(
        PERF / 'measure.py', '--out', out,
        '--repeats', '1', '--warmup', '0', '--threads', '1', '--image-size', '64',
        '--patch', '32', '--train-images', '2', '--val-images', '1', '--ssl-images', '2',
        '--ft-batch', '4', '--ssl-batch', '8', '--ft-epochs', '2', '--ssl-epochs', '2',
        '--scaling-small', '--plan-jobs', '40', cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
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
    # limits: FLOPs counted by torch's flop counter over a matmul peak measured in the same run
    for stage in ('finetune', 'pretrain'):
        eff = result['compute_efficiency'][stage]
        assert eff['flops_per_step'] > 0 and eff['peak_flops_per_s'] > 0
        assert math.isclose(eff['efficiency'],
                            eff['achieved_flops_per_s'] / eff['peak_flops_per_s'])
        assert math.isclose(eff['achieved_flops_per_s'],
                            eff['flops_per_step'] * result[stage]['suite_steps_per_s'])
    # scaling: a fitted exponent over three sizes each; more work never takes much less time
    for name in ('finetune_epoch_vs_patches', 'sliding_window_eval_vs_pixels',
                 'prepare_data_vs_images'):
        fit = result['scaling'][name]
        assert len(set(fit['sizes'])) == 3 and 0.2 < fit['exponent'] < 3.0, fit


    # planning overhead: every cached job skipped, tables built from the records alone
    assert result['planning']['jobs'] == 40 and 'table4' in result['planning']['tables_written']
    assert result['plan_40_s'] > 0 and result['tables_40_s'] > 0


def test_fit_exponent_recovers_a_power_law():
    from matssl_bench.perf.scaling import fit_exponent

    sizes = [10, 20, 40, 80]
    fit = fit_exponent(sizes, [0.5 * s ** 1.5 for s in sizes])
    assert math.isclose(fit['exponent'], 1.5, rel_tol=1e-9) and fit['stderr'] < 1e-9


def test_step_flops_counts_a_linear_layer():
    import torch
    from matssl_bench.perf.scaling import step_flops

    layer = torch.nn.Linear(16, 8, bias=False)
    flops = step_flops(lambda batch: layer(batch['x']).sum().backward(), dict(x=torch.ones(4, 16)))
    # forward 2*4*16*8, backward: grad of the weight only (the input needs none)
    assert flops == 2 * 4 * 16 * 8 * 2



@pytest.mark.slow
def test_resume_checkpoint_interval_is_timed_side_by_side_with_equal_results(tmp_path):
    suite = write_tiny_suite(tmp_path, methods='RandomInit', epochs=3)
    out = tmp_path / 'checkpoints.json'
    done = run_tool(PERF / 'resume_interval.py', '--out', out, '--suite', suite,
                    '--dataset', 'synthetic', '--every', '3600', '--repeats', '1')
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result['same_results'] and len(result['seconds']['0']) == 1
    assert math.isclose(result['speedup'], result['every_epoch_s'] / result['interval_run_s'])


@pytest.mark.slow
def test_precision_step_times_are_side_by_side(tmp_path):
    suite = write_tiny_suite(tmp_path, methods='RandomInit', epochs=1)
    out = tmp_path / 'precision.json'
    done = run_tool(PERF / 'precision_compare.py', '--out', out, '--suite', suite,
                    '--steps', '1', '--repeats', '1')
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result['fp32_s_per_step'] > 0 and result['bf16_s_per_step'] > 0
    assert math.isclose(result['bf16_speedup'],
                        result['fp32_s_per_step'] / result['bf16_s_per_step'])
    assert isinstance(result['native_bf16'], bool)


@pytest.mark.slow
def test_ssl_input_headroom_is_measured_for_both_view_places(tmp_path):
    from matssl_bench.perf import ssl_input

    out = tmp_path / 'ssl_input.json'
    assert ssl_input.main(['--out', str(out), '--arch', 'resnet18', '--batch', '4',
                           '--workers', '1', '--steps', '1', '--loader-batches', '2',
                           '--images', '2', '--image-side', '512']) == 0
    result = json.loads(out.read_text())
    assert result['batch'] == 4 and result['crop'] == 224 and result['cpu_ms_per_view'] > 0
    assert set(result['device_view_ms']) >= {'0:RandomResizedCrop', 'whole'}
    for place in ('device', 'workers'):
        figures = result['views'][place]
        assert figures['headroom'] == pytest.approx(
            figures['loader_images_per_s'] / figures['step_images_per_s'])


def test_determinism_check_runs_a_path_twice_and_compares(tmp_path):
    from matssl_bench.perf import determinism_check

    out = tmp_path / 'determinism.json'
    code = determinism_check.main(['--out', str(out), '--arch', 'resnet18', '--image-size', '64',
                                   '--patch', '32', '--workers', '0',
                                   '--only', 'finetune/published/linear-probe'])
    result = json.loads(out.read_text())
    assert list(result['paths']) == ['finetune/published/linear-probe']
    assert result['paths']['finetune/published/linear-probe']['identical'] is True
    assert code == 0 and result['all_ok']
