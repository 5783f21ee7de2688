"""Leakage across sources: copies of fine-tuning test (and, under clean, val) images leave
every pretraining pool, whichever reader reaches them; the audit tool lists them."""
import json
import textwrap

import numpy as np
import pytest
from PIL import Image

from matssl_bench.data.sources import audit_pool, audit_suite, build_audited_pool
from matssl_bench.suite.plan import load_suite

from _data_fakes import labels, save, texture
from conftest import run_tool

H, W = 48, 64


def _reencoded(seed):
    """A renamed copy of ``texture(seed)``: JPEG re-encoded, slightly brighter."""
    return np.clip(texture(seed, H, W).astype(np.int16) + 6, 0, 255).astype(np.uint8)


def planted_sources(root):
    """SetA: a labelled Folder set (test a0 a1, val a2, train a3-a5). SetB: a Folder pool
    whose unlabeled folder holds copies of a0 (test) and a2 (val) under other names."""
    a, b = root / 'A', root / 'B'
    for i in range(6):
        save(a / 'images' / f'a{i}.png', texture(i, H, W))
        save(a / 'masks' / f'a{i}.png', labels(i, H, W, 2))
    for split, stems in (('test', 'a0 a1'), ('val', 'a2'), ('train', 'a3 a4 a5')):
        (a / 'splits').mkdir(parents=True, exist_ok=True)
        (a / 'splits' / f'{split}.txt').write_text(stems.replace(' ', '\n') + '\n')
    for i in range(2):
        save(b / 'images' / f'b{i}.png', texture(50 + i, H, W))
        save(b / 'masks' / f'b{i}.png', labels(50 + i, H, W, 2))
    save(b / 'unlabeled' / 'copy_of_test.jpg', _reencoded(0), quality=80)
    save(b / 'unlabeled' / 'copy_of_val.jpg', _reencoded(2), quality=80)
    save(b / 'unlabeled' / 'twice1.png', texture(70, H, W))
    save(b / 'unlabeled' / 'twice2.jpg', texture(70, H, W), quality=90)
    save(b / 'unlabeled' / 'other.png', texture(80, H, W))
    set_a = dict(type='Folder', root=str(a), classes=['bg', 'fg'], source='SetA')
    set_b = dict(type='Folder', root=str(b), classes=['bg', 'fg'], source='SetB',
                 unlabeled='unlabeled')
    return set_a, set_b


def test_copies_in_another_source_are_excluded(tmp_path):
    set_a, set_b = planted_sources(tmp_path)
    audit = audit_pool([set_b], [set_a], protocol='published')
    excluded = {e['name']: e for e in audit.excluded}
    assert set(excluded) == {'SetB/unlabeled/copy_of_test'}
    assert excluded['SetB/unlabeled/copy_of_test']['matches'] == 'SetA/a0'
    assert excluded['SetB/unlabeled/copy_of_test']['score'] >= 0.95
    kept = {im.name for im in audit.kept}
    assert 'SetB/unlabeled/copy_of_val' in kept  # published: validation copies may stay
    assert len(kept & {'SetB/unlabeled/twice1', 'SetB/unlabeled/twice2'}) == 1
    assert audit.duplicates == 1 and len(kept) == 5

    clean = audit_pool([set_b], [set_a], protocol='clean')
    assert {e['name']: e['matches'] for e in clean.excluded} == {
        'SetB/unlabeled/copy_of_test': 'SetA/a0', 'SetB/unlabeled/copy_of_val': 'SetA/a2'}


def test_pool_holding_the_test_set_itself_counts_removed_images(tmp_path):
    set_a, set_b = planted_sources(tmp_path)
    pool, audit = build_audited_pool([set_a, set_b], [set_a], protocol='published')
    names = {p.name for p in pool}
    removed = {e['name'] for e in audit.excluded}
    assert removed == {'SetA/a0', 'SetA/a1', 'SetB/unlabeled/copy_of_test'}
    assert [e['score'] for e in audit.excluded if e['name'] == 'SetA/a1'] == [1.0]
    # a2-a5, b0, b1, one of twice1/twice2, other; copy_of_val is a kept copy of a2
    assert not names & removed and len(pool) == 8 and audit.duplicates == 2
    assert all(p.image.shape == (H, W, 3) for p in pool)


