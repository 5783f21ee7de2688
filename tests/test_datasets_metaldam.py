"""MetalDAM: the shared (messy) copy, the original release layout, splits, pool without leaks."""
import warnings

import numpy as np
import pytest

from matssl_bench.data.file_sets import DUPLICATE_THRESHOLD, seeded_split
from matssl_bench.data.image_io import DataWarning, fingerprint
from matssl_bench.data.patching import count_patches
from matssl_bench.registry import MICROGRAPH_SETS

from _data_fakes import SHARED_DATA, fake_metaldam, save, texture

REAL = SHARED_DATA / 'MetalDAM'
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f'shared MetalDAM data not at {REAL} '
                                '(set MATSSL_SHARED_DATA)')


def build(**cfg):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DataWarning)
        return MICROGRAPH_SETS.build(dict(type='MetalDAM', **cfg))


@pytest.fixture(scope='module')
def real():
    return build(root=str(REAL))


@needs_real
def test_real_counts_pairings_and_classes(real):
    assert {s: len(f) for s, f in real.files.items()} == dict(train=28, val=5, test=9)
    assert real.classes[4] == 'defect' and real.published_mean_classes == (0, 1, 2, 4)
    seen = set()
    for split in real.splits:
        for item in real.labeled_split(split):
            assert item.image.shape[:2] == item.mask.shape and item.image.dtype == np.uint8
            assert item.name.startswith('MetalDAM/micrograph')
            seen |= set(np.unique(item.mask).tolist())
    assert seen == {0, 1, 2, 3, 4}
    unlabeled = {f.name for f in real.unlabeled_files}
    assert 'MetalDAM/micrograph100' in unlabeled  # the image without a mask
    assert len(unlabeled) == 166
    by_name = {i.name: i for s in real.splits for i in real.labeled_split(s)}
    assert by_name['MetalDAM/micrograph15'].mask.shape == (702, 1024)  # 1-px mask, cropped


@needs_real
def test_real_repairs_are_warned():
    with pytest.warns(DataWarning) as caught:
        data = MICROGRAPH_SETS.build(dict(type='MetalDAM', root=str(REAL)))
        data.labeled_split('train'), data.labeled_split('val'), data.labeled_split('test')
    text = '\n'.join(str(w.message) for w in caught)
    assert 'micrograph100.jpg: no mask' in text
    assert 'micrograph19000 is on disk but not listed' in text
    assert text.count('both cropped to 1024x702') == 2


@needs_real
def test_real_pool_has_no_test_image_nor_a_copy_of_one(real):
    test = real.labeled_split('test')
    pool = real.unlabeled_pool(exclude=real.test_image_names())
    assert not {i.name for i in test} & {p.name for p in pool}
    assert all(p.overlap == 0.7 for p in pool)
    test_fp = np.stack([fingerprint(i.image) for i in test])
    pool_fp = np.stack([fingerprint(p.image) for p in pool])
    assert (pool_fp @ test_fp.T).max() < DUPLICATE_THRESHOLD
    assert real.pool_report['excluded'] > len(test)  # renamed copies of test images went too
    assert len(pool) == 168


def test_seeded_split_matches_paper_sizes_and_is_stable():
    names = [f'm{i}' for i in range(42)]
    rest, test = seeded_split(names, 0.2, 0)
    assert (len(rest), len(test)) == (33, 9)
    assert seeded_split(names, 0.2, 0) == (rest, test)
    assert seeded_split(names, 0.2, 1)[1] != test


def test_original_layout_and_info_bar(tmp_path):
    root = fake_metaldam(tmp_path / 'MetalDAM', labeled=10, unlabeled=2)
    save(root / 'unlabeled' / 'frame.jpg', texture(7, 768, 1024), quality=90)
    data = build(root=str(root), val_fraction=0.0)
    assert [len(data.files[s]) for s in ('train', 'val', 'test')] == [8, 0, 2]
    pool = data.unlabeled_pool()
    assert len(pool) == 13
    frame = next(p for p in pool if p.name == 'MetalDAM/unlabeled/frame')
    assert frame.image.shape == (703, 1024, 3)  # 65-row SEM info bar removed


def test_patch_formula_on_metaldam_sizes():
    # stride round(256 * 0.3) = 77: (1024-256)//77+1 = 10 columns, (703-256)//77+1 = 6 rows
    assert count_patches(703, 1024, 256, 0.7) == 60
    assert count_patches(895, 1280, 256, 0.7) == 9 * 14
    assert count_patches(702, 1024, 256, 0.0) == 2 * 4
    assert count_patches(895, 1280, 256, 0.0) == 3 * 5
