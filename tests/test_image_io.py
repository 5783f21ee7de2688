"""Image and mask reading: formats, colour masks, corrupt files, the size-mismatch policy."""
import numpy as np
import pytest
from PIL import Image

from matssl_bench.errors import DataError
from matssl_bench.data.image_io import (DataWarning, check_labels, read_image, read_mask,
                                   reconcile_sizes)

from _data_fakes import save, texture


def test_grayscale_rgba_and_deflate_tiff_become_rgb_uint8(tmp_path):
    grey = texture(0, 12, 16)[..., 0]
    for path, array, kwargs in [
            (tmp_path / 'g.png', grey, {}),
            (tmp_path / 'a.png', np.dstack([grey, grey, grey, np.full_like(grey, 7)]), {}),
            (tmp_path / 'd.tif', np.dstack([grey] * 3), dict(compression='tiff_adobe_deflate'))]:
        save(path, array, **kwargs)
        image = read_image(path)
        assert image.shape == (12, 16, 3) and image.dtype == np.uint8
        assert (image[..., 1] == grey).all()


def test_sixteen_bit_image_is_scaled(tmp_path):
    Image.fromarray(np.full((4, 5), 256 * 200, np.uint16)).save(tmp_path / 'w.png')
    assert (read_image(tmp_path / 'w.png') == 200).all()


def test_masks_grey_palette_and_rgb(tmp_path):
    ids = np.array([[0, 1], [2, 1]], np.uint8)
    save(tmp_path / 'l.png', ids)
    assert (read_mask(tmp_path / 'l.png') == ids).all()
    p = Image.fromarray(ids, mode='P')
    p.putpalette([9, 9, 9, 200, 0, 0, 0, 200, 0] + [0] * 759)
    p.save(tmp_path / 'p.png')
    assert (read_mask(tmp_path / 'p.png') == ids).all()  # palette index = class id
    palette = ((0, 0, 0), (255, 0, 0), (0, 255, 0))
    save(tmp_path / 'c.png', np.array(palette, np.uint8)[ids])
    assert (read_mask(tmp_path / 'c.png', palette) == ids).all()


def test_unknown_colour_and_label_name_the_file(tmp_path):
    save(tmp_path / 'c.png', np.array([[[0, 0, 0], [1, 2, 3]]], np.uint8))
    with pytest.raises(DataError, match=r'c\.png: 1 colour\(s\) not in the palette: \(1,2,3\)'):
        read_mask(tmp_path / 'c.png', ((0, 0, 0),))
    with pytest.raises(DataError, match=r'm\.png: unknown label values \[7\]'):
        check_labels(np.array([[0, 7]], np.uint8), 5, tmp_path / 'm.png')


def test_corrupt_and_truncated_files_raise_data_error_naming_them(tmp_path):
    (tmp_path / 'junk.jpg').write_bytes(b'not an image at all')
    with pytest.raises(DataError, match='junk.jpg: cannot decode'):
        read_image(tmp_path / 'junk.jpg')
    save(tmp_path / 'full.jpg', texture(1, 64, 64), quality=90)
    data = (tmp_path / 'full.jpg').read_bytes()
    (tmp_path / 'cut.jpg').write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match='cut.jpg: cannot decode'):
        read_image(tmp_path / 'cut.jpg')
    with pytest.raises(DataError, match='absent.png: file not found'):
        read_mask(tmp_path / 'absent.png')


def test_size_mismatch_policy():
    image, mask = np.zeros((703, 1024, 3), np.uint8), np.zeros((702, 1024), np.uint8)
    with pytest.warns(DataWarning, match='both cropped to 1024x702'):
        a, b = reconcile_sizes(image, mask, 'img.jpg', 'gt.png')
    assert a.shape[:2] == b.shape == (702, 1024)
    with pytest.raises(DataError, match=r'img\.jpg \(1024x703\) and gt\.png \(1024x700\)'):
        reconcile_sizes(image, np.zeros((700, 1024), np.uint8), 'img.jpg', 'gt.png')


def test_deep_tiffs_are_scaled_to_8_bit_by_the_documented_policy(tmp_path):
    import tifffile

    from matssl_bench.data.image_io import BIT_DEPTH_POLICY

    ramp = np.arange(12 * 16, dtype=np.uint16).reshape(12, 16)
    sixteen = ramp * 300 + 1000                  # max 58300: 16-bit data, divided by 256
    twelve = (ramp * 21).astype(np.uint16)       # max 4011 < 4096: 12-bit data, divided by 16
    tifffile.imwrite(tmp_path / 's16.tif', sixteen)
    tifffile.imwrite(tmp_path / 's12.tif', twelve)
    tifffile.imwrite(tmp_path / 'rgb16.tiff', np.stack([sixteen] * 3), planarconfig='separate',
                     photometric='rgb', compression='zlib')
    tifffile.imwrite(tmp_path / 'stack.tif', np.stack([twelve, sixteen]))  # first page is read
    assert (read_image(tmp_path / 's16.tif')[..., 0] == sixteen // 256).all()
    assert (read_image(tmp_path / 's12.tif')[..., 2] == twelve // 16).all()
    rgb = read_image(tmp_path / 'rgb16.tiff')
    assert rgb.shape == (12, 16, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 1] == sixteen // 256).all()
    assert (read_image(tmp_path / 'stack.tif')[..., 0] == twelve // 16).all()
    assert '16-bit' in BIT_DEPTH_POLICY and '4096' in BIT_DEPTH_POLICY


def test_lzw_and_truncated_tiffs(tmp_path):
    grey = texture(1, 12, 16)[..., 0]
    Image.fromarray(grey).save(tmp_path / 'lzw.tif', compression='tiff_lzw')  # read by PIL
    assert (read_image(tmp_path / 'lzw.tif')[..., 0] == grey).all()
    data = (tmp_path / 'lzw.tif').read_bytes()
    (tmp_path / 'cut.tif').write_bytes(data[:40])
    with pytest.raises(DataError, match='cut.tif'):
        read_image(tmp_path / 'cut.tif')
