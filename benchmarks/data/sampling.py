"""Per-sample random streams for data-loader workers that do not depend on the workers.

torch seeds a loader worker from the run's seed, its rank and worker id, once: with
``persistent_workers`` every epoch, and a resumed run's first epoch, would draw from the
stream it started with (a resumed run replays epoch 0's augmentations). Here the sampler,
which runs in the main process, hands each index out with the run's seed and the current
epoch (:class:`SampleKey`); a dataset draws the sample's randomness from a generator seeded
with (seed, epoch, index) (:func:`sample_randomness`), so a sample's augmentation is the
same whatever the number of workers, the rank that loads it, or an interruption.
"""
from __future__ import annotations

import contextlib
import random
from typing import NamedTuple, Union

import numpy as np
import torch
from mmengine.dataset import DefaultSampler


class SampleKey(NamedTuple):
    index: int
    seed: int
    epoch: int


def sample_seed(key: SampleKey) -> int:
    """A 63-bit seed of (seed, epoch, index), well mixed (numpy's SeedSequence)."""
    words = np.random.SeedSequence([key.seed, key.epoch, key.index]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


@contextlib.contextmanager
def sample_randomness(key: Union[int, SampleKey]):
    """Inside: torch's, numpy's and Python's global random streams seeded for ``key`` (then
    restored); a plain index leaves them as they are (the loader's own streams)."""
    if not isinstance(key, SampleKey):
        yield int(key)
        return
    seed = sample_seed(key)
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield key.index
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


class EpochSeededSampler(DefaultSampler):
    """mmengine's DefaultSampler (same order, same shards) yielding :class:`SampleKey`s."""

    def __iter__(self):
        for index in super().__iter__():
            yield SampleKey(int(index), int(self.seed), int(self.epoch))
