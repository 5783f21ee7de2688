"""The paper's three pretraining sets: no fine-tuning test image (or a copy of one) in any pool."""
import csv
import warnings

import numpy as np

from matssl_bench.data.file_sets import DUPLICATE_THRESHOLD
from matssl_bench.data.image_io import DataWarning, fingerprint
from matssl_bench.data.sources import build_micrograph_set, build_pool
from matssl_bench.suite.plan import load_suite

from _data_fakes import fake_metaldam, save, texture
from test_datasets_uhcs import fake_uhcs


def test_three_pools_leave_out_every_test_image(tmp_path, monkeypatch):
    fake_metaldam(tmp_path / 'MetalDAM', labeled=10, unlabeled=2)
    # MetalDAM ships labeled images again among unlabeled ones under other names
    save(tmp_path / 'MetalDAM' / 'unlabeled' / 'copy.jpg', texture(4, 40, 60), quality=80)
    fake_uhcs(tmp_path / 'UHCS')
    aachen = tmp_path / 'Aachen-Heerlen'
    for i in range(6):
        save(aachen / 'images' / f'a{i}.png', texture(200 + i, 40, 60))
    with open(aachen / 'annotations.csv', 'w', newline='') as f:
        csv.writer(f).writerows([['image', 'polygon', 'x', 'y'], ['a0', 0, 1, 1], ['a0', 0, 9, 1],
                                 ['a0', 0, 9, 9]])
    monkeypatch.setenv('MATSSL_DATA', str(tmp_path))
    suite = load_suite('paper')  # the paper suite's own data configs
    finetune = [cfg for name, cfg in suite.finetune_sets.items() if not name.startswith('EBC')]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DataWarning)
        test_items = [i for cfg in finetune
                      for i in build_micrograph_set(cfg).labeled_split('test')]
        assert 'MetalDAM/micrograph4' in {i.name for i in test_items}  # the copied one is a test image
        test_fp = np.stack([fingerprint(i.image) for i in test_items])
        sets = suite.pretrain_sets
        assert list(sets) == ['UHCS+MetalDAM', 'Aachen+UHCS', 'Aachen+UHCS+MetalDAM']
        names = {}
        for name, sources in sets.items():
            pool, excluded = build_pool(sources, finetune)
            assert excluded == len(test_items)
            names[name] = {p.name for p in pool}
            assert not {p.name for p in pool} & {i.name for i in test_items}
            pool_fp = np.stack([fingerprint(p.image) for p in pool])
            assert (pool_fp @ test_fp.T).max() < DUPLICATE_THRESHOLD, name
            assert {p.overlap for p in pool} <= {0.0, 0.6, 0.7}
    assert names['Aachen+UHCS+MetalDAM'] == names['Aachen+UHCS'] | names['UHCS+MetalDAM']
