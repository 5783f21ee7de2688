"""prepare_data.py --download: a pinned archive, checked against its sha256, unpacked
whole or not at all; no network (file:// URLs)."""
import hashlib
import zipfile

import pytest

from matssl_bench.errors import MissingResourceError
from matssl_bench.data.prepare import download


class Archive:
    """A data set class as prepare.download sees it."""
    download_note = 'unpack its data/ folder into'
    download_subdir = 'data'
    download_sha256 = None

    def __init__(self, url, sha256=None):
        self.download_url, self.download_sha256 = url, sha256


def _zip(tmp_path):
    path = tmp_path / 'server' / 'release-0123abc.zip'
    path.parent.mkdir()
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('repo-0123abc/data/EBC1/train/a.tif', b'image')
        z.writestr('repo-0123abc/README.md', b'readme')
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_pinned_archive_is_verified_and_unpacked(tmp_path):
    path, sha = _zip(tmp_path)
    src = tmp_path / 'EBC'
    download(Archive(path.as_uri(), sha), src)
    assert (src / 'EBC1' / 'train' / 'a.tif').read_bytes() == b'image'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['EBC', 'server']  # no leftovers


def test_hash_given_on_the_command_line(tmp_path):
    path, sha = _zip(tmp_path)
    download(Archive(path.as_uri()), tmp_path / 'EBC', archive_sha256=sha.upper())
    assert (tmp_path / 'EBC' / 'EBC1').is_dir()


def test_archive_without_a_known_hash_is_not_downloaded(tmp_path):
    path, _ = _zip(tmp_path)
    with pytest.raises(MissingResourceError, match='no sha256 is pinned') as error:
        download(Archive(path.as_uri()), tmp_path / 'EBC')
    assert str(tmp_path / 'EBC') in str(error.value) and path.as_uri() in str(error.value)
    assert not (tmp_path / 'EBC').exists()


def test_wrong_hash_leaves_nothing(tmp_path):
    path, sha = _zip(tmp_path)
    with pytest.raises(MissingResourceError, match='rejected'):
        download(Archive(path.as_uri(), '0' * 64), tmp_path / 'EBC')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['server']


def test_offline_is_one_line_with_url_and_folder(tmp_path):
    url = (tmp_path / 'absent.zip').as_uri()
    with pytest.raises(MissingResourceError) as error:
        download(Archive(url, '1' * 64), tmp_path / 'EBC')
    text = str(error.value)
    assert '\n' not in text and url in text and str(tmp_path / 'EBC') in text


def test_ebc_archive_is_a_commit_not_a_branch():
    from matssl_bench.data.prepare import reader_class
    url = reader_class('EBC').download_url
    assert '/refs/heads/' not in url and url.rsplit('/', 1)[-1][:-4].isalnum()
    assert len(url.rsplit('/', 1)[-1]) == 40 + 4
