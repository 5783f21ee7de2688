"""The comparison methods in the suite's pipeline: Runner training, mixed precision, selection."""
from __future__ import annotations

import math

import pytest
import torch

from matssl_bench.datasets.synthetic import SyntheticMicrographs
from matssl_bench.engine.stages import pretrain
from matssl_bench.registry import METHODS
from matssl_bench.suite.plan import expand, load_suite

COMPARISON = ('BYOL', 'BarlowTwins', 'MoCoV3', 'SimCLR', 'SimSiam')
TINY = dict(SimCLR=dict(hidden_dim=32, feat_dim=16),
            BYOL=dict(hidden_dim=32, feat_dim=16),
            SimSiam=dict(hidden_dim=32, feat_dim=24, pred_hidden_dim=8),
            BarlowTwins=dict(hidden_dim=32, feat_dim=24),
            MoCoV3=dict(hidden_dim=32, feat_dim=16))


@pytest.mark.parametrize('name', COMPARISON)
def test_comparison_method_trains_through_the_runner(name, tmp_path):
    """One short SSL stage with the method's own optimiser, schedule and hooks; the encoder moves."""
    images = SyntheticMicrographs(size=64, train=0, val=0, test=0, unlabeled=4).unlabeled_pool()
    method = METHODS.get(name)(init='random', **TINY[name])
    torch.manual_seed(0)
    start = {k: v.clone() for k, v in method.build_model('resnet18', None).backbone.state_dict().items()}
    scale = dict(epochs=2, batch_size=8, patch_size=32, crop_size=32, overlap=0.0, num_workers=0)
    encoder, history = pretrain(method, images, 'resnet18', scale, seed=0, run_dir=tmp_path)
    assert len(history) == 2 and all(math.isfinite(h['train_loss']) for h in history)
    assert 'fc.weight' not in encoder and 'layer4.1.bn2.running_var' in encoder
    moved = [k for k, v in encoder.items() if k.endswith('weight') and not torch.equal(v, start[k])]
    assert 'conv1.weight' in moved


