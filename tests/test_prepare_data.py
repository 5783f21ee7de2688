"""tools/prepare_data.py: a prepared copy readers accept, and three bad inputs that leave nothing."""
import json
from pathlib import Path

import numpy as np
import pytest

from matssl_bench.data.prepare import verify
from matssl_bench.registry import MICROGRAPH_SETS

from _data_fakes import fake_metaldam, save
from conftest import run_tool


def run(*args):
    return run_tool('prepare_data.py', *args)


def no_partial_output(out: Path):
    return not out.exists() and not list(out.parent.glob(f'.{out.name}.*'))


def test_prepared_copy_matches_source_and_checksums(tmp_path):
    src, out = fake_metaldam(tmp_path / 'src', labeled=10, unlabeled=2), tmp_path / 'prep'
    result = run('MetalDAM', '--src', src, '--out', out)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['counts'] == dict(train=6, val=2, test=2, unlabeled=2, pretrain_pool=10)
    # 40x60 images are smaller than a 256 patch: zero patches, counted by the one formula
    assert manifest['patches']['train'] == 0 and verify(out) == []
    assert (out / 'splits' / 'test.txt').read_text().split() == manifest_names(manifest, 'test')
    source = MICROGRAPH_SETS.build(dict(type='MetalDAM', root=str(src)))
    prepared = MICROGRAPH_SETS.build(dict(type='MetalDAM', root=str(out)))
    assert prepared.prepared and prepared.test_image_names() == source.test_image_names()
    for a, b in zip(source.labeled_split('train'), prepared.labeled_split('train')):
        assert a.name == b.name and np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    with pytest.raises(Exception, match='prepared with options'):
        MICROGRAPH_SETS.build(dict(type='MetalDAM', root=str(out), seed=3))


def manifest_names(manifest, split):
    return [e['name'] for e in manifest['splits'][split]]


@pytest.mark.parametrize('case', ['corrupt image', 'unknown label', 'missing folder'])
def test_bad_input_fails_with_one_line_and_no_output(tmp_path, case):
    src, out = fake_metaldam(tmp_path / 'src', labeled=4, unlabeled=1), tmp_path / 'prep'
    if case == 'corrupt image':
        bad = src / 'images' / 'micrograph2.jpg'
        bad.write_bytes(bad.read_bytes()[:200])
        expected = f'error: {bad}: cannot decode image'
    elif case == 'unknown label':
        bad = save(src / 'labels' / 'micrograph1.png', np.full((40, 60), 9, np.uint8))
        expected = f'error: {bad}: unknown label values [9]'
    else:
        bad = src / 'labels'
        for f in bad.iterdir():
            f.unlink()
        bad.rmdir()
        expected = f'error: {bad}: missing folder'
    result = run('MetalDAM', '--src', src, '--out', out)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(expected), result.stderr
    assert no_partial_output(out)


def test_download_offline_names_url_and_target(tmp_path):
    result = run('MetalDAM', '--src', tmp_path / 'absent', '--out', tmp_path / 'prep', '--download')
    assert result.returncode == 1
    assert 'github.com/ari-dasci/OD-MetalDAM' in result.stderr
    assert str(tmp_path / 'absent') in result.stderr
    assert no_partial_output(tmp_path / 'prep')
