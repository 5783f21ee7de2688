"""The built-in Checkpoint method: any encoder file scored as its own row."""
import pandas as pd
import pytest
import torch

from conftest import run_cli, write_tiny_suite
from matssl_bench.errors import ConfigError, MissingResourceError
from matssl_bench.method_api import build_resnet
from matssl_bench.suite.plan import build_method, expand, load_suite


def _mmselfsup_file(path, seed=0, prefix='backbone.'):
    """An mmselfsup-style checkpoint: encoder under ``prefix``, a neck, a momentum copy."""
    torch.manual_seed(seed)
    encoder = {k: v for k, v in build_resnet('resnet18').state_dict().items()
               if not k.startswith('fc.')}
    state = {f'{prefix}{k}': v for k, v in encoder.items()}
    state.update({f'encoder_k.module.0.{k}': v.clone() for k, v in encoder.items()})
    state['neck.mlp.0.weight'] = torch.zeros(4, 512)
    torch.save(dict(meta=dict(epoch=3), state_dict=state), path)
    return encoder


def _suite(tmp_path, **cfg):
    suite = write_tiny_suite(tmp_path, methods='Checkpoint', epochs=1)
    suite.write_text(suite.read_text() + f'method_cfg["Checkpoint"] = {cfg!r}\n')
    return suite


def test_checkpoint_encoder_key_and_label(tmp_path):
    encoder = _mmselfsup_file(tmp_path / 'enc.pth')
    suite = load_suite(str(_suite(tmp_path, path=str(tmp_path / 'enc.pth'), label='BYOL')))
    method = build_method(suite, 'Checkpoint')
    assert method.name == 'BYOL' and method.init_label('resnet18') == 'checkpoint (enc.pth)'
    state = method.encoder_state('resnet18')
    assert state.keys() == encoder.keys()
    assert all(torch.equal(state[k], encoder[k]) for k in encoder)
    (job,) = expand(suite)
    _mmselfsup_file(tmp_path / 'enc.pth', seed=1)  # a new file under the same name reruns
    assert expand(load_suite(str(_suite(tmp_path, path=str(tmp_path / 'enc.pth'),
                                        label='BYOL'))))[0].key != job.key
    # a layout the converter does not know, mapped onto one it knows
    _mmselfsup_file(tmp_path / 'other.pth', prefix='model.encoder.')
    mapped = build_method(load_suite(str(_suite(
        tmp_path, path=str(tmp_path / 'other.pth'), key_map={'model.encoder.': 'backbone.'}))),
        'Checkpoint')
    assert mapped.encoder_state('resnet18').keys() == encoder.keys()


def test_checkpoint_needs_a_path_and_is_not_matched_by_star(tmp_path):
    suite = load_suite(str(write_tiny_suite(tmp_path, methods='*')))
    assert 'Checkpoint' not in {job.method for job in expand(suite)}
    with pytest.raises(ConfigError, match='path='):
        build_method(load_suite(str(_suite(tmp_path, label='x'))), 'Checkpoint')
    missing = build_method(load_suite(str(_suite(tmp_path, path=str(tmp_path / 'no.pth')))),
                           'Checkpoint')
    with pytest.raises(MissingResourceError, match='no.pth: checkpoint file'):
        missing.encoder_state('resnet18')


def test_checkpoint_row_in_the_table(tmp_path):
    _mmselfsup_file(tmp_path / 'enc.pth')
    suite = _suite(tmp_path, path=str(tmp_path / 'enc.pth'), label='my encoder')
    out = run_cli('--suite', str(suite), '--work-dir', str(tmp_path / 'work'), '--threads', '1')
    assert out.returncode == 0, out.stderr[-3000:]
    table = pd.read_csv(tmp_path / 'work' / 'tables' / 'table4.csv')
    row = table.set_index('method').loc['my encoder']
    assert row['SSL init'] == 'checkpoint (enc.pth)' and 0 < row['mean'] <= 100
