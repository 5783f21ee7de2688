import numpy as np

from matssl_bench.datasets.synthetic import SyntheticMicrographs, generate_micrograph


def test_deterministic_per_seed_and_independent_of_counts():
    a = SyntheticMicrographs(size=64, train=3, seed=1).labeled_split('train')
    b = SyntheticMicrographs(size=64, train=5, seed=1).labeled_split('train')
    c = SyntheticMicrographs(size=64, train=3, seed=2).labeled_split('train')
    assert all(np.array_equal(x.image, y.image) and np.array_equal(x.mask, y.mask)
               for x, y in zip(a, b[:3]))
    assert not np.array_equal(a[0].image, c[0].image)


def test_labels_are_exact_and_phases_differ_in_intensity():
    rng = np.random.default_rng(0)
    image, mask = generate_micrograph(rng, 128)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    assert mask.shape == (128, 128) and set(np.unique(mask)) <= {0, 1, 2, 3}
    grey = image.mean(axis=2)
    assert grey[mask == 1].mean() > grey[mask == 0].mean() > grey[mask == 2].mean()


def test_splits_do_not_overlap_and_pool_excludes_tests():
    data = SyntheticMicrographs(size=64, train=2, val=2, test=2, unlabeled=3)
    names = {s: [it.name for it in data.labeled_split(s)] for s in data.splits}
    assert len(set(sum(names.values(), []))) == 6
    pool = data.unlabeled_pool(exclude=[names['train'][0]])
    assert len(pool) == 3 + 1
    assert not set(it.name for it in pool) & set(names['test'])
