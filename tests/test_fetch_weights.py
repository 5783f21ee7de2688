"""tools/fetch_weights.py: listing, verification and verified downloads, without network."""
import hashlib
import os

import pytest

from conftest import run_tool
from matssl_bench.errors import BenchmarkError
from matssl_bench.commands.fetch_weights import WeightSource, fetch, suite_weight_sources


def _tool(*args, env=None):
    return run_tool('fetch_weights.py', *args, env=env)


def test_verify_fails_naming_a_file_whose_content_does_not_match_its_name(tmp_path):
    bad = tmp_path / 'resnet18-f37072fd.pth'
    bad.write_bytes(b'not the published weights')
    result = _tool('--verify', '--suite', 'smoke', '--dir', tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert any(str(bad) in line and 'mismatch' in line and 'f37072fd' in line for line in errors)
    assert 'Traceback' not in result.stderr


def test_list_names_every_file_of_a_suite_with_url_and_hash(tmp_path):
    result = _tool('--list', '--suite', 'smoke', '--dir', tmp_path)
    assert result.returncode == 0, result.stderr
    assert f'missing  {tmp_path}/resnet18-f37072fd.pth' in result.stdout
    assert 'https://download.pytorch.org/models/resnet18-f37072fd.pth' in result.stdout
    assert 'resnet18_pretrained_microscopynet_v1.0.pth.tar' in result.stdout
    assert 'unpinned' in result.stdout  # MicroNet: no hash is pinned, and it says so
    assert not list(tmp_path.iterdir())  # listing fetches nothing


def test_paper_suite_asks_for_imagenet_v1_only():
    names = {s.name for s in suite_weight_sources(['paper'])}
    assert names == {'resnet50-0676ba61.pth'}


def _source(tmp_path, content=b'weights', expected=None, name='resnet18-abc.pth'):
    origin = tmp_path / 'server' / name
    origin.parent.mkdir(exist_ok=True)
    origin.write_bytes(content)
    sha = hashlib.sha256(content).hexdigest()
    return WeightSource(name, origin.as_uri(), expected if expected is not None else sha[:8],
                        'test'), sha


def test_download_is_verified_and_shareable(tmp_path):
    source, sha = _source(tmp_path)
    old = os.umask(0o022)
    try:
        line = fetch(source, tmp_path / 'cache', allow_unpinned=False)
    finally:
        os.umask(old)
    target = tmp_path / 'cache' / source.name
    assert line.startswith('fetched') and sha in line
    assert target.read_bytes() == b'weights'
    assert target.stat().st_mode & 0o777 == 0o644
    assert fetch(source, tmp_path / 'cache', allow_unpinned=False).startswith('present')


def test_download_with_the_wrong_hash_writes_nothing(tmp_path):
    source, _ = _source(tmp_path, expected='00000000')
    with pytest.raises(BenchmarkError, match='rejected.*00000000'):
        fetch(source, tmp_path / 'cache', allow_unpinned=False)
    assert not list((tmp_path / 'cache').iterdir())


def test_unpinned_files_are_fetched_only_when_allowed(tmp_path):
    source, sha = _source(tmp_path, name='resnet18_pretrained_microscopynet_v1.0.pth.tar')
    source = WeightSource(source.name, source.url, None, 'test')
    with pytest.raises(BenchmarkError, match='no sha256 is pinned'):
        fetch(source, tmp_path / 'cache', allow_unpinned=False)
    assert 'unpinned' in fetch(source, tmp_path / 'cache', allow_unpinned=True)


def test_offline_error_is_one_line_with_url_and_folder(tmp_path):
    source = WeightSource('resnet18-f37072fd.pth', (tmp_path / 'absent.pth').as_uri(), 'f37072fd',
                          'test')
    with pytest.raises(BenchmarkError) as error:
        fetch(source, tmp_path / 'cache', allow_unpinned=False)
    text = str(error.value)
    assert '\n' not in text and source.url in text and str(tmp_path / 'cache') in text
