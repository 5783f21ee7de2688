"""Variants beyond Tables 4-5: label-efficiency draws, frozen encoders, transfer (RDT),
training tricks and morphology, each on tiny synthetic data."""
import math
import textwrap

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from matssl_bench.engine import stages
from matssl_bench.data.augment import AugmentedPatches, training_patches
from matssl_bench.data.patches import SegmentationPatches
from matssl_bench.data.sources import build_micrograph_set
from matssl_bench.datasets.synthetic import SyntheticMicrographs
from matssl_bench.evaluation.morphology import region_stats
from matssl_bench.suite.plan import expand
from matssl_bench.report.variant_tables import transfer_runs, transfer_table
from matssl_bench.data.subsets import draw_labelled, with_labels
from matssl_bench.suite.variants import check_finetune_settings
from matssl_bench.engine.transfer import rdt
from matssl_bench.evaluation.tta import attach

SMALL = dict(type='SyntheticMicrographs', size=64, train=6, val=2, test=2)
SCALE = dict(epochs=1, batch_size=4, patch_size=32, lr=1e-2, decoder_channels=(16, 16, 8, 8, 8),
             num_workers=0)


def _suite(**extra) -> Config:
    cfg = dict(suite_name='t', protocol='clean', seeds=[0, 1], backbone='resnet18',
               method_cfg={}, pretrain_sets={}, finetune_sets=dict(A=SMALL),
               rows=[dict(finetune='A', method='RandomInit'),
                     dict(finetune='A', method='SupervisedImageNet')],
               scale=dict(pretrain={}, finetune=SCALE))
    cfg.update(extra)
    return Config(cfg)


# -- label efficiency -------------------------------------------------------------------------
def test_label_draw_is_shared_by_methods_and_seeds_and_changes_with_the_draw():
    jobs = expand(_suite(label_efficiency=dict(n_labelled=[2, 'all'], draws=3)))
    assert len(jobs) == 2 * 2 * (3 + 1)  # methods x seeds x (3 draws of 2, 'all' once)
    assert len({j.key for j in jobs}) == len(jobs)  # the draw is part of the job key
    chosen = {}
    plain = {j.key for j in expand(_suite())}
    for job in jobs:
        labels = job.spec.get('labels')
        assert (labels is None) == (job.key in plain)  # all labels: the plain run, shared
        data = with_labels(build_micrograph_set(job.spec['data']), job.spec['finetune_set'],
                           labels)
        names = tuple(it.name for it in data.labeled_split('train'))
        chosen.setdefault((labels['n'], labels['draw']) if labels else 'all', set()).add(names)
        assert data.labeled_split('test') == build_micrograph_set(SMALL).labeled_split('test')
    assert all(len(sets) == 1 for sets in chosen.values())  # every method and seed: same images
    draws = [next(iter(chosen[(2, d)])) for d in range(3)]
    assert all(len(d) == 2 for d in draws) and len(set(draws)) > 1  # draws differ
    assert len(next(iter(chosen['all']))) == 6
    assert draw_labelled(['x', 'y'], 'A', 1, 0) == draw_labelled(['y', 'x'], 'A', 1, 0)


def test_label_efficiency_rejects_more_images_than_the_split_has():
    data = build_micrograph_set(SMALL)
    with pytest.raises(ValueError, match='A: 7 labelled images asked for.*only 6'):
        with_labels(data, 'A', dict(n=7, draw=0))


# -- frozen encoder and linear probe -----------------------------------------------------------
def _train(tmp_path, scale, encoder_state=None):
    data = SyntheticMicrographs(size=64, train=2, val=1, test=1)
    weights, _ = stages.finetune(encoder_state, 'test encoder', data, None, 'resnet18',
                                 scale, 0, tmp_path / 'run')
    return torch.load(weights, weights_only=True)['state_dict']


@pytest.mark.parametrize('mode, prefix, head', [('frozen-decoder', 'net.encoder.', 'net.decoder.'),
                                                ('linear-probe', 'encoder.', 'heads.')])
def test_frozen_variants_leave_every_encoder_tensor_bit_identical(tmp_path, mode, prefix, head):
    scale = dict(SCALE, epochs=2, encoder_mode=mode)
    torch.manual_seed(3)
    initial = stages.build_segmenter('resnet18', 4, scale).state_dict()
    encoder = {k[len(prefix):]: v.clone() for k, v in initial.items() if k.startswith(prefix)}
    trained = _train(tmp_path, scale, encoder)
    running = [k for k in encoder if 'running_' in k]
    assert running and any(k.endswith('num_batches_tracked') for k in encoder)
    for key, value in encoder.items():  # weights, BN running statistics and counters
        assert torch.equal(trained[prefix + key], value), key
    assert any(not torch.equal(trained[k], initial[k]) for k in trained if k.startswith(head))


