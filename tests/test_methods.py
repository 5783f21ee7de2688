"""The SSL methods: MatSSL as published, mmselfsup's MoCoV2/DenseCL, export into U-Net++, learning."""
import math

import pytest
import torch

from matssl_bench.datasets.synthetic import SyntheticMicrographs
from matssl_bench.models.encoders import build_resnet
from matssl_bench.errors import EncoderMismatchError
from matssl_bench.models.losses import nt_xent
from matssl_bench.methods.matssl import MatSSLModel
from matssl_bench.registry import METHODS, MODELS
from matssl_bench.models.segmenters import UNetPlusPlusSegmenter
from matssl_bench.engine.stages import pretrain

TINY = dict(MatSSL=dict(hidden_dim=32, out_dim=16),
            MoCoV2=dict(queue_len=16, hidden_dim=32, feat_dim=16),
            DenseCL=dict(queue_len=16, hidden_dim=32, feat_dim=16),
            SimCLR=dict(hidden_dim=32, feat_dim=16), BYOL=dict(hidden_dim=32, feat_dim=16),
            SimSiam=dict(hidden_dim=32, feat_dim=24, pred_hidden_dim=8),
            BarlowTwins=dict(hidden_dim=32, feat_dim=24), MoCoV3=dict(hidden_dim=32, feat_dim=16))



def _method(name, **kw):
    return METHODS.get(name)(init='random', **{**TINY[name], **kw})


def _randomise_bn(module):
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)


def test_nt_xent_equals_equation_2_by_hand():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    z2 = torch.tensor([[2.0, 1.0], [-1.0, 1.0], [0.5, -1.0]])
    t = 0.07
    z = [z1[0], z2[0], z1[1], z2[1], z1[2], z2[2]]  # paper order: 2k-1, 2k are the two views of k

    def sim(a, b):
        return float(a @ b) / (math.hypot(*a.tolist()) * math.hypot(*b.tolist()))

    def l(i, j):
        denominator = sum(math.exp(sim(z[i], z[k]) / t) for k in range(len(z)) if k != i)
        return -math.log(math.exp(sim(z[i], z[j]) / t) / denominator)

    n = len(z) // 2
    expected = sum(l(2 * k, 2 * k + 1) + l(2 * k + 1, 2 * k) for k in range(n)) / (2 * n)
    assert float(nt_xent(z1, z2, t)) == pytest.approx(expected, rel=1e-5)


def test_matssl_default_settings():
    method = METHODS.get('MatSSL')()
    h = method.hparams
    assert method.init == 'imagenet' and h['temperature'] == 0.07
    assert (h['hidden_dim'], h['out_dim']) == (2048, 128)
    assert h['optimizer'] == dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-6)
    assert method.param_scheduler(50)[0]['eta_min'] == 1e-4
    assert MODELS.get('MatSSLModel') is MatSSLModel


def test_matssl_head_shapes_for_resnet50():
    with torch.device('meta'):
        model = MatSSLModel('resnet50')
    assert [tuple(g.shape) for g in model.encoder.gates] == [(1, 256), (1, 512), (1, 1024), (1, 2048)]
    assert model.encoder.out_features == 3840
    head = model.head
    assert tuple(head[0].weight.shape) == (2048, 3840) and head[0].bias is None
    assert isinstance(head[1], torch.nn.BatchNorm1d) and head[1].num_features == 2048
    assert isinstance(head[2], torch.nn.ReLU)
    assert tuple(head[3].weight.shape) == (128, 2048) and head[3].bias is None
    assert isinstance(head[4], torch.nn.BatchNorm1d) and head[4].num_features == 128


