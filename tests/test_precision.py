"""Training precision (fp32 / bf16 autocast / fp16 AMP / auto) and fused optimiser updates."""
from __future__ import annotations

import json

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from conftest import run_cli
from matssl_bench.suite import precision as precision_module
from matssl_bench.engine import stages
from matssl_bench.models.losses import nt_xent
from matssl_bench.suite.plan import build_method, expand, load_suite
from matssl_bench.suite.precision import (AutocastOptimWrapper, check_precision, resolve_precision,
                                    with_precision)
from matssl_bench.engine.records import RecordStore
from matssl_bench.registry import SCOPE
from matssl_bench.report.tables import finetune_table

SGD = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9))


@pytest.mark.parametrize('native, expected', [(True, 'bf16'), (False, 'fp32')])
def test_auto_is_bf16_only_where_the_device_has_it_natively(monkeypatch, native, expected):
    monkeypatch.setattr(precision_module, 'native_bf16', lambda device_type: native)
    assert resolve_precision('auto', 'cpu') == expected
    assert resolve_precision(None, 'cpu') == 'fp32'
    assert resolve_precision('bf16', 'cpu') == 'bf16'  # asked for explicitly: kept


@pytest.mark.parametrize('native', [True, False])
def test_auto_fine_tuning_stays_fp32_on_cpus_and_follows_the_gpu(monkeypatch, native):
    monkeypatch.setattr(precision_module, 'native_bf16', lambda device_type: native)
    assert resolve_precision('auto', 'cpu', stage='finetune') == 'fp32'
    assert resolve_precision('auto', 'cuda', stage='finetune') == ('bf16' if native else 'fp32')
    assert resolve_precision('bf16', 'cpu', stage='finetune') == 'bf16'  # asked for: kept
    settings = precision_module.run_settings('finetune', dict(precision='auto'), False, 2, 'cuda')
    assert settings == dict(precision='bf16' if native else 'fp32', deterministic=False,
                            world_size=2)
    assert precision_module.run_settings('pretrain', {}, device_type='cpu') == dict(
        precision='fp32', deterministic=True, world_size=1)


def test_evaluation_runs_at_the_fine_tuning_precision():
    from matssl_bench.evaluation.segmenter import build_segmenter

    model = build_segmenter('resnet18', 3, dict(decoder_channels=(8, 8, 8, 8, 8)), precision='bf16')
    model.eval()
    seen = []
    model.net.encoder.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    logits = model(torch.randn(1, 3, 32, 32), mode='tensor')
    assert seen == [torch.bfloat16] and logits.shape == (1, 3, 32, 32)
    model.inference_dtype = None
    model(torch.randn(1, 3, 32, 32), mode='tensor')
    assert seen[-1] == torch.float32


def test_bad_precisions_are_refused_with_the_place_named():
    with pytest.raises(ValueError, match='needs a GPU'):
        resolve_precision('fp16', 'cpu')
    assert resolve_precision('fp16', 'cuda') == 'fp16'
    with pytest.raises(ValueError, match=r"scale\.pretrain: precision must be one of .*'fp8'"):
        check_precision('fp8', 'scale.pretrain')


def test_optim_wrapper_configs_per_precision():
    assert with_precision(SGD, 'fp32') is SGD
    bf16 = with_precision(SGD, 'bf16')
    assert bf16['type'] == 'AutocastOptimWrapper' and bf16['dtype'] == 'bfloat16'
    assert bf16['optimizer'] == SGD['optimizer']
    fp16 = with_precision(SGD, 'fp16')
    assert fp16['type'] == 'AmpOptimWrapper' and fp16['loss_scale'] == 'dynamic'
    with pytest.raises(ValueError, match="method LARSy uses optim wrapper 'MyWrapper'"):
        with_precision(dict(SGD, type='MyWrapper'), 'bf16', 'method LARSy')


