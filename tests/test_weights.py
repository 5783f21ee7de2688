"""Published weights read from disk: ImageNet (torch cache) and MicroNet, and their missing-file errors."""
import pytest
import torch

from matssl_bench.models.encoders import build_resnet, encoder_only
from matssl_bench.errors import EncoderMismatchError, MissingResourceError
from matssl_bench.registry import METHODS
from matssl_bench.models import weights
from matssl_bench.models.weights import WEIGHTS_ENV, WeightHashError, file_sha256, micronet_file_names


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    folder = tmp_path / 'torch' / 'hub' / 'checkpoints'
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def trust(monkeypatch):
    """Pin a test file's own sha256 (a made-up file cannot carry torchvision's hash prefix)."""
    def pin(path):
        monkeypatch.setitem(weights.PINNED_SHA256, path.name, file_sha256(path))
        return path
    return pin


def _save_resnet(path, arch='resnet18', prefix=''):
    torch.manual_seed(0)
    state = build_resnet(arch).state_dict()
    torch.save({prefix + k: v for k, v in state.items()}, path)
    return encoder_only(state)


def _same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_imagenet_weights_from_the_torch_cache(torch_home, trust):
    expected = _save_resnet(torch_home / 'resnet18-f37072fd.pth')
    trust(torch_home / 'resnet18-f37072fd.pth')
    assert _same(METHODS.get('SupervisedImageNet')().encoder_state('resnet18'), expected)
    assert _same(METHODS.get('MatSSL')().initial_encoder_state('resnet18'), expected)


def test_weights_folder_from_the_environment(torch_home, tmp_path, monkeypatch, trust):
    folder = tmp_path / 'weights'
    folder.mkdir()
    expected = _save_resnet(folder / 'resnet18-f37072fd.pth')
    trust(folder / 'resnet18-f37072fd.pth')
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    assert _same(METHODS.get('MoCoV2')().initial_encoder_state('resnet18'), expected)


def test_missing_imagenet_file_says_which_file_and_where(torch_home):
    with pytest.raises(MissingResourceError) as error:
        METHODS.get('SupervisedImageNet')().encoder_state('resnet50')
    text = str(error.value)
    assert f'{torch_home}/resnet50-0676ba61.pth' in text  # the file and where to put it
    assert 'https://download.pytorch.org/models/resnet50-0676ba61.pth' in text
    assert 'resnet50-11ad3fa6.pth' not in text  # V2 is a different model, never a fallback


def test_imagenet_file_of_the_wrong_depth_fails_naming_it(torch_home, trust):
    _save_resnet(torch_home / 'resnet18-f37072fd.pth', arch='resnet34')
    trust(torch_home / 'resnet18-f37072fd.pth')
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


def test_file_whose_content_does_not_match_its_name_is_refused(torch_home):
    path = torch_home / 'resnet18-f37072fd.pth'
    _save_resnet(path)
    actual = file_sha256(path)
    with pytest.raises(WeightHashError) as error:
        METHODS.get('SupervisedImageNet')().encoder_state('resnet18')
    text = str(error.value)
    assert str(path) in text and 'f37072fd' in text and actual in text


def test_imagenet_v2_only_when_asked_for_by_name(torch_home, trust):
    v2 = torch_home / 'resnet50-11ad3fa6.pth'
    torch.save({}, v2)  # only the name matters until loading
    trust(v2)
    with pytest.raises(MissingResourceError, match='resnet50-0676ba61.pth'):
        METHODS.get('SupervisedImageNet')().weight_file('resnet50')
    method = METHODS.get('SupervisedImageNet')(imagenet_weights='V2')
    assert method.weight_file('resnet50') == v2
    assert method.init_label('resnet50') == 'imagenet-v2'
    assert method.weights_sha256('resnet50') == {v2.name: file_sha256(v2)}
    legacy = METHODS.get('MatSSL')(imagenet_weights='legacy')
    with pytest.raises(MissingResourceError, match='resnet50-19c8e357.pth'):
        legacy.weight_file('resnet50')
    # a V2 file given by path is not taken for the V1 the method asks for
    with pytest.raises(MissingResourceError, match="imagenet_weights='V2'"):
        METHODS.get('SupervisedImageNet')(weights_path=str(v2)).weight_file('resnet50')
    with pytest.raises(ValueError, match='imagenet_weights must be one of V1, V2, legacy'):
        METHODS.get('SupervisedImageNet')(imagenet_weights='v3')


def test_init_labels():
    assert METHODS.get('SupervisedImageNet')().init_label('resnet50') == 'imagenet-v1'
    assert METHODS.get('RandomInit')().init_label('resnet50') == 'random'
    assert METHODS.get('MicroNet')(variant='image-micronet').init_label('resnet50') == 'image-micronet'
    assert weights.init_label('micronet', 'resnet50_pretrained_microscopynet_v1.1.pth.tar') == 'micronet'
    assert weights.init_label('micronet', 'nasa.pth') == 'micronet (nasa.pth)'
    assert weights.init_label('imagenet', '/x/resnet50-19c8e357.pth') == 'imagenet-legacy'
    assert weights.init_label('imagenet', weights.Path('mine.pth')) == 'imagenet (mine.pth)'


def test_hashes_are_cached_per_path_size_and_mtime(tmp_path):
    path = tmp_path / 'w.pth'
    path.write_bytes(b'a' * 1000)
    first = file_sha256(path)
    stat = path.stat()
    path.write_bytes(b'b' * 1000)  # same size; restore the mtime: the cached hash is used
    import os
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_sha256(path) == first
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert file_sha256(path) != first  # a replaced file (new mtime) is hashed again


def test_weight_file_hash_is_part_of_job_keys_and_records(tmp_path, torch_home):
    from conftest import write_tiny_suite
    from matssl_bench.suite.plan import expand, load_suite

    path = tmp_path / 'my_resnet18.pth'
    _save_resnet(path)
    suite_file = write_tiny_suite(tmp_path, methods='SupervisedImageNet')
    suite_file.write_text(suite_file.read_text() + f'\nmethod_cfg.update(SupervisedImageNet=dict('
                          f'weights_path={str(path)!r}))\n')
    (job,) = expand(load_suite(str(suite_file)))
    assert job.spec['weights_sha256'] == {'my_resnet18.pth': file_sha256(path)}
    _save_resnet(path, arch='resnet34')  # replaced: another file, another key
    (again,) = expand(load_suite(str(suite_file)))
    assert again.key != job.key