def test_threshold_none_keeps_near_copies_but_not_named_test_images(tmp_path):
    set_a, set_b = planted_sources(tmp_path)
    audit = audit_pool([set_a, set_b], [set_a], protocol='published', duplicate_threshold=None)
    assert {e['name'] for e in audit.excluded} == {'SetA/a0', 'SetA/a1'}
    assert audit.duplicates == 0 and audit.summary()['duplicate_threshold'] is None
    assert 'SetB/unlabeled/copy_of_test' in {im.name for im in audit.kept}


def _suite_file(tmp_path, set_a, set_b, threshold=0.95):
    path = tmp_path / 'leaky.py'
    path.write_text(textwrap.dedent(f'''
        protocol = 'published'
        duplicate_threshold = {threshold!r}
        backbone = 'resnet18'
        pretrain_sets = dict(B=[{set_b!r}])
        finetune_sets = dict(A={set_a!r})
        rows = [dict(finetune='A', method='MatSSL', pretrain='B')]
        scale = dict(pretrain=dict(epochs=1, batch_size=4, patch_size=32),
                     finetune=dict(epochs=1, batch_size=4, patch_size=32))
    '''))
    return path


def test_audit_tool_prints_pools_and_cross_source_groups(tmp_path):
    set_a, set_b = planted_sources(tmp_path)
    suite = _suite_file(tmp_path, set_a, set_b)
    out = run_tool('audit_data.py', '--suite', suite, '--format', 'json')
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    pool = report['pools']['B']
    assert pool['images'] == 5
    assert pool['excluded'] == [dict(name='SetB/unlabeled/copy_of_test', matches='SetA/a0',
                                     score=pool['excluded'][0]['score'])]
    groups = report['cross_source_groups']
    assert ['SetA/a0', 'SetB/unlabeled/copy_of_test'] in groups
    assert ['SetA/a2', 'SetB/unlabeled/copy_of_val'] in groups
    assert not any('SetB/unlabeled/twice1' in g for g in groups)  # same source: not listed

    text = run_tool('audit_data.py', '--suite', suite, '--protocol', 'clean')
    assert text.returncode == 0 and 'copy of SetA/a2' in text.stdout


def test_ebc1_folders_hold_every_ebc3_test_image(tmp_path, shared_data):
    root = shared_data / 'EBC'
    if not (root / 'EBC3').is_dir():
        pytest.skip(f'{root / "EBC3"} is absent')
    ebc1 = dict(type='EBC', root=str(root), subset='EBC1', binary=True)
    ebc3 = dict(type='EBC', root=str(root), subset='EBC3', binary=True)
    suite = load_suite(str(_suite_file(tmp_path, ebc3, ebc1)))
    report = audit_suite(suite)
    from matssl_bench.registry import MICROGRAPH_SETS
    test_names = set(MICROGRAPH_SETS.build(ebc3).test_image_names())
    assert test_names and {e['matches'] for e in report['pools']['B']['excluded']} == test_names
    assert all(e['score'] >= 0.95 for e in report['pools']['B']['excluded'])


def test_tables_say_when_near_copy_exclusion_was_off(tmp_path):
    from matssl_bench.data.leakage import table_note
    records = [dict(stage='pretrain', status='finished', pretrain_set='B', duplicate_threshold=None),
               dict(stage='pretrain', status='finished', pretrain_set='C', duplicate_threshold=0.95)]
    assert 'B excluded test images by name only' in table_note(records)
    assert table_note(records[1:]) == '' and table_note([]) == ''


def test_audit_tool_names_missing_data_and_fails(tmp_path):
    set_a, set_b = planted_sources(tmp_path)
    suite = _suite_file(tmp_path, set_a, dict(set_b, root=str(tmp_path / 'nowhere')))
    out = run_tool('audit_data.py', '--suite', suite, '--format', 'json')
    assert out.returncode == 1
    pool = json.loads(out.stdout)['pools']['B']
    assert pool['images'] is None and 'nowhere' in pool['error'] and 'missing folder' in pool['error']
