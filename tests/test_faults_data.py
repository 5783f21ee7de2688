"""Issue 15 trials on data: no code runs from data files, no silent loss, no path leaves the folder."""
import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_tool
from matssl_bench.errors import BenchmarkError, DataError, MissingResourceError
from matssl_bench.suite.plan import load_suite
from matssl_bench.data.prepare import output_stem, prepare
from matssl_bench.registry import MICROGRAPH_SETS

from _data_fakes import labels, save, texture

CLASSES = ['ferrite', 'pearlite']


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def _aachen(root: Path, n=3) -> Path:
    for i in range(n):
        save(root / 'images' / f'img{i}.png', texture(i, 10, 12))
    return root


def test_crafted_polygon_pickle_runs_no_code(tmp_path):
    marker = tmp_path / 'marker'
    root = _aachen(tmp_path / 'aachen')
    (root / 'annotations.pkl').write_bytes(pickle.dumps({'img0': [_Payload(marker)]}))
    with pytest.raises(DataError, match=r'annotations\.pkl.*refused posix\.system'):
        MICROGRAPH_SETS.build(dict(type='AachenHeerlen', root=str(root)))
    assert not marker.exists()
    # a pickle under any other name is never opened, even with no CSV beside it
    (root / 'annotations.pkl').rename(root / 'polygons.pkl')
    with pytest.raises(MissingResourceError, match='annotations'):
        MICROGRAPH_SETS.build(dict(type='AachenHeerlen', root=str(root)))
    assert not marker.exists()


def test_plain_polygon_pickle_with_numpy_arrays_still_reads(tmp_path):
    root = _aachen(tmp_path / 'aachen')
    square = np.array([[2, 2], [8, 2], [8, 7], [2, 7]], np.int64)
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        (root / 'annotations.pkl').write_bytes(pickle.dumps({'img1.png': [square]}, protocol))
        data = MICROGRAPH_SETS.build(dict(type='AachenHeerlen', root=str(root), test_fraction=0.4,
                                          val_fraction=0.0))
        assert set(data.polygons) == {'img1'}
        assert np.array_equal(data.polygons['img1'][0], square)


def test_yaml_suite_is_refused_and_runs_no_code(tmp_path, capsys):
    from matssl_bench.commands.run_benchmark import main

    marker = tmp_path / 'marker'
    suite = tmp_path / 'evil.yaml'
    suite.write_text(f'description: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(BenchmarkError, match=r'evil\.yaml: suites are Python files'):
        load_suite(str(suite))
    assert main(['--suite', str(suite), '--dry-run']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ') and 'evil.yaml' in err[0]
    assert not marker.exists()


def _folder_source(root: Path, stems) -> Path:
    for i, stem in enumerate(stems):
        save(root / 'images' / f'{stem}.png', texture(i, 32, 40))
        save(root / 'masks' / f'{stem}.png', labels(i, 32, 40, 2))
    return root


def test_names_that_sanitise_alike_give_distinct_files(tmp_path):
    stems = ['a b', 'a_b', 'феррит', 'перлит', 'x0', 'x1', 'x2', 'x3']
    src, out = _folder_source(tmp_path / 'src', stems), tmp_path / 'prep'
    manifest = prepare('Folder', src, out, options=dict(classes=CLASSES))['Folder']
    images = sorted((out / 'images').iterdir())
    assert len(images) == len(stems) == len({p.name.casefold() for p in images})
    written = [e['image'] for split in manifest['splits'].values() for e in split]
    assert len(set(written)) == len(stems)
    assert output_stem('Folder/a b').startswith('Folder__a_b-')
    source = MICROGRAPH_SETS.build(dict(type='Folder', root=str(src), classes=CLASSES))
    prepared = MICROGRAPH_SETS.build(dict(type='Folder', root=str(out), classes=CLASSES))
    for split in ('train', 'val', 'test'):
        for a, b in zip(source.labeled_split(split), prepared.labeled_split(split)):
            assert a.name == b.name and np.array_equal(a.image, b.image)
            assert np.array_equal(a.mask, b.mask)


def _prepared(tmp_path) -> Path:
    src = _folder_source(tmp_path / 'src', [f's{i}' for i in range(6)])
    out = tmp_path / 'prep'
    prepare('Folder', src, out, options=dict(classes=CLASSES))
    return out


@pytest.mark.parametrize('bad_path', ['../outside.png', '/etc/hostname', 'images/../../x.png'])
def test_manifest_paths_leaving_the_folder_are_refused(tmp_path, bad_path):
    out = _prepared(tmp_path)
    save(tmp_path / 'outside.png', texture(9, 16, 20))
    manifest_path = out / 'manifest.json'
    manifest = json.loads(manifest_path.read_text())
    manifest['splits']['train'][0]['image'] = bad_path
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r'manifest\.json: file entry .* leaves the prepared folder'):
        MICROGRAPH_SETS.build(dict(type='Folder', root=str(out), classes=CLASSES))


def test_changed_prepared_file_fails_its_size_check_and_verify(tmp_path):
    out = _prepared(tmp_path)
    check = run_tool('prepare_data.py', '--verify', out)
    assert check.returncode == 0 and 'every file matches' in check.stdout, check.stderr
    data = MICROGRAPH_SETS.build(dict(type='Folder', root=str(out), classes=CLASSES))
    target = data.files['train'][0].image
    with open(target, 'ab') as f:
        f.write(b'tampered')
    with pytest.raises(DataError, match=f'{target.name}: .* bytes, but the manifest records'):
        data.labeled_split('train')
    check = run_tool('prepare_data.py', '--verify', out)
    assert check.returncode == 1
    assert check.stderr.startswith(f'error: {out}: 1 file(s) differ') and target.name in check.stderr


def test_empty_test_split_is_refused(tmp_path):
    src = _folder_source(tmp_path / 'src', [f's{i}' for i in range(4)])
    (src / 'splits').mkdir()
    (src / 'splits' / 'train.txt').write_text('s0\ns1\ns2\ns3\n')
    (src / 'splits' / 'test.txt').write_text('')
    with pytest.raises(DataError, match='the test split of Folder is empty'):
        prepare('Folder', src, tmp_path / 'prep', options=dict(classes=CLASSES))
    assert not (tmp_path / 'prep').exists()


def test_partial_folder_of_a_killed_run_is_cleared(tmp_path):
    src = _folder_source(tmp_path / 'src', [f's{i}' for i in range(6)])
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    host = socket.gethostname()
    killed = tmp_path / f'.prep.{host}-{dead.pid}.abc123.partial'
    running = tmp_path / f'.prep.{host}-{os.getpid()}.def456.partial'  # a live run: kept
    for folder in (killed, running):
        (folder / 'images').mkdir(parents=True)
    prepare('Folder', src, tmp_path / 'prep', options=dict(classes=CLASSES))
    assert not killed.exists() and running.exists()
    assert (tmp_path / 'prep' / 'manifest.json').is_file()
