"""Folder: masks stored as arbitrary grey values (label_map) and the unlabeled/ folder."""
import pytest

from matssl_bench.errors import ConfigError, DataError, MissingResourceError
from matssl_bench.registry import MICROGRAPH_SETS

from _data_fakes import grey_folder, labels

LABEL_MAP = {0: 0, 85: 1, 170: 2, 255: 3}
CLASSES = ['matrix', 'ferrite', 'pearlite', 'pore']


def make(root, n=5, unlabeled=0):
    return grey_folder(root, n, unlabeled, size=(16, 20))


def build(root, **options):
    return MICROGRAPH_SETS.build(dict(type='Folder', root=str(root), classes=CLASSES, **options))


def test_label_map_turns_grey_values_into_class_ids(tmp_path):
    data = build(make(tmp_path), label_map=LABEL_MAP, val_fraction=0.0)
    for split in data.splits:
        for item, record in zip(data.labeled_split(split), data.files[split]):
            i = int(record.image.stem[1:])
            assert (item.mask == labels(i, 16, 20, 4)).all()
    # keys as strings, as they arrive from --cfg-options or JSON, mean the same
    again = build(tmp_path, label_map={str(k): v for k, v in LABEL_MAP.items()}, val_fraction=0.0)
    assert (again.labeled_split('test')[0].mask == data.labeled_split('test')[0].mask).all()


def test_values_outside_the_label_map_are_an_error_naming_file_and_values(tmp_path):
    make(tmp_path)
    data = build(tmp_path, label_map={0: 0, 85: 1, 170: 2}, test_fraction=0.2, val_fraction=0.0)
    with pytest.raises(DataError, match=r's\d\.png: mask values \[255\] are not in label_map'):
        data.labeled_split('train')
    with pytest.raises(DataError, match='unknown label values'):  # no label_map: 85 is no id
        build(tmp_path).labeled_split('train')


@pytest.mark.parametrize('label_map', [{0: 4}, {300: 1}, {'x': 1}])
def test_a_label_map_that_cannot_be_right_is_a_config_error(tmp_path, label_map):
    with pytest.raises(ConfigError, match='label_map'):
        build(make(tmp_path, n=2), label_map=label_map)


def test_unlabeled_folder_is_used_when_present(tmp_path):
    make(tmp_path, unlabeled=3)
    data = build(tmp_path, label_map=LABEL_MAP)
    assert [f.name for f in data.unlabeled_files] == [f'Folder/unlabeled/u{i}' for i in range(3)]
    pool = data.unlabeled_pool(exclude=data.test_image_names())
    assert {p.name for p in pool} >= {f'Folder/unlabeled/u{i}' for i in range(3)}
    assert not build(tmp_path, label_map=LABEL_MAP, unlabeled=False).unlabeled_files
    with pytest.raises(MissingResourceError, match='elsewhere'):
        build(tmp_path, label_map=LABEL_MAP, unlabeled='elsewhere')


def test_no_unlabeled_folder_is_fine(tmp_path):
    assert build(make(tmp_path), label_map=LABEL_MAP).unlabeled_files == []
