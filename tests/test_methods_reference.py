"""Each comparison method against mmselfsup's own model built from its reference config.

The reference model is built from the reference config file shipped with
mmselfsup 1.0.0, changed only where the suite documents a change: ResNet-18
instead of ResNet-50 (and the neck's input width with it), tiny MLP widths
(the plugin gets the same ones), plain batch norm instead of SyncBN. Both
models are built with the same seed; their initial weights must be equal (the
reference's init recipe: zero-initialised residual BN, Kaiming necks...), and
one step on the same batch must give the same loss and the same gradient for
every parameter. The suite feeds views it normalised itself, the reference
raw BGR pixels through its own data preprocessor. For momentum methods a
second step checks the EMA target against the reference and against the
cosine-momentum formula. The optimiser recipe is checked against the
reference's at the reference's batch.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import mmselfsup
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.model import BaseAveragedModel
from mmengine.registry import DefaultScope
from torchvision.transforms import v2

from matssl_bench.data.patches import IMAGENET_MEAN, IMAGENET_STD
from matssl_bench.registry import METHODS

CONFIGS = Path(mmselfsup.__file__).parent / '.mim'
TINY = dict(SimCLR=dict(hidden_dim=32, feat_dim=16),
            BYOL=dict(hidden_dim=32, feat_dim=16),
            SimSiam=dict(hidden_dim=32, feat_dim=24, pred_hidden_dim=8),
            BarlowTwins=dict(hidden_dim=32, feat_dim=24),
            MoCoV3=dict(hidden_dim=32, feat_dim=16))
MAX_ITERS = 10  # what the Runner tells the cosine-momentum EMA


def _reference_model_cfg(method) -> Config:
    """The reference config's model, with the suite's documented changes at test scale."""
    cfg = Config.fromfile(CONFIGS / method.reference_config).model
    h = method.hparams
    cfg.backbone.update(depth=18, norm_cfg=dict(type='BN'))
    cfg.neck.update(in_channels=512, hid_channels=h['hidden_dim'], out_channels=h['feat_dim'],
                    norm_cfg=dict(type='BN1d'))
    if 'predictor' in cfg.head:
        cfg.head.predictor.update(in_channels=h['feat_dim'], out_channels=h['feat_dim'],
                                  hid_channels=h.get('pred_hidden_dim', h['hidden_dim']),
                                  norm_cfg=dict(type='BN1d'))
    if 'in_channels' in cfg.head:
        cfg.head.in_channels = h['feat_dim']
    return cfg


def _online(model) -> dict:
    """State of everything but the momentum copies (which the first update overwrites)."""
    ema = {name for name, m in model.named_modules() if isinstance(m, BaseAveragedModel)}
    return {k: v for k, v in model.state_dict().items()
            if not any(k.startswith(e + '.') for e in ema)}


def _step(model, batch):
    losses = model._run_forward(model.data_preprocessor(batch, True), mode='loss')
    loss, _ = model.parse_losses(losses)
    model.zero_grad(set_to_none=True)
    loss.backward()
    return loss.detach()


def _ema_modules(model):
    return [m for m in model.modules() if isinstance(m, BaseAveragedModel)]


def _check_recipe(name, method):
    """Optimiser, lr at the reference's batch, exclusions, warm-up share: as the reference."""
    full = Config.fromfile(CONFIGS / method.reference_config)
    gpus, per_gpu = map(int, re.search(r'_(\d+)xb(\d+)', method.reference_config).groups())
    reference = full.optim_wrapper
    ours = method.optim_wrapper(gpus * per_gpu)  # one process holding the reference's batch
    assert ours['optimizer']['type'].split('.')[-1] == reference.optimizer.type
    for key in ('lr', 'momentum', 'weight_decay'):
        assert ours['optimizer'][key] == pytest.approx(reference.optimizer[key]), key
    assert ours.get('paramwise_cfg') == reference.get('paramwise_cfg')
    warmups = [s for s in full.param_scheduler if s.type == 'LinearLR']
    if warmups:
        share = warmups[0].end / full.train_cfg.max_epochs
        assert method.hparams['warmup_fraction'] == pytest.approx(share)
        assert method.hparams['warmup_start_factor'] == warmups[0].start_factor
        assert method.param_scheduler(100)[0]['end'] == round(100 * share)
    else:
        assert method.param_scheduler(100)[0]['type'] == 'CosineAnnealingLR'
    cosine = [s for s in full.param_scheduler if s.type == 'CosineAnnealingLR'][0]
    if 'eta_min' in cosine:
        assert cosine.eta_min == pytest.approx(method.hparams['min_lr_ratio']
                                               * reference.optimizer.lr)
    else:
        assert method.hparams['min_lr'] == 0.0 and method.hparams['min_lr_ratio'] is None
    for hook in full.get('custom_hooks', []):  # SimSiam's fixed predictor lr
        (ours_hook,) = [h for h in method.custom_hooks(gpus * per_gpu)
                        if h['type'].split('.')[-1] == hook.type]
        assert ours_hook['lr'] == pytest.approx(hook.lr) and ours_hook['fix_pred_lr']


