"""Conversion of foreign checkpoints (built here in the layouts they are published in)."""
import runpy
import sys

import pytest
import torch
from torch import nn

from conftest import REPO
from matssl_bench.models.foreign_checkpoints import convert_file, convert_state, infer_arch
from matssl_bench.models.encoders import build_resnet, encoder_only, stage_channels
from matssl_bench.errors import EncoderMismatchError
from matssl_bench.methods.matssl import MatSSLModel
from matssl_bench.registry import METHODS



def _randomise(module, seed=1):
    g = torch.Generator().manual_seed(seed)
    for name, t in module.state_dict().items():
        if t.is_floating_point():
            t.copy_(torch.rand(t.shape, generator=g) + 0.5 if 'running_var' in name
                    else torch.randn(t.shape, generator=g) * 0.1)


class AuthorsMatSSL(nn.Module):
    """The module layout of the authors' MatSSL (so its state dict has their key names)."""

    def __init__(self, arch='resnet18', hidden=32, out=16):
        super().__init__()
        self.backbone = b = build_resnet(arch)
        b.fc = nn.Identity()
        dims = stage_channels(arch)
        self.projection_head = nn.Module()
        self.projection_head.layers = nn.Sequential(
            nn.Linear(sum(dims), hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, out, bias=False), nn.BatchNorm1d(out))
        self.layer1 = nn.Sequential(b.conv1, b.bn1, b.relu, b.maxpool, b.layer1)
        self.layer2, self.layer3, self.layer4 = b.layer2, b.layer3, b.layer4
        self.attn_module = nn.Module()
        self.attn_module.gates = nn.ParameterList(nn.Parameter(torch.ones(1, d)) for d in dims)

    def forward(self, x):
        feats = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x.mean(dim=(2, 3)))
        gated = [torch.sigmoid(g) * f for g, f in zip(self.attn_module.gates, feats)]
        return self.projection_head.layers(torch.cat(gated, dim=1))


def _resnet_state(arch='resnet18', seed=0, fc=False):
    torch.manual_seed(seed)
    net = build_resnet(arch)
    _randomise(net, seed)
    state = net.state_dict()
    return state if fc else encoder_only(state)


@pytest.mark.parametrize('data_parallel', [False, True])
def test_authors_matssl_checkpoint_converts_and_loads_with_gates_and_head(tmp_path, data_parallel):
    torch.manual_seed(0)
    authors = AuthorsMatSSL()
    _randomise(authors)
    state = authors.state_dict()
    assert 'layer1.4.0.conv1.weight' in state and 'backbone.layer1.0.conv1.weight' in state
    if data_parallel:
        state = {f'module.{k}': v for k, v in state.items()}
    path = tmp_path / 'matssl_loss_3.1_epoch49.pth'
    torch.save(state, path)

    done = convert_file(path)
    assert (done.layout, done.arch, done.prefix) == ('matssl-authors', 'resnet18', 'backbone.')
    expected = authors.backbone.state_dict()
    assert set(done.state) == set(expected)
    assert all(torch.equal(done.state[k], v) for k, v in expected.items())
    assert set(done.dropped) == {'layer1', 'layer2', 'layer3', 'layer4', 'attn_module',
                                 'projection_head'}

    model = MatSSLModel('resnet18', hidden_dim=32, out_dim=16)
    model.load_authors_checkpoint(path)
    authors.eval(), model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.embed(x), authors(x), atol=1e-5)


def test_authors_matssl_alias_disagreement_and_wrong_model_fail(tmp_path):
    state = AuthorsMatSSL().state_dict()
    state['layer2.0.conv1.weight'] = state['layer2.0.conv1.weight'] + 1
    path = tmp_path / 'bad.pth'
    torch.save(state, path)
    with pytest.raises(EncoderMismatchError, match=r'bad\.pth.*layer2\.0\.conv1\.weight'):
        convert_file(path)
    good = tmp_path / 'good.pth'
    torch.save(AuthorsMatSSL(hidden=64).state_dict(), good)
    with pytest.raises(EncoderMismatchError, match=r'good\.pth.*head\.0\.weight'):
        MatSSLModel('resnet18', hidden_dim=32, out_dim=16).load_authors_checkpoint(good)


@pytest.mark.parametrize('layout,query,momentum,heads', [
    ('mocov2-authors', 'backbone.', 'key_backbone.', ['projection_head.', 'key_projection_head.']),
    ('densecl-authors', 'backbone.backbone.', 'backbone_momentum.backbone.',
     ['projection_head_global.', 'projection_head_local.', 'projection_head_global_momentum.',
      'projection_head_local_momentum.'])])
