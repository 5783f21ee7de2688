"""Loader workers: a sample's randomness depends on (seed, epoch, index) only, so a resumed
run with workers continues the uninterrupted one, whatever the number of workers."""
from __future__ import annotations

import pytest
import torch
from mmengine.runner import Runner

from matssl_bench.data.augment import training_patches
from matssl_bench.data.patches import SegmentationPatches
from matssl_bench.data.sampling import EpochSeededSampler, SampleKey
from matssl_bench.datasets.synthetic import SyntheticMicrographs
from matssl_bench.engine import stages
from matssl_bench.engine.runner import selection_and_metric

DATA = SyntheticMicrographs(size=64, train=4, val=2, test=2, unlabeled=0)
SCALE = dict(batch_size=8, patch_size=32, lr=1e-3, decoder_channels=(8, 8, 8, 8, 8),
             augment='photometric', num_workers=2)


def _epoch_inputs(workers: int, epoch: int) -> torch.Tensor:
    dataset = training_patches(SegmentationPatches(DATA.labeled_split('train'), 32),
                               dict(augment='photometric'))
    loader = Runner.build_dataloader(stages.dataloader_cfg(dataset, 4, workers, True, False),
                                     seed=3)
    loader.sampler.set_epoch(epoch)
    return torch.cat([batch['inputs'] for batch in loader])


def test_worker_samples_depend_on_seed_epoch_and_index_only():
    cfg = stages.dataloader_cfg(training_patches(SegmentationPatches(DATA.labeled_split('train'),
                                                                     32), SCALE), 4, 2, True, False)
    assert cfg['sampler']['type'] is EpochSeededSampler and cfg['persistent_workers']
    two, three = _epoch_inputs(2, 1), _epoch_inputs(3, 1)
    assert torch.equal(two, three)                   # any number of workers
    assert not torch.equal(two, _epoch_inputs(2, 0))  # a new epoch draws anew
    dataset = training_patches(SegmentationPatches(DATA.labeled_split('train'), 32), SCALE)
    key = SampleKey(index=5, seed=3, epoch=1)
    assert torch.equal(dataset[key]['inputs'], dataset[key]['inputs'])
    assert not torch.equal(dataset[key]['inputs'], dataset[key._replace(epoch=2)]['inputs'])


@pytest.mark.slow
def test_resume_with_workers_equals_an_uninterrupted_run(tmp_path):
    selection, metric = selection_and_metric(DATA, 'clean')

    def run(epochs: int, run_dir):
        _, history = stages.finetune(None, 'random init', DATA, None, 'resnet18',
                                     dict(SCALE, epochs=epochs), 0, run_dir, metric_cfg=metric)
        state = torch.load(stages.last_weights_path(run_dir), weights_only=True)['state_dict']
        return history, state

    whole_history, whole = run(3, tmp_path / 'whole')
    run(2, tmp_path / 'interrupted')   # stops after epoch 2 with its resume checkpoint
    resumed_history, resumed = run(3, tmp_path / 'interrupted')  # resumes at epoch 3
    assert [h['epoch'] for h in resumed_history] == [1, 2, 3]
    assert resumed_history == whole_history
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_device_views_are_per_sample_per_rank_and_resume_exact(monkeypatch):
    from matssl_bench.data import ssl_views

    views = ssl_views.DeviceViews(ssl_views.simclr_batch_views(24), seed=7)
    patch = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    batch = dict(inputs=patch.repeat(4, 1, 1, 1), data_samples=dict(index=torch.arange(4)))
    first = views(batch, training=True)['inputs']
    assert first[0].shape == (4, 3, 24, 24) and first[0].dtype == torch.float32
    assert not torch.equal(first[0][0], first[0][1])  # each sample its own parameters
    assert not torch.equal(first[0], first[1])        # two different views
    assert int(views.batches_made) == 1
    second = views(batch, training=True)['inputs']
    assert not torch.equal(first[0], second[0])       # the next batch draws anew
    views.batches_made.fill_(1)                       # as restored from a resume checkpoint
    assert torch.equal(views(batch, training=True)['inputs'][0], second[0])
    views.batches_made.fill_(0)
    monkeypatch.setattr('mmengine.dist.get_rank', lambda: 1)
    assert not torch.equal(views(batch, training=True)['inputs'][0], first[0])  # another rank