@pytest.mark.parametrize('name', sorted(TINY))
def test_method_matches_mmselfsup_reference(name):
    from mmselfsup.registry import MODELS as SELFSUP_MODELS
    from mmselfsup.structures import SelfSupDataSample

    method = METHODS.get(name)(init='random', **TINY[name])
    assert not METHODS.get(name).in_wildcards  # not in the paper's suites' '*' rows
    _check_recipe(name, method)
    MessageHub.get_current_instance().update_info('max_iters', MAX_ITERS)

    torch.manual_seed(0)
    ours = method.build_model('resnet18', None).train()
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmselfsup'):
        reference = SELFSUP_MODELS.build(_reference_model_cfg(method))
        reference.init_weights()
    reference.train()
    assert isinstance(ours, type(reference).__mro__[0])
    ours_init, reference_init = _online(ours), _online(reference)
    assert ours_init.keys() == reference_init.keys()
    for k, v in reference_init.items():
        assert torch.equal(ours_init[k], v), f'initial {k}'
    reference.load_state_dict(ours.state_dict())  # momentum copies too

    g = torch.Generator().manual_seed(1)
    pixels = [torch.randint(0, 256, (4, 3, 32, 32), generator=g).float() for _ in range(2)]
    normalise = v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    reference_batch = dict(inputs=[p[:, [2, 1, 0]] for p in pixels],  # BGR, as mmcv loads
                           data_samples=[SelfSupDataSample() for _ in range(4)])
    reference_views, _ = reference.data_preprocessor(reference_batch, True)
    ours_views = [normalise(p / 255) for p in pixels]  # what the suite's views end with
    for a, b in zip(ours_views, reference_views):
        assert torch.allclose(a, b, atol=1e-5)
    # from here both get the same tensors: exact comparisons
    ours_batch = dict(inputs=[v.clone() for v in reference_views],
                      data_samples=dict(index=torch.arange(4)))

    for step in range(2):
        ours_loss = _step(ours, ours_batch)
        reference_loss = _step(reference, dict(reference_batch, inputs=[p.clone() for p in reference_batch['inputs']]))
        assert torch.isfinite(ours_loss)
        assert torch.equal(ours_loss, reference_loss), (step, ours_loss, reference_loss)
        reference_params = dict(reference.named_parameters())
        for k, p in ours.named_parameters():
            q = reference_params[k]
            assert (p.grad is None) == (q.grad is None), k
            if p.grad is not None:
                assert torch.equal(p.grad, q.grad), f'step {step}: gradient of {k}'
        for a, b in zip(_ema_modules(ours), _ema_modules(reference)):
            for (k, p), q in zip(a.module.named_parameters(), b.module.parameters()):
                assert torch.equal(p, q), f'step {step}: momentum copy {k}'
        if step == 0:
            targets = [[p.clone() for p in m.module.parameters()] for m in _ema_modules(ours)]
            with torch.no_grad():  # the same update on both, so that step 2 moves the target
                for model in (ours, reference):
                    for p in model.parameters():
                        if p.grad is not None:
                            p.sub_(0.5 * p.grad)

    # the momentum copy after its second update: m * before + (1 - m) * online, m on a cosine
    for ema, before in zip(_ema_modules(ours), targets):
        assert int(ema.steps) == 2
        base = method.hparams['momentum']
        m = 1 - (1 - base) * (math.cos(math.pi * 1 / MAX_ITERS) + 1) / 2
        online = torch.nn.Sequential(ours.backbone, ours.neck).parameters()
        for after, old, new in zip(ema.module.parameters(), before, online):
            assert torch.allclose(after, m * old + (1 - m) * new, atol=1e-6)
    assert bool(_ema_modules(ours)) == (name in ('BYOL', 'MoCoV3'))