def test_full_fine_tuning_does_change_the_encoder(tmp_path):
    """The control: the same check fails when the encoder is trained."""
    torch.manual_seed(3)
    initial = stages.build_segmenter('resnet18', 4, SCALE).state_dict()
    encoder = {k[len('net.encoder.'):]: v.clone() for k, v in initial.items()
               if k.startswith('net.encoder.')}
    trained = _train(tmp_path, SCALE, encoder)
    assert not torch.equal(trained['net.encoder.bn1.running_mean'], encoder['bn1.running_mean'])
    assert not torch.equal(trained['net.encoder.conv1.weight'], encoder['conv1.weight'])


# -- transfer ----------------------------------------------------------------------------------
def test_rdt_matches_the_hand_computed_value():
    assert rdt(65.0, 70.0) == pytest.approx(-5 / 70) == pytest.approx(-0.0714, abs=1e-4)
    assert rdt(70.0, 70.0) == 0.0 and math.isnan(rdt(50.0, 0.0))
    record = dict(stage='finetune', status='finished', method_label='MatSSL', pretrain_set='P',
                  dataset='EBC-1', seed=0, test=dict(mIoU=70.0),
                  transfer={'EBC-2': dict(mIoU=65.0), 'MetalDAM': dict(skipped='classes differ')})
    subset = dict(record, config=dict(labels=dict(n=1, draw=0)), test=dict(mIoU=10.0))
    table = transfer_table(transfer_runs([record, subset]))  # label subsets stay out
    row = table[table['target'] == 'EBC-2'].iloc[0]
    assert row['source'] == 'EBC-1' and row['mIoU'] == 65.0
    assert row['rdt'] == pytest.approx(-0.0714, abs=1e-4)
    assert set(table['target']) == {'EBC-1', 'EBC-2'}  # own test split kept, mismatch skipped
    assert list(table['seeds']) == ['0', '0']


def test_transfer_targets_are_the_other_sets_and_enter_the_key():
    plain = expand(_suite(finetune_sets=dict(A=SMALL, B=dict(SMALL, material='B'))))
    jobs = expand(_suite(finetune_sets=dict(A=SMALL, B=dict(SMALL, material='B')),
                         transfer=True))
    assert {j.key for j in jobs}.isdisjoint({j.key for j in plain})
    assert all(list(j.spec['transfer_targets']) == ['B'] for j in jobs)


def test_target_test_images_the_source_trained_on_are_left_out_of_its_score():
    from matssl_bench.data_api import LabeledImage
    from matssl_bench.data.subsets import SplitSubset
    from matssl_bench.engine.transfer import seen_by_source

    source = SyntheticMicrographs(size=64, train=4, val=2, test=2)
    other = SyntheticMicrographs(size=64, train=4, val=2, test=2, material='B')
    assert seen_by_source(source, other) == []  # different micrographs: nothing seen

    class Overlapping(SplitSubset):  # a target whose test split re-uses 2 source images
        def labeled_split(self, split):
            if split != 'test':
                return self.data.labeled_split(split)
            copies = [LabeledImage(f'copy/{it.name}', it.image.copy(), it.mask)
                      for it in source.labeled_split('train')[:2]]
            return copies + self.data.labeled_split('test')

    target = Overlapping(other, 'test', [])
    seen = seen_by_source(source, target)
    assert sorted(s['name'] for s in seen) == sorted(
        f'copy/{it.name}' for it in source.labeled_split('train')[:2])
    assert all(s['matches'] in {it.name for it in source.labeled_split('train')} for s in seen)
    unseen = SplitSubset(target, 'test', [it.name for it in other.labeled_split('test')])
    assert [it.name for it in unseen.labeled_split('test')] == [
        it.name for it in other.labeled_split('test')]
    assert [it.name for it in unseen.labeled_split('train')] == [
        it.name for it in other.labeled_split('train')]


# -- training tricks ---------------------------------------------------------------------------
@pytest.fixture
def grid():
    return SegmentationPatches(SyntheticMicrographs(size=64, train=2).labeled_split('train'), 32)


