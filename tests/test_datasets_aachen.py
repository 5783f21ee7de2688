"""Aachen-Heerlen: polygons from CSV (vertex rows or JSON points) and pickle, rasterised."""
import csv
import json
import pickle

import numpy as np
import pytest

from matssl_bench.errors import DataError
from matssl_bench.registry import MICROGRAPH_SETS

from _data_fakes import save, texture

SQUARE = [(2, 2), (5, 2), (5, 5), (2, 5)]  # fills rows/cols 2..5 inclusive: 16 pixels


def fake_images(root, n=6):
    for i in range(n):
        save(root / 'images' / f'img{i}.png', texture(i, 10, 12))


def test_vertex_csv_is_rasterised(tmp_path):
    fake_images(tmp_path)
    with open(tmp_path / 'annotations.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['image', 'polygon', 'x', 'y'])
        w.writerows(['img0.png', 0, x, y] for x, y in SQUARE)
    data = MICROGRAPH_SETS.build(dict(type='AachenHeerlen', root=str(tmp_path), test_fraction=0.5,
                                      val_fraction=0.0))
    assert data.pretrain_overlap == 0.0 and data.published_selection_split == 'test'
    items = {i.name: i for s in data.splits for i in data.labeled_split(s)}
    assert len(items) == 6 and len(data.files['test']) == 3
    mask = items['Aachen/img0'].mask
    assert mask.shape == (10, 12) and mask.sum() == 16 and mask[2:6, 2:6].all()
    assert items['Aachen/img1'].mask.sum() == 0


def test_points_csv_and_pickle_agree(tmp_path):
    for fmt in ('csv', 'pkl'):
        root = tmp_path / fmt
        fake_images(root, 2)
        if fmt == 'csv':
            (root / 'annotations.csv').write_text(
                'filename,points\n' + f'img1,"{json.dumps(SQUARE)}"\n')
        else:
            (root / 'annotations.pkl').write_bytes(pickle.dumps({'img1': [np.array(SQUARE)]}))
        data = MICROGRAPH_SETS.build(dict(type='AachenHeerlen', root=str(root),
                                          test_fraction=0.0, val_fraction=0.0))
        mask = {i.name: i.mask for i in data.labeled_split('train')}['Aachen/img1']
        assert mask.sum() == 16


def test_polygon_for_unknown_image_is_an_error(tmp_path):
    fake_images(tmp_path, 1)
    (tmp_path / 'annotations.csv').write_text('image,polygon,x,y\nghost.png,0,1,1\n')
    with pytest.raises(DataError, match='annotations.csv: polygons for ghost'):
        MICROGRAPH_SETS.build(dict(type='AachenHeerlen', root=str(tmp_path)))
