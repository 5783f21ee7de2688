"""GPU-hours of a plan from measured step times (suite/cost.py): decoder, validation and test
work counted; entries the table lacks say 'not measured'; the dry-run JSON carries the total."""
import json
import os

from conftest import run_cli
from matssl_bench.suite.cost import job_work, load_step_times, plan_gpu_hours

TABLE = {'GPU X': {'resnet50': {
    'pretrain': dict(s_per_sample=0.002, side=224),
    'finetune': dict(s_per_sample=0.004, side=256),
    'infer': dict(s_per_sample=0.001, side=256),
    'sliding_window': dict(s_per_megapixel=0.1, side=256)}}}


def test_finetune_work_counts_validation_passes_and_two_test_passes():
    sizes = dict(train=[(512, 512)] * 2, val=[(512, 512)], test=[(1000, 1000)] * 3)
    scale = dict(epochs=5, patch_size=256, val_interval=2)
    clean = job_work('finetune', 'resnet50', scale, 8, 'clean', sizes)['steps']
    assert clean[0] == dict(kind='finetune', count=40, side=256)
    # validation every 2nd of 5 epochs: 3 passes over 0.262144 MP; the test twice over 3 MP
    assert [s['kind'] for s in clean[1:]] == ['sliding_window', 'sliding_window']
    assert abs(clean[1]['count'] - 3 * 512 * 512 / 1e6) < 1e-9
    assert abs(clean[2]['count'] - 2 * 3e6 / 1e6) < 1e-9
    # published without a validation part: selection on test patches, + 2 test passes
    published = job_work('finetune', 'resnet50', scale, 8, 'published',
                         dict(sizes, val=[]))['steps']
    assert [s['kind'] for s in published[1:]] == ['infer']
    assert published[1]['count'] == (3 + 2) * 3 * 9  # 1000 px: 3x3 patches of 256 px (padded)


def test_totals_from_step_times_and_not_measured_entries():
    entries = [dict(stage='pretrain', status='cached', work=job_work(
                   'pretrain', 'resnet50', dict(epochs=2, patch_size=256, crop_size=112), 100)),
               dict(stage='finetune', status='ready', work=dict(arch='resnet50', steps=[
                   dict(kind='finetune', count=1000, side=512),
                   dict(kind='sliding_window', count=10.0, side=256)]))]
    totals = plan_gpu_hours(entries, 'GPU X', TABLE)
    pretrain = 2 * 100 * 0.002 * (112 / 224) ** 2 / 3600
    finetune = (1000 * 0.004 * 4 + 10 * 0.1) / 3600
    assert totals['gpu_hours_by_stage'] == dict(pretrain=round(pretrain, 2),
                                                finetune=round(finetune, 2))
    assert totals['gpu_hours'] == round(pretrain + finetune, 2)
    assert totals['gpu_hours_to_run'] == round(finetune, 2)  # the cached job is not run again
    assert totals['gpu_hours_source'].startswith('measured step times on GPU X')
    missing = plan_gpu_hours(entries, 'GPU Y', TABLE)
    assert missing['gpu_hours'] is None
    assert missing['not_measured'] == ['GPU Y/resnet50/finetune', 'GPU Y/resnet50/pretrain',
                                       'GPU Y/resnet50/sliding_window']
    assert missing['gpu_hours_source'].startswith('not measured: GPU Y/resnet50/finetune')


def test_paper_dry_run_json_carries_gpu_hours_and_their_source(tmp_path):
    table = tmp_path / 'step_times.json'
    table.write_text(json.dumps(dict(devices=TABLE)))
    env = dict(os.environ, MATSSL_DATA=str(tmp_path), MATSSL_STEP_TIMES=str(table),
               MATSSL_COST_DEVICE='GPU X', TORCH_HOME=str(tmp_path / 'torch'))
    out = run_cli('--suite', 'paper', '--dry-run', '--format', 'json', '--work-dir',
                  str(tmp_path / 'w'), env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    plan = json.loads(out.stdout)
    totals = plan['totals']
    assert totals['gpu_hours'] > 0 and totals['gpu_hours_source'].startswith(
        'measured step times on GPU X')
    assert abs(totals['gpu_hours'] - sum(totals['gpu_hours_by_stage'].values())) < 0.011
    # fine-tuning counts its validation and test inference, not only training
    kinds = {s['kind'] for e in plan['jobs'] if e['stage'] == 'finetune' for s in e['work']['steps']}
    assert kinds == {'finetune', 'infer'}  # published: validation and test on patches


def test_shipped_table_has_the_paper_recipe_on_a_measured_gpu():
    table = load_step_times()
    measured = [d for d, archs in table.items() if 'resnet50' in archs]
    assert measured, 'benchmarks/suite/step_times.json has no ResNet-50 entries'
    for device in measured:
        assert {'pretrain', 'finetune', 'infer', 'sliding_window'} <= set(table[device]['resnet50'])


def test_training_flops_count_the_decoder():
    from matssl_bench.suite.cost import job_cost, step_gflops
    encoder = step_gflops('pretrain', 'resnet50', 224)
    unetpp = step_gflops('finetune', 'resnet50', 256)
    assert 20 < encoder < 30 and 300 < unetpp < 400  # the decoder dominates a U-Net++ step
    assert step_gflops('finetune', 'resnet50', 512) == 4 * unetpp
    scale = dict(epochs=2, patch_size=256)
    assert job_cost('finetune', 'resnet50', scale, 10) == 2 * 10 * unetpp / 1000
