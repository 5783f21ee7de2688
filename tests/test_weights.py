"""Published weights read from disk: ImageNet (torch cache) and MicroNet, and their missing-file errors."""
import pytest
import torch

from matssl_bench.encoders import build_resnet, encoder_only
from matssl_bench.errors import EncoderMismatchError, MissingResourceError
from matssl_bench.registry import METHODS
from matssl_bench.weights import WEIGHTS_ENV, micronet_file_names


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    folder = tmp_path / 'torch' / 'hub' / 'checkpoints'
    folder.mkdir(parents=True)
    return folder


def _save_resnet(path, arch='resnet18', prefix=''):
    torch.manual_seed(0)
    state = build_resnet(arch).state_dict()
    torch.save({prefix + k: v for k, v in state.items()}, path)
    return encoder_only(state)


def _same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_imagenet_weights_from_the_torch_cache(torch_home):
    expected = _save_resnet(torch_home / 'resnet18-f37072fd.pth')
    assert _same(METHODS.get('SupervisedImageNet')().encoder_state('resnet18'), expected)
    assert _same(METHODS.get('MatSSL')().initial_encoder_state('resnet18'), expected)


def test_weights_folder_from_the_environment(torch_home, tmp_path, monkeypatch):
    folder = tmp_path / 'weights'
    folder.mkdir()
    expected = _save_resnet(folder / 'resnet18-f37072fd.pth')
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    assert _same(METHODS.get('MoCoV2')().initial_encoder_state('resnet18'), expected)


def test_missing_imagenet_file_says_which_file_and_where(torch_home):
    with pytest.raises(MissingResourceError) as error:
        METHODS.get('SupervisedImageNet')().encoder_state('resnet50')
    text = str(error.value)
    assert f'{torch_home}/resnet50-0676ba61.pth' in text  # the file and where to put it
    assert 'https://download.pytorch.org/models/resnet50-0676ba61.pth' in text
    assert 'resnet50-19c8e357.pth' in text  # the authors' older file is accepted too


def test_imagenet_file_of_the_wrong_depth_fails_naming_it(torch_home):
    _save_resnet(torch_home / 'resnet18-f37072fd.pth', arch='resnet34')
    with pytest.raises(EncoderMismatchError, match=r'resnet18-f37072fd\.pth'):
        METHODS.get('SupervisedImageNet')().encoder_state('resnet18')


def test_micronet_file_names():
    assert micronet_file_names('resnet50') == ['resnet50_pretrained_microscopynet_v1.1.pth.tar',
                                               'resnet50_pretrained_microscopynet_v1.0.pth.tar']
    assert micronet_file_names('resnet50', 'image-micronet') == [
        'resnet50_pretrained_imagenet-microscopynet_v1.0.pth.tar']
    assert micronet_file_names('resnet18') == ['resnet18_pretrained_microscopynet_v1.0.pth.tar']


def test_micronet_from_a_folder_and_the_torch_cache(torch_home, tmp_path):
    expected = _save_resnet(torch_home / 'resnet18_pretrained_microscopynet_v1.0.pth.tar',
                            prefix='module.')
    method = METHODS.get('MicroNet')()
    assert not method.needs_pretraining and method.name == 'MicroNet'
    assert _same(method.encoder_state('resnet18'), expected)

    folder = tmp_path / 'nasa'
    folder.mkdir()
    other = _save_resnet(folder / 'resnet18_pretrained_imagenet-microscopynet_v1.0.pth.tar')
    got = METHODS.get('MicroNet')(variant='image-micronet', weights_dir=str(folder))
    assert _same(got.encoder_state('resnet18'), other)


def test_missing_micronet_file_says_which_file_and_where(torch_home):
    with pytest.raises(MissingResourceError) as error:
        METHODS.get('MicroNet')().encoder_state('resnet50')
    text = str(error.value)
    assert 'resnet50_pretrained_microscopynet_v1.1.pth.tar' in text and str(torch_home) in text
    assert 'nasa-public-data.s3.amazonaws.com/microscopy_segmentation_models/' in text