def test_simsiam_predictor_keeps_its_lr_while_the_rest_decays(tmp_path):
    from mmengine.hooks import Hook

    from matssl_bench.registry import HOOKS  # noqa: F401  (the suite's hook scope)

    method = METHODS.get('SimSiam')(init='random', **TINY['SimSiam'])
    wrapper = method.optim_wrapper(64)
    assert wrapper['optimizer']['lr'] == pytest.approx(0.05 * 64 / 256)
    (hook,) = method.custom_hooks(64)
    assert hook['lr'] == wrapper['optimizer']['lr'] and hook['adjust_by_epoch'] is False

    seen = []

    class Record(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            groups = runner.optim_wrapper.optimizer.param_groups
            seen.append(({g['lr'] for g in groups if g.get('fix_lr')},
                         {g['lr'] for g in groups if not g.get('fix_lr')}))

    method.custom_hooks = lambda batch: [*type(method).custom_hooks(method, batch), Record()]
    images = SyntheticMicrographs(size=64, train=0, val=0, test=0, unlabeled=4).unlabeled_pool()
    scale = dict(epochs=2, batch_size=8, patch_size=32, crop_size=32, overlap=0.0, num_workers=0)
    pretrain(method, images, 'resnet18', scale, seed=0, run_dir=tmp_path)
    fixed_lr = method.learning_rate(8)
    assert len(seen) >= 2
    assert all(len(fixed) == 1 and fixed.pop() == pytest.approx(fixed_lr) for fixed, _ in seen)
    assert max(seen[-1][1]) < fixed_lr  # the cosine has moved the others down


@pytest.mark.parametrize('name', ['SimCLR', 'BYOL', 'BarlowTwins'])
def test_networks_run_under_autocast_and_the_loss_in_float32(name):
    method = METHODS.get(name)(init='random', **TINY[name])
    torch.manual_seed(0)
    model = method.build_model('resnet18', None).train()
    dtypes = {}

    def record(key, tensor):  # a hook returning a value would replace the module's output
        dtypes.setdefault(key, tensor.dtype)

    model.backbone.conv1.register_forward_hook(lambda m, i, o: record('conv', o))
    model.head.loss.register_forward_pre_hook(lambda m, args: record('loss input', args[0]))
    g = torch.Generator().manual_seed(1)
    views = [torch.randn(4, 3, 32, 32, generator=g) for _ in range(2)]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mixed = model(views, mode='loss')['loss']
    assert dtypes == {'conv': torch.bfloat16, 'loss input': torch.float32}
    assert mixed.dtype == torch.float32
    model.load_state_dict(state)  # the same weights and EMA state again, now in float32
    for ema in (m for m in model.modules() if hasattr(m, 'steps')):
        ema.steps.zero_()
    dtypes.clear()
    full = model(views, mode='loss')['loss']
    assert dtypes == {'conv': torch.float32, 'loss input': torch.float32}
    # bf16 networks move the loss a little (BYOL's 2 - 2 cos of near-equal vectors the most)
    assert float(mixed) == pytest.approx(float(full), rel=0.05, abs=0.1)


def test_wildcard_rows_leave_the_comparison_methods_out():
    smoke = {job.method for job in expand(load_suite('smoke'))}
    assert smoke and not smoke & set(COMPARISON)
    assert {'MatSSL', 'MoCoV2', 'DenseCL', 'RandomInit'} <= smoke
    chosen = {job.method for job in expand(load_suite('methods-cpu'), methods=['SimCLR', 'BYOL'])}
    assert chosen == {'SimCLR', 'BYOL'}


def test_methods_cpu_dry_run_plans_every_method_with_its_own_ssl_runs(shared_data, tmp_path,
                                                                      capsys, monkeypatch):
    import json

    from matssl_bench.commands.run_benchmark import main

    monkeypatch.setenv('MATSSL_DATA', str(shared_data))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))  # no ImageNet weights here
    status = main(['--suite', 'methods-cpu', '--dry-run', '--format', 'json',
                   '--work-dir', str(tmp_path / 'w')])
    out = capsys.readouterr().out
    assert status == 0
    entries = json.loads(out)['jobs']
    ssl = {'MatSSL', 'MoCoV2', 'DenseCL', *COMPARISON}
    pretraining = [e for e in entries if e['stage'] == 'pretrain']
    finetuning = [e for e in entries if e['stage'] == 'finetune']
    assert {e['method'] for e in pretraining} == ssl
    assert {e['method'] for e in finetuning} == ssl | {'SupervisedImageNet', 'RandomInit'}
    assert {e['dataset'] for e in finetuning} == {'MetalDAM', 'EBC-1', 'EBC-2'}
    assert len(finetuning) == 10 * 3 * 5 and len(pretraining) == 8 * 5
    for method in ssl:  # one SSL run per fine-tuning seed, shared by the three sets
        runs = {e['seed']: e['key'] for e in pretraining if e['method'] == method}
        assert sorted(runs) == [0, 1, 2, 3, 4]
        for e in (e for e in finetuning if e['method'] == method):
            assert e['depends_on'] == runs[e['seed']]
    assert {e['status'] for e in entries if e['method'] != 'SupervisedImageNet'} == {'ready'}
    assert {e['status'] for e in entries if e['method'] == 'SupervisedImageNet'} == {'unavailable'}


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('precision', ['fp16', 'bf16'])
@pytest.mark.parametrize('name', COMPARISON)
def test_mixed_precision_training_steps_on_cuda(name, precision):
    """The suite's fp16 (loss-scaled) and bf16 wrappers: networks in half precision, loss float32."""
    from mmengine.logging import MessageHub
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from matssl_bench.suite.precision import with_precision

    MessageHub.get_current_instance().update_info('max_iters', 10)
    method = METHODS.get(name)(init='random', **TINY[name])
    torch.manual_seed(0)
    model = method.build_model('resnet18', None).cuda().train()
    dtypes = {}

    def record(key, tensor):
        dtypes.setdefault(key, tensor.dtype)

    model.backbone.conv1.register_forward_hook(lambda m, i, o: record('conv', o))
    model.head.loss.register_forward_pre_hook(lambda m, args: record('loss input', args[0]))
    with DefaultScope.overwrite_default_scope('matssl_bench'):
        optim = build_optim_wrapper(model, with_precision(method.optim_wrapper(16), precision))
    g = torch.Generator(device='cuda').manual_seed(1)
    batch = dict(inputs=[torch.randn(16, 3, 32, 32, device='cuda', generator=g) for _ in range(2)],
                 data_samples=dict(index=torch.arange(16)))
    losses = [float(model.train_step(batch, optim)['loss']) for _ in range(3)]
    assert all(math.isfinite(v) for v in losses), losses
    half = torch.float16 if precision == 'fp16' else torch.bfloat16
    assert dtypes == {'conv': half, 'loss input': torch.float32}


def test_list_names_each_comparison_method_with_its_source_and_config():
    from pathlib import Path

    import mmselfsup

    from matssl_bench.commands.run_benchmark import list_registered

    lines = list_registered().splitlines()
    for name in COMPARISON:
        cls = METHODS.get(name)
        (i,) = [i for i, line in enumerate(lines) if line.split()[:1] == [name]]
        assert 'SSL pretraining' in lines[i]
        assert lines[i + 1].strip() == (f'source: mmselfsup 1.0.0 {name}; '
                                        f'reference config: {cls.reference_config}')
        assert (Path(mmselfsup.__file__).parent / '.mim' / cls.reference_config).is_file()


def test_methods_cpu_reuses_every_cpu_suite_job_on_its_sets(shared_data, monkeypatch):
    """methods-cpu differs from the cpu suite only by its rows: the paper methods' jobs on
    MetalDAM, EBC-1 and EBC-2 have the cpu suite's keys, so its records and encoders serve."""
    monkeypatch.setenv('MATSSL_DATA', str(shared_data))
    # both exclude the test images of all four fine-tuning sets from the SSL data (a narrowed
    # plan, --datasets, excludes fewer: its SSL jobs differ)
    cpu = {j.key for j in expand(load_suite('cpu')) if j.method != 'MicroNet'
           and (j.stage == 'pretrain' or j.spec['finetune_set'] != 'EBC-3')}
    methods = {j.key: j for j in expand(load_suite('methods-cpu'))}
    assert cpu and cpu <= methods.keys()
    assert {methods[k].method for k in methods.keys() - cpu} == set(COMPARISON)