def test_tricks_are_off_by_default(grid):
    assert training_patches(grid, SCALE) is grid  # the fixed patch grid, unaugmented
    model = stages.build_segmenter('resnet18', 4, SCALE)
    assert model.test_time is None and type(model).__name__ == 'UNetPlusPlusSegmenter'
    wrapper = stages.finetune_optim_wrapper(SCALE)
    assert 'paramwise_cfg' not in wrapper
    expanded = expand(_suite())
    variant_fields = {'transfer_targets', 'morphology_classes', 'trick', 'labels'}
    assert all(not variant_fields & set(j.spec) for j in expanded)  # unchanged job keys
    assert all(not variant_fields & set(j.spec['scale']) for j in expanded)


@pytest.mark.parametrize('level', ['flips', 'flips+rot90', 'photometric', 'strong'])
def test_augmentation_changes_the_batch_and_moves_mask_with_image(grid, level):
    data = training_patches(grid, dict(SCALE, augment=level))
    torch.manual_seed(0)
    changed = 0
    for _ in range(8):
        image, mask = data.sample(0)
        original_image, original_mask = grid.patch(0)
        assert image.shape == original_image.shape and mask.shape == original_mask.shape
        changed += not np.array_equal(image, original_image)
        if level in ('flips', 'flips+rot90'):  # a symmetry of the square: find it, check mask
            found = [(k, f) for k in range(4) for f in (False, True)
                     if np.array_equal(image, _dihedral(original_image, k, f))]
            assert found, 'image is not a flip/rotation of the patch'
            assert any(np.array_equal(mask, _dihedral(original_mask, k, f)) for k, f in found)
    assert changed >= 3
    batch = data[0]
    assert batch['inputs'].shape == (3, 32, 32) and batch['data_samples']['gt'].dtype == torch.long


def _dihedral(array, k, flip):
    out = np.rot90(array, k, axes=(0, 1))
    return out[:, ::-1] if flip else out


def test_photometric_changes_intensities_not_geometry(grid):
    data = AugmentedPatches(grid, 'photometric')
    torch.manual_seed(1)
    pairs = [data.sample(1) for _ in range(10)]
    assert any(not np.array_equal(im, grid.patch(1)[0]) for im, _ in pairs)


def test_balanced_crops_sample_random_windows_with_no_dominant_class(grid):
    data = training_patches(grid, dict(SCALE, balanced_crops=True))
    np.random.seed(0)
    crops = [data.sample(0) for _ in range(6)]
    grid_patches = [grid.patch(i)[0] for i in range(len(grid))]
    assert any(not any(np.array_equal(im, p) for p in grid_patches) for im, _ in crops)
    for _, mask in crops:
        assert mask.shape == (32, 32)
        assert np.bincount(mask.ravel()).max() / mask.size <= 0.75


def test_downscaling_trains_on_smaller_images_and_predicts_at_full_size(grid):
    data = training_patches(grid, dict(SCALE, downscale=0.5))
    assert data.items[0].image.shape[:2] == (32, 32) and len(data) == 2  # one patch per image
    model = stages.build_segmenter('resnet18', 4, dict(SCALE, downscale=0.5)).eval()
    seen = []
    plain = model.logits
    model.logits = lambda x: seen.append(tuple(x.shape[-2:])) or plain(x)  # a spy
    attach(model, dict(SCALE, downscale=0.5))  # re-wrap the spy
    out = model(torch.zeros(1, 3, 64, 64), mode='tensor')
    assert seen == [(32, 32)] and out.shape == (1, 4, 64, 64)


@pytest.mark.parametrize('tta, calls', [('flips', [(64, 64)] * 3),
                                        ('flips+multiscale', [(64, 64)] * 3 + [(32, 32)] * 3
                                         + [(96, 96)] * 3)])
def test_test_time_augmentation_runs_every_view_at_inference_only(tta, calls):
    scale = dict(SCALE, tta=tta, tta_scales=(1.0, 0.5, 1.5))
    model = stages.build_segmenter('resnet18', 4, scale).eval()
    seen, plain = [], model.logits
    model.logits = lambda x: seen.append(tuple(x.shape[-2:])) or plain(x)
    attach(model, scale)
    x = torch.randn(2, 3, 64, 64)
    out = model(x, mode='tensor')
    assert sorted(seen) == sorted(calls) and out.shape == (2, 4, 64, 64)
    assert torch.allclose(out.exp().sum(1), torch.ones(2, 64, 64), atol=1e-4)  # log-probs
    seen.clear()
    model(x, data_samples=dict(gt=torch.zeros(2, 64, 64, dtype=torch.long)), mode='loss')
    assert seen == [(64, 64)]  # training sees the plain network


