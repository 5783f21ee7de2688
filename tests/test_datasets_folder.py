"""Folder: a user's own images/ + masks/ with class names, split lists and colour masks."""
import numpy as np
import pytest

from matssl_bench.errors import DataError
from matssl_bench.registry import MICROGRAPH_SETS

from _data_fakes import labels, save, texture

PALETTE = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]


def make(root, n=5, colour=False):
    for i in range(n):
        save(root / 'images' / f's{i}.png', texture(i, 8, 9))
        ids = labels(i, 8, 9, 3)
        save(root / 'masks' / f's{i}.png', np.array(PALETTE, np.uint8)[ids] if colour else ids)
    return root


def test_seeded_split_and_unlabeled_extra(tmp_path):
    root = make(tmp_path)
    save(root / 'images' / 'orphan.png', texture(50, 8, 9))
    data = MICROGRAPH_SETS.build(dict(type='Folder', root=str(root), classes=['a', 'b', 'c'],
                                      val_fraction=0.0))
    assert data.num_classes == 3 and [len(data.files[s]) for s in data.splits] == [4, 0, 1]
    assert [f.name for f in data.unlabeled_files] == ['Folder/orphan']


def test_split_lists_and_colour_masks(tmp_path):
    root = make(tmp_path, colour=True)
    (root / 'splits').mkdir()
    (root / 'splits' / 'train.txt').write_text('s0\ns1\ns2\n')
    (root / 'splits' / 'test.txt').write_text('s3\ns4\n')
    data = MICROGRAPH_SETS.build(dict(type='Folder', root=str(root), classes=['a', 'b', 'c'],
                                      palette=PALETTE))
    test = data.labeled_split('test')
    assert [i.name for i in test] == ['Folder/s3', 'Folder/s4']
    assert (test[0].mask == labels(3, 8, 9, 3)).all()
    (root / 'splits' / 'val.txt').write_text('nope\n')
    with pytest.raises(DataError, match='names nope'):
        MICROGRAPH_SETS.build(dict(type='Folder', root=str(root), classes=['a', 'b', 'c']))
