"""UHCS: micrograph pool, the labeled part with its published folds, micron-bar crop."""
import json

import numpy as np
import pytest

from matssl_bench.errors import DataError, MissingResourceError
from matssl_bench.registry import MICROGRAPH_SETS

from _data_fakes import labels, save, texture

H, W = 60, 50


def fake_uhcs(root, n_micrographs=8, labeled=(1, 2, 3, 4, 5, 6)):
    for i in range(1, n_micrographs + 1):
        save(root / 'micrographs' / f'micrograph{i}.png', texture(i, H, W))
    for i in labeled:  # labeled images are micrographs again (as in the release)
        save(root / 'uhcs-tif' / 'images' / f'uhcs{i:04d}.tif', texture(i, H, W))
        save(root / 'uhcs-tif' / 'labels' / f'uhcs{i:04d}.tif', labels(i, H, W, 4))
    folds = {'0': ['micrograph1', 'micrograph2'], '1': ['micrograph3', 'micrograph4']}
    (root / 'uhcs-validation-sets.json').write_text(json.dumps(folds))
    return root


def test_folds_names_and_crop(tmp_path):
    root = fake_uhcs(tmp_path / 'UHCS')
    data = MICROGRAPH_SETS.build(dict(type='UHCS', root=str(root), fold=1, crop_bottom=10,
                                      val_fraction=0.0))
    assert data.test_image_names() == ['UHCS/micrograph3', 'UHCS/micrograph4']
    assert len(data.files['train']) == 4
    item = data.labeled_split('test')[0]
    assert item.image.shape == (H - 10, W, 3) and item.mask.shape == (H - 10, W)
    assert set(np.unique(item.mask)) <= {0, 1, 2, 3}


def test_pool_drops_test_images_and_keeps_duplicates_once(tmp_path):
    data = MICROGRAPH_SETS.build(dict(type='UHCS', root=str(fake_uhcs(tmp_path / 'UHCS'))))
    pool = data.unlabeled_pool(exclude=data.test_image_names())
    names = [p.name for p in pool]
    assert len(names) == len(set(names)) == 6  # 8 micrographs minus the 2 test ones
    assert not set(names) & set(data.test_image_names())
    assert all(p.overlap == 0.6 and p.image.shape == (H, W, 3) for p in pool)  # no bar: no crop


def test_pool_only_and_bad_fold(tmp_path):
    root = tmp_path / 'UHCS'
    for i in range(3):
        save(root / 'micrographs' / f'micrograph{i}.png', texture(i, H, W))
    data = MICROGRAPH_SETS.build(dict(type='UHCS', root=str(root)))
    assert data.labeled_split('test') == [] and len(data.unlabeled_pool()) == 3
    with pytest.raises(DataError, match='no validation set for fold 9'):
        MICROGRAPH_SETS.build(dict(type='UHCS', root=str(fake_uhcs(tmp_path / 'U2')), fold=9))
    with pytest.raises(MissingResourceError, match='missing folder'):
        MICROGRAPH_SETS.build(dict(type='UHCS', root=str(tmp_path / 'nowhere')))