def test_encoder_learning_rate_multiplier_lowers_only_the_encoder_lr():
    scale = dict(SCALE, encoder_lr_mult=0.1)
    model = stages.build_segmenter('resnet18', 4, scale)
    wrapper = build_optim_wrapper(model, stages.finetune_optim_wrapper(scale))
    names = {id(p): n for n, p in model.named_parameters()}
    lrs = {names[id(g['params'][0])]: g['lr'] for g in wrapper.optimizer.param_groups}
    assert lrs['net.encoder.conv1.weight'] == pytest.approx(1e-3)
    assert lrs['net.decoder.blocks.x_0_0.conv1.0.weight'] == pytest.approx(1e-2)


@pytest.mark.parametrize('setting, message', [(dict(augment='wild'), 'augment'),
                                              (dict(encoder_mode='frozen'), 'encoder_mode'),
                                              (dict(downscale=2), 'downscale'),
                                              (dict(tta='rotate'), 'tta')])
def test_bad_settings_are_named(setting, message):
    with pytest.raises(ValueError, match=f'suite x: .*{message}'):
        check_finetune_settings(dict(SCALE, **setting), 'suite x')


# -- morphology --------------------------------------------------------------------------------
def test_region_stats_on_a_constructed_mask():
    truth = np.zeros((60, 60), np.uint8)
    truth[5:9, 5:9] = 1            # 16 px
    truth[20:30, 20:30] = 1        # 100 px
    truth[40:42, 40:42] = 2        # another class: ignored
    pred = np.zeros_like(truth)
    pred[5:9, 5:9] = 1
    pred[20:30, 20:30] = 1
    pred[50:52, 50:52] = 1         # a spurious 4 px region
    pred[10, 10] = pred[11, 11] = 1  # diagonal neighbours: one 8-connected region
    stats = region_stats(pred, truth, 1)
    assert stats['count_true'] == 2 and stats['count_pred'] == 4
    assert stats['count_rel_error'] == pytest.approx(1.0)
    r_true = (math.sqrt(16 / math.pi) + math.sqrt(100 / math.pi)) / 2
    r_pred = (math.sqrt(16 / math.pi) + math.sqrt(100 / math.pi) + math.sqrt(4 / math.pi)
              + math.sqrt(2 / math.pi)) / 4
    assert stats['mean_radius_true'] == pytest.approx(r_true)
    assert stats['mean_radius_pred'] == pytest.approx(r_pred)
    assert stats['radius_rel_error'] == pytest.approx((r_pred - r_true) / r_true)
    empty = region_stats(pred, truth, 3)
    assert empty['count_true'] == 0 and math.isnan(empty['count_rel_error'])
    with pytest.raises(ValueError, match='differ in size'):
        region_stats(pred[:10], truth, 1)


# -- suites and data ---------------------------------------------------------------------------
def test_synthetic_material_b_shares_the_classes_but_not_the_look():
    a = SyntheticMicrographs(size=64, train=2)
    b = SyntheticMicrographs(size=64, train=2, material='B')
    assert a.classes == b.classes
    ia, ib = a.labeled_split('train'), b.labeled_split('train')
    assert not {x.name for x in ia} & {x.name for x in ib}
    assert ia[0].name == 'synthetic-train-000'  # material A keeps today's names and images
    grey_a = np.mean([x.image[x.mask == 1].mean() for x in ia])
    grey_b = np.mean([x.image[x.mask == 1].mean() for x in ib])
    assert grey_a > grey_b + 30  # bright lamellar phase in A, dark in B
    with pytest.raises(ValueError, match="unknown material 'C'"):
        SyntheticMicrographs(material='C')


def test_list_shows_the_variant_suites_with_descriptions():
    from matssl_bench.commands.run_benchmark import list_registered

    listing = list_registered()
    for suite in ('labels', 'frozen', 'transfer', 'tricks', 'protocols-smoke'):
        line = next(l for l in listing.splitlines() if l.strip().startswith(suite + ' '))
        assert len(line.split(None, 1)[1]) > 20
    assert '_variants_common' not in listing and '_training_tricks' not in listing
