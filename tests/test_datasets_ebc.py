"""NASA EBC benchmark: published split sizes, deflate TIFF + PNG images, binary and native masks."""
import numpy as np
import pytest

from matssl_bench.errors import DataError
from matssl_bench.registry import MICROGRAPH_SETS

from _data_fakes import SHARED_DATA, labels, save, texture

REAL = SHARED_DATA / 'EBC'
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f'shared EBC data not at {REAL} '
                                '(set MATSSL_SHARED_DATA)')
SIZES = dict(EBC1=(18, 3, 3), EBC2=(4, 3, 3), EBC3=(15, 3, 6))


@needs_real
@pytest.mark.parametrize('subset', sorted(SIZES))
def test_real_split_sizes_and_pairing(subset):
    data = MICROGRAPH_SETS.build(dict(type='EBC', root=str(REAL), subset=subset))
    assert tuple(len(data.files[s]) for s in ('train', 'val', 'test')) == SIZES[subset]
    for split in data.splits:
        for record in data.files[split]:
            assert record.image.stem == record.mask.stem
            assert record.mask.parent.name == f'{split}_annot'
    assert data.published_selection_split == 'val' and data.num_classes == 2


@needs_real
def test_real_images_and_masks_binary_and_native():
    binary = MICROGRAPH_SETS.build(dict(type='EBC', root=str(REAL), subset='EBC2'))
    native = MICROGRAPH_SETS.build(dict(type='EBC', root=str(REAL), subset='EBC2', binary=False))
    assert native.classes == ('background', 'oxide', 'crack')
    for b, n in zip(binary.labeled_split('test'), native.labeled_split('test')):
        assert b.image.shape == (1024, 1024, 3) and b.image.dtype == np.uint8
        assert set(np.unique(b.mask)) <= {0, 1} and set(np.unique(n.mask)) <= {0, 1, 2}
        assert ((n.mask > 0) == (b.mask == 1)).all()
    assert binary.test_image_names()[0].startswith('EBC2/test/')


@needs_real
def test_real_png_training_images_read_as_rgb():
    data = MICROGRAPH_SETS.build(dict(type='EBC', root=str(REAL), subset='EBC3'))
    png = [r for r in data.files['train'] if r.image.suffix == '.png']
    assert len(png) == 2
    item = data.load_labeled(png[0])
    assert item.image.shape == (1024, 1024, 3)


def test_missing_mask_is_an_error(tmp_path):
    for split in ('train', 'val', 'test'):
        save(tmp_path / 'EBC1' / split / 'a.tif', texture(0, 8, 8))
        save(tmp_path / 'EBC1' / f'{split}_annot' / 'a.tif', labels(0, 8, 8, 3))
    save(tmp_path / 'EBC1' / 'val' / 'b.tif', texture(1, 8, 8))
    with pytest.raises(DataError, match=r'val/b\.tif: no mask'):
        MICROGRAPH_SETS.build(dict(type='EBC', root=str(tmp_path), subset='EBC1'))
