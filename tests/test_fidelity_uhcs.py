"""UHCS as users have it (labeled_img/ + GT/ + unlabeled_img/), info bars detected rather
than assumed, and prepared copies read with their own crop option."""
import json
import warnings

import numpy as np
import pytest

from matssl_bench.errors import DataError
from matssl_bench.data.image_io import DataWarning
from matssl_bench.registry import MICROGRAPH_SETS

from _data_fakes import labels, save, texture

W, H = 645, 484  # the redistributed UHCS images


def redistributed_uhcs(root, labeled=6, unlabeled=2):
    for i in range(1, labeled + 1):
        save(root / 'labeled_img' / f'micrograph{i}.jpg', texture(i, H, W), quality=95)
        save(root / 'GT' / f'micrograph{i}.png', labels(i, H, W, 4))
    for i in range(unlabeled):
        save(root / 'unlabeled_img' / f'micrograph{100 + i}.jpg', texture(100 + i, H, W))
    return dict(type='UHCS', root=str(root))


def with_bar(image, rows, colour=0):
    image = image.copy()
    image[-rows:] = colour
    image[-rows + 3:-2, 10:60] = 255 - colour  # lettering on the bar
    return image


def test_redistributed_layout_is_read_whole(tmp_path):
    cfg = redistributed_uhcs(tmp_path / 'UHCS')
    with warnings.catch_warnings():
        warnings.simplefilter('error', DataWarning)  # no bar: nothing cropped, nothing said
        data = MICROGRAPH_SETS.build(cfg)
        items = [i for s in data.splits for i in data.labeled_split(s)]
    assert len(items) == 6 and len(data.files['test']) == 1  # seeded 1/6 without the folds file
    assert all(i.image.shape == (H, W, 3) and i.mask.shape == (H, W) for i in items)
    assert all(set(np.unique(i.mask)) <= {0, 1, 2, 3} for i in items)
    assert {r.name for r in data.unlabeled_files} == {'UHCS/unlabeled/micrograph100',
                                                       'UHCS/unlabeled/micrograph101'}


def test_missing_gt_folder_is_named(tmp_path):
    save(tmp_path / 'UHCS' / 'labeled_img' / 'micrograph1.jpg', texture(1, 20, 20))
    with pytest.raises(Exception, match='GT: missing folder'):
        MICROGRAPH_SETS.build(dict(type='UHCS', root=str(tmp_path / 'UHCS')))


def test_a_uniform_bottom_bar_is_detected_and_cropped_from_image_and_mask(tmp_path):
    root = tmp_path / 'UHCS'
    redistributed_uhcs(root, labeled=6, unlabeled=0)
    save(root / 'labeled_img' / 'micrograph2.jpg', with_bar(texture(2, H, W), 38), quality=95)
    save(root / 'unlabeled_img' / 'framed.png', with_bar(texture(7, H, W), 30, colour=255))
    with pytest.warns(DataWarning, match='bottom 38 rows are a uniform info bar'):
        data = MICROGRAPH_SETS.build(dict(type='UHCS', root=str(root)))
        items = {i.name: i for s in data.splits for i in data.labeled_split(s)}
    assert items['UHCS/micrograph2'].image.shape == (H - 38, W, 3)
    assert items['UHCS/micrograph2'].mask.shape == (H - 38, W)  # full-height mask: same rows
    assert items['UHCS/micrograph1'].image.shape == (H, W, 3)
    framed = data.load_image(data.unlabeled_files[0].image)
    assert framed.shape == (H - 30, W, 3)


def test_an_explicit_crop_still_applies(tmp_path):
    data = MICROGRAPH_SETS.build(dict(redistributed_uhcs(tmp_path / 'UHCS'), crop_bottom=10))
    item = data.labeled_split('train')[0]
    assert item.image.shape == (H - 10, W, 3) and item.mask.shape == (H - 10, W)


def test_prepared_copy_is_read_with_its_own_crop_option(tmp_path):
    from matssl_bench.data.file_sets import PREPARED_FORMAT
    root = tmp_path / 'UHCS'
    root.mkdir()
    manifest = dict(format=PREPARED_FORMAT, dataset='UHCS',
                    options=dict(fold=0, seed=0, val_fraction=0.15, crop_bottom=38),
                    splits={}, unlabeled=[])
    (root / 'manifest.json').write_text(json.dumps(manifest))
    data = MICROGRAPH_SETS.build(dict(type='UHCS', root=str(root)))  # the suite sets no crop
    assert data.prepared and data.crop_bottom == 38
    with pytest.raises(DataError, match='prepared with options'):  # a choice the suite made
        MICROGRAPH_SETS.build(dict(type='UHCS', root=str(root), crop_bottom=0))
