import json

import pytest

from matssl_bench.data.patching import count_patches, patch_grid, patch_origins, patch_stride
from matssl_bench.engine.records import RecordStore
from matssl_bench.fileio.atomic import atomic_write
from matssl_bench.suite.job_key import config_key


def test_config_key_is_order_independent_and_sensitive():
    assert config_key(dict(a=1, b=[1, 2])) == config_key(dict(b=[1, 2], a=1))
    assert config_key(dict(a=1)) != config_key(dict(a=2))


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / 'out' / 'record.json'

    def failing(tmp):
        tmp.write_text('half')
        raise RuntimeError('killed')

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def _record(status, **extra):
    base = dict(stage='finetune', key='k', method='M', method_label='M', encoder_init='random',
                pretrain_set=None, dataset='d', seed=0, protocol='clean', config={})
    if status == 'finished':
        base.update(test=dict(mIoU=50.0), history=[], weights='w.pth')
    return dict(base, status=status, **extra)


def test_record_store_keeps_first_finished_record(tmp_path):
    store = RecordStore(tmp_path)
    store.put('finetune', 'k', _record('unavailable', reason='x'))
    assert store.finished('finetune', 'k') is None
    store.put('finetune', 'k', _record('finished', value=1))
    store.put('finetune', 'k', _record('finished', value=2))
    assert store.finished('finetune', 'k')['value'] == 1
    assert json.loads(store.path('finetune', 'k').read_text())['value'] == 1



def test_bad_per_image_areas_are_caught_where_tables_read_them(tmp_path, caplog):
    """The runner's finished-check skips the per-image areas (planning reads thousands of
    records); the tables' read checks them and names the file."""
    store = RecordStore(tmp_path)
    bad = _record('finished')
    bad['test']['images'] = [dict(name='a', intersection=[1, 2], union=[3, 'four'])]
    store.put('finetune', 'k', bad)
    assert store.finished('finetune', 'k') is not None  # the job is not rerun
    with caplog.at_level('WARNING'):
        assert store.all('finetune') == []
    assert 'k.json' in caplog.text and 'test.images.0.union.1' in caplog.text
    assert 'delete it to run its job again' in caplog.text

@pytest.mark.parametrize('length,patch,overlap,expected', [
    (256, 256, 0.0, [0]),
    (255, 256, 0.0, []),
    (600, 256, 0.0, [0, 256]),          # 600 - 256 = 344 -> 1 full stride
    (1024, 256, 0.5, [0, 128, 256, 384, 512, 640, 768]),
    (645, 256, 0.6, [0, 102, 204, 306]),  # stride round(256 * 0.4) = 102
    (484, 256, 0.7, [0, 77, 154]),        # stride round(256 * 0.3) = 77
])
def test_patch_origins_hand_computed(length, patch, overlap, expected):
    assert patch_origins(length, patch, overlap) == expected


def test_patch_counts_multiply_axes():
    assert count_patches(703, 1024, 256, 0.0) == 2 * 4
    assert len(patch_grid(703, 1024, 256)) == 8
    assert patch_stride(256, 0.7) == 77
    with pytest.raises(ValueError):
        patch_stride(256, 1.0)


def test_resize_items_square_and_factor_keep_labels_exact():
    import numpy as np
    from matssl_bench.data.patches import resize_items
    from matssl_bench.data_api import LabeledImage, UnlabeledImage

    mask = np.zeros((40, 60), np.uint8)
    mask[:, 30:] = 3
    item = LabeledImage('a', np.full((40, 60, 3), 7, np.uint8), mask)
    (square,) = resize_items([item], size=32)
    assert square.image.shape == (32, 32, 3) and set(np.unique(square.mask)) == {0, 3}
    (half,) = resize_items([item], factor=0.5)
    assert half.image.shape == (20, 30, 3) and half.mask.shape == (20, 30)
    (pool_item,) = resize_items([UnlabeledImage('u', item.image, overlap=0.7)], factor=0.5)
    assert pool_item.overlap == 0.7 and pool_item.image.shape == (20, 30, 3)
    assert resize_items([item]) == [item]