def test_autocast_wrapper_runs_forward_in_bf16_and_updates_in_fp32():
    init_default_scope(SCOPE)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 2))
    wrapper = build_optim_wrapper(model, with_precision(SGD, 'bf16'))
    assert isinstance(wrapper, AutocastOptimWrapper)
    before = model[0].weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 3, 8, 8))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().pow(2).mean())
    assert model[0].weight.dtype == torch.float32
    assert not torch.equal(model[0].weight, before)
    # outside the context everything is float32 again
    assert model(torch.randn(2, 3, 8, 8)).dtype == torch.float32
    # resume: the wrapper's state is the optimiser's
    state = wrapper.state_dict()
    assert 'state' in state and 'param_groups' in state


def test_nt_xent_stays_float32_under_autocast():
    torch.manual_seed(0)
    z1, z2 = torch.randn(8, 16).bfloat16(), torch.randn(8, 16).bfloat16()
    reference = nt_xent(z1.float(), z2.float(), 0.07)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = nt_xent(z1, z2, 0.07)
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, reference, rtol=1e-6, atol=1e-6)


def test_fused_updates_unless_the_config_picks_an_implementation():
    fused = stages.finetune_optim_wrapper(dict(lr=1e-3))
    assert fused['optimizer'] == dict(type='Adam', lr=1e-3, weight_decay=1e-5, fused=True)
    chosen = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1, foreach=True))
    assert stages._with_fused_update(chosen) is chosen
    other = dict(type='OptimWrapper', optimizer=dict(type='RMSprop', lr=0.1))
    assert stages._with_fused_update(other) is other


def test_fused_adam_trains_like_the_default_one():
    """The fused kernel is an implementation choice: same updates up to rounding."""
    results = []
    for fused in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Linear(8, 4)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-5, fused=fused)
        for step in range(5):
            torch.manual_seed(step)
            loss = model(torch.randn(16, 8)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        results.append(model.weight.detach().clone())
    assert torch.allclose(results[0], results[1], atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['MatSSL', 'MoCoV2', 'DenseCL'])
def test_every_ssl_method_pretrains_under_bf16(tmp_path, name):
    from matssl_bench.datasets.synthetic import SyntheticMicrographs

    method = build_method(load_suite('smoke'), name)
    pool = SyntheticMicrographs(size=64, train=2, val=1, test=1, unlabeled=2).unlabeled_pool()
    scale = dict(epochs=1, batch_size=4, patch_size=32, crop_size=32, precision='bf16')
    encoder, history = stages.pretrain(method, pool, 'resnet18', scale, 0, tmp_path / name)
    assert all(v.dtype == torch.float32 for v in encoder.values() if v.is_floating_point())
    assert len(history) == 1 and torch.isfinite(torch.tensor(history[0]['train_loss']))


def test_a_suite_with_an_unknown_precision_is_refused_before_running(tiny_suite):
    suite = load_suite(str(tiny_suite))
    suite.scale['finetune']['precision'] = 'half'
    with pytest.raises(ValueError, match="fine-tuning on synthetic: precision must be one of"):
        expand(suite)


@pytest.mark.slow
def test_cli_precision_changes_the_plan_and_is_recorded_and_tabled(tmp_path, tiny_suite):
    plans = {}
    for choice in (None, 'bf16'):
        args = ['--suite', str(tiny_suite), '--methods', 'MatSSL', '--dry-run', '--format', 'json']
        out = run_cli(*args, *(['--precision', choice] if choice else []))
        assert out.returncode == 0, out.stderr[-2000:]
        plans[choice] = {job['stage']: job['key'] for job in json.loads(out.stdout)['jobs']}
    # a different precision is a different result: nothing is reused from fp32 runs
    assert plans[None]['pretrain'] != plans['bf16']['pretrain']
    assert plans[None]['finetune'] != plans['bf16']['finetune']

    work = tmp_path / 'work'
    out = run_cli('--suite', str(tiny_suite), '--methods', 'MatSSL', '--precision', 'bf16',
                  '--work-dir', str(work))
    assert out.returncode == 0, out.stderr[-2000:]
    store = RecordStore(work)
    records = store.all('pretrain') + store.all('finetune')
    assert {r['stage']: r['precision'] for r in records} == dict(pretrain='bf16', finetune='bf16')
    table = finetune_table(records)
    assert list(table['precision']) == ['SSL bf16, FT bf16']
