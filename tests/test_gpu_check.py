"""`tools/gpu_check.py` at toy sizes on the CPU: every stage runs and is timed, the step times
land in the dry run's table and give GPU-hours; a missing GPU is an error in the JSON."""
import json
import os

import pytest

from conftest import REPO, run_tool
from matssl_bench.suite.cost import job_work, plan_gpu_hours, step_seconds

TOOL = REPO / 'tools' / 'gpu_check.py'


def _run(*args):
    return run_tool(TOOL, *args, env=dict(os.environ, OMP_NUM_THREADS='1'))


@pytest.mark.slow
def test_tiny_cpu_check_times_every_stage_and_records_step_times(tmp_path):
    table = tmp_path / 'step_times.json'
    done = _run('--device', 'cpu', '--tiny', '--steps', '2', '--warmup', '1', '--skip-suite',
                '--record', '--step-times', str(table))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # stdout holds the JSON alone
    assert result['ok'] and result['errors'] == []
    stages = result['stages']
    assert set(stages) == {'pretrain', 'finetune', 'infer', 'sliding_window', 'linear_probe'}
    for name in ('pretrain', 'finetune', 'linear_probe'):
        assert stages[name]['steps_per_s'] > 0 and stages[name]['loader_headroom'] > 0
        assert stages[name]['gpu_utilisation_pct'] is None  # no GPU here
    assert result['settings']['arch'] == 'resnet18' and result['settings']['tiny']
    # the recorded table prices a job with the measured seconds
    device = result['settings']['device']
    entries = json.loads(table.read_text())['devices'][device]['resnet18']
    assert entries['finetune']['s_per_sample'] == stages['finetune']['s_per_sample']
    scale = dict(epochs=2, patch_size=64)
    work = job_work('finetune', 'resnet18', scale, 10, 'clean',
                    dict(train=[(64, 64)] * 3, val=[(128, 128)], test=[(128, 128)] * 2))
    totals = plan_gpu_hours([dict(stage='finetune', status='ready', work=work)], device,
                            json.loads(table.read_text())['devices'])
    expected = sum(step_seconds(entries[s['kind']], s) for s in work['steps']) / 3600
    assert abs(totals['gpu_hours'] - round(expected, 2)) < 1e-9
    assert totals['gpu_hours_source'].startswith(f'measured step times on {device}')


def test_without_a_gpu_the_cuda_check_fails_with_the_reason_in_its_json():
    done = _run('--skip-suite')
    if done.returncode == 0:  # a machine with a GPU: nothing to check here
        assert json.loads(done.stdout)['ok']
        return
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert not result['ok'] and result['errors'][0]['stage'] == 'setup'
    assert 'no CUDA device visible' in result['errors'][0]['error']


def test_help_says_what_the_check_needs():
    done = _run('--help')
    assert done.returncode == 0
    text = ' '.join(done.stdout.split())
    for needed in ('checkout', 'wheels', 'data subset', 'Nothing is downloaded', '--device cpu --tiny'):
        assert needed in text