def test_gates_start_at_sigmoid_one_scale_pooled_stages_and_learn():
    torch.manual_seed(0)
    model = MatSSLModel('resnet18', hidden_dim=32, out_dim=16)
    for gate in model.encoder.gates:
        assert torch.equal(gate.data, torch.ones_like(gate))
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    stages = model.encoder.stage_features(x)
    net = model.backbone  # stage 1 includes the stem
    stem = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    assert torch.allclose(stages[0], net.layer1(stem))
    pooled = torch.cat([s.mean(dim=(2, 3)) for s in stages], dim=1)
    assert torch.allclose(model.encoder(x), torch.sigmoid(torch.tensor(1.0)) * pooled, atol=1e-6)

    model.train()
    loss = model([x, x.flip(3)], mode='loss')['loss']
    loss.backward()
    for gate in model.encoder.gates:
        assert gate.grad is not None and gate.grad.abs().sum() > 0


def _method_stage_features(name, model, x):
    if name == 'MatSSL':
        return model.encoder.stage_features(x)
    model.backbone.out_indices = (1, 2, 3, 4)  # mmselfsup's ResNet: 0 is the stem, 1-4 the stages
    try:
        return list(model.backbone(x))
    finally:
        model.backbone.out_indices = (4,)


@pytest.mark.parametrize('name', ['MatSSL', 'MoCoV2', 'DenseCL', 'SimCLR', 'BYOL', 'SimSiam',
                                  'BarlowTwins', 'MoCoV3'])
def test_exported_encoder_gives_the_same_stage_features_in_unetplusplus(name):
    torch.manual_seed(0)
    method = _method(name)
    model = method.build_model('resnet18', None)
    _randomise_bn(model.backbone)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        inside = _method_stage_features(name, model, x)
        seg = UNetPlusPlusSegmenter('resnet18', 3, encoder_state=method.export_encoder(model),
                                    decoder_channels=(8, 8, 8, 8, 8)).eval()
        outside = seg.net.encoder(x)[2:]  # smp: input, stem, then the four stages
    assert len(outside) == 4
    for a, b in zip(inside, outside):
        assert torch.allclose(a, b, atol=1e-5)


def test_key_mismatch_fails_loudly():
    state = {k: v for k, v in build_resnet('resnet18').state_dict().items() if k != 'fc.weight'}
    missing = dict(state)
    del missing['layer3.1.bn2.running_var']
    with pytest.raises(EncoderMismatchError, match=r'my file.*layer3\.1\.bn2\.running_var'):
        UNetPlusPlusSegmenter('resnet18', 2, encoder_state=missing, encoder_source='my file')
    extra = {**state, 'layer5.0.conv1.weight': torch.zeros(1)}
    with pytest.raises(EncoderMismatchError, match=r'unexpected.*layer5\.0\.conv1\.weight'):
        UNetPlusPlusSegmenter('resnet18', 2, encoder_state=extra)
    with pytest.raises(EncoderMismatchError, match='missing'):
        UNetPlusPlusSegmenter('resnet34', 2, encoder_state=state)


@pytest.mark.parametrize('name', ['MoCoV2', 'DenseCL'])
def test_mmselfsup_default_settings_and_key_encoder(name):
    method = METHODS.get(name)()
    h = method.hparams
    assert (h['queue_len'], h['momentum'], h['temperature']) == (65536, 0.999, 0.2)
    assert method.init == 'imagenet'
    if name == 'DenseCL':
        assert h['loss_lambda'] == 0.5
    assert METHODS.get(name)(queue_len=1024).hparams['queue_len'] == 1024  # a suite's method_cfg

    torch.manual_seed(0)
    initial = {k: v for k, v in build_resnet('resnet18').state_dict().items()
               if not k.startswith('fc.')}
    model = _method(name).build_model('resnet18', initial)
    assert model.encoder_k.momentum == pytest.approx(1 - 0.999)  # mmengine's EMA convention
    model.init_weights()  # what the Runner calls: must not overwrite the loaded encoder
    backbone = model.backbone.state_dict()
    key = model.encoder_k.module[0].state_dict()
    for k, v in initial.items():
        assert torch.equal(backbone[k], v), k
        assert torch.equal(key[k], v), k
    assert not any(p.requires_grad for p in model.encoder_k.parameters())

    # One EMA step after the first: key <- key + 0.001 (query - key)
    model.encoder_k.steps.fill_(1)
    with torch.no_grad():
        model.backbone.conv1.weight.add_(1.0)
    before = model.encoder_k.module[0].conv1.weight.clone()
    model.encoder_k.update_parameters(torch.nn.Sequential(model.backbone, model.neck))
    expected = before + 0.001 * (model.backbone.conv1.weight - before)
    assert torch.allclose(model.encoder_k.module[0].conv1.weight, expected)