def test_authors_momentum_contrast_checkpoints(tmp_path, layout, query, momentum, heads):
    q, k = _resnet_state(seed=0), _resnet_state(seed=1)
    state = {**{query + n: v for n, v in q.items()}, **{momentum + n: v for n, v in k.items()},
             **{h + 'layers.0.weight': torch.zeros(4, 512) for h in heads}}
    path = tmp_path / 'ssl.pth'
    torch.save(state, path)
    got_q = convert_file(path)
    got_k = convert_file(path, copy='momentum')
    assert got_q.layout == got_k.layout == layout
    assert all(torch.equal(got_q.state[n], v) for n, v in q.items()) and len(got_q.state) == len(q)
    assert all(torch.equal(got_k.state[n], v) for n, v in k.items()) and len(got_k.state) == len(k)


def test_mmselfsup_checkpoint_gives_the_exported_encoder(tmp_path):
    method = METHODS.get('MoCoV2')(init='random', queue_len=16, hidden_dim=32, feat_dim=16)
    model = method.build_model('resnet18', _resnet_state())
    path = tmp_path / 'epoch_200.pth'
    torch.save(dict(meta=dict(epoch=200), state_dict=model.state_dict()), path)
    done = convert_file(path, arch='resnet18')
    assert done.layout == 'openmmlab' and {'neck', 'encoder_k', 'queue'} <= set(done.dropped)
    exported = method.export_encoder(model)
    assert set(done.state) == set(exported)
    assert all(torch.equal(done.state[k], v) for k, v in exported.items())
    assert convert_file(path, copy='momentum').prefix == 'encoder_k.module.0.'


def test_micronet_and_torchvision_files(tmp_path):
    state = _resnet_state('resnet34', fc=True)
    path = tmp_path / 'resnet34_pretrained_microscopynet_v1.0.pth.tar'
    torch.save({f'module.{k}': v for k, v in state.items()}, path)
    done = convert_file(path)
    assert (done.layout, done.arch, done.dropped) == ('torchvision', 'resnet34', {'fc': 2})
    assert set(done.state) == set(encoder_only(state))


def test_mismatches_fail_loudly_naming_file_and_keys(tmp_path):
    method = METHODS.get('MoCoV2')(init='random', queue_len=16, hidden_dim=32, feat_dim=16)
    state = method.build_model('resnet18', None).state_dict()
    del state['backbone.layer4.1.bn2.weight']
    path = tmp_path / 'incomplete.pth'
    torch.save(dict(state_dict=state), path)
    with pytest.raises(EncoderMismatchError, match=r'incomplete\.pth.*layer4\.1\.bn2\.weight'):
        convert_file(path, arch='resnet18')

    plain = {**_resnet_state(), 'classifier.weight': torch.zeros(2)}
    with pytest.raises(EncoderMismatchError, match=r'classifier\.weight'):
        convert_state(plain, source='plain.pth')
    with pytest.raises(EncoderMismatchError, match='missing keys'):
        convert_state(_resnet_state(), arch='resnet34')
    with pytest.raises(EncoderMismatchError, match=r'unrecognised checkpoint layout.*net\.w'):
        convert_state({'net.w': torch.zeros(1)})
    with pytest.raises(EncoderMismatchError, match='no momentum encoder'):
        convert_state(_resnet_state(), copy='momentum')


def test_infer_arch():
    for arch in ('resnet18', 'resnet34', 'resnet50', 'resnet101'):
        with torch.device('meta'):
            assert infer_arch(build_resnet(arch).state_dict()) == arch


def test_convert_tool_writes_atomically_and_reports_errors(tmp_path, monkeypatch, capsys):
    torch.save(AuthorsMatSSL().state_dict(), tmp_path / 'authors.pth')
    out = tmp_path / 'out'
    tool = str(REPO / 'tools' / 'convert_checkpoint.py')

    def run(*args):
        monkeypatch.setattr(sys, 'argv', [tool, *args])
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(tool, run_name='__main__')
        return exit_info.value.code

    assert run(str(tmp_path / 'authors.pth'), str(out / 'matssl_r18.pth')) == 0
    assert 'matssl-authors' in capsys.readouterr().out
    assert [p.name for p in out.iterdir()] == ['matssl_r18.pth']  # no temporary left over
    written = torch.load(out / 'matssl_r18.pth', weights_only=True)
    assert set(written) == set(encoder_only(build_resnet('resnet18').state_dict()))

    assert run(str(tmp_path / 'authors.pth'), str(out / 'x.pth'), '--arch', 'resnet50') == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'authors.pth' in err
    assert not (out / 'x.pth').exists()