_EASY_VIEWS = dict(crop_scale=(0.6, 1.0), jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
_SCALE = dict(epochs=4, batch_size=16, patch_size=32, crop_size=32, overlap=0.0, num_workers=0)


def test_short_matssl_run_lowers_the_loss(tmp_path):
    """The real pipeline (Runner, synthetic patches, SimCLR views): last epoch below the first."""
    images = SyntheticMicrographs(size=64, train=0, val=0, test=0, unlabeled=8).unlabeled_pool()
    method = _method('MatSSL', augmentation=_EASY_VIEWS)
    _, history = pretrain(method, images, 'resnet18', _SCALE, seed=0, run_dir=tmp_path)
    losses = [h['train_loss'] for h in history]
    assert len(losses) == _SCALE['epochs'] and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize('name', ['MatSSL', 'MoCoV2', 'DenseCL'])
def test_a_few_steps_lower_the_fixed_batch_loss(name):
    """Fixed views of synthetic patches; the method's own optimiser; loss before vs after 8 steps.

    A momentum queue filled by the same few images would hold the positives'
    twins, so for MoCoV2/DenseCL the queues are held at their initial random
    negatives (restored after every step) to keep the measurements comparable.
    """
    from mmengine.optim import build_optim_wrapper

    from matssl_bench.data.patches import TwoViewPatches

    torch.manual_seed(0)
    images = SyntheticMicrographs(size=64, train=0, val=0, test=0, unlabeled=4).unlabeled_pool()
    method = _method(name, augmentation=_EASY_VIEWS)
    data = TwoViewPatches(images, 32, 0.0, method.view_transform(32))
    views = [torch.stack([data[i]['inputs'][v] for i in range(len(data))]) for v in (0, 1)]
    batch = dict(inputs=views, data_samples=dict(index=torch.arange(len(data))))
    model = method.build_model('resnet18', None).train()
    optim = build_optim_wrapper(model, method.optim_wrapper(len(data)))
    queues = {k: v.clone() for k, v in model.named_buffers() if k.startswith('queue')}

    def step(train):
        if train:
            loss = sum(model.train_step(batch, optim).values())
        else:
            with torch.no_grad():
                loss = sum(v for k, v in model(**batch, mode='loss').items() if 'loss' in k)
        for k, v in queues.items():
            model.get_buffer(k).copy_(v)
        return float(loss)

    step(train=False)  # the key encoder's first update copies the query encoder
    before = step(train=False)
    for _ in range(8):
        step(train=True)
    after = step(train=False)
    assert after < before, (before, after)


@pytest.mark.parametrize('name', ['MatSSL', 'MoCoV2', 'DenseCL'])
def test_runner_keeps_the_initial_encoder(name, tmp_path, monkeypatch):
    """With a zero learning rate the exported parameters are the ImageNet file's, bit for bit."""
    torch.manual_seed(3)
    weights = tmp_path / 'imagenet_resnet18.pth'  # no hash in the name: not checked
    reference = build_resnet('resnet18').state_dict()
    torch.save(reference, weights)
    method = METHODS.get(name)(init='imagenet', weights_path=str(weights), min_lr=0.0,
                               optimizer=dict(type='SGD', lr=0.0, momentum=0.9, weight_decay=0.0),
                               **TINY[name])
    images = SyntheticMicrographs(size=32, train=0, val=0, test=0, unlabeled=16).unlabeled_pool()
    encoder, _ = pretrain(method, images, 'resnet18', dict(_SCALE, epochs=1),
                          seed=0, run_dir=tmp_path / 'run')
    params = {k for k, _ in build_resnet('resnet18').named_parameters() if not k.startswith('fc.')}
    for k in params:
        assert torch.equal(encoder[k], reference[k]), k
