"""Paper fidelity and provenance: published splits train on every non-test image, the last
partial batch is kept, job keys follow the method's code and the prepared manifests, and
records say what the pool left out."""
import csv
import textwrap

import pytest

from matssl_bench.data.sources import build_micrograph_set, manifest_sha256
from matssl_bench.suite.plan import expand, load_suite
from matssl_bench.plugins import import_user_plugin
from matssl_bench.engine.stages import drops_single_sample_batch

from _data_fakes import save, texture
from conftest import write_tiny_suite
from test_leakage import planted_sources


def fake_aachen(root, n=20, test=4):
    for i in range(n):
        save(root / 'images' / f'a{i}.png', texture(300 + i, 16, 16))
    with open(root / 'annotations.csv', 'w', newline='') as f:
        csv.writer(f).writerows([['image', 'polygon', 'x', 'y'], ['a0', 0, 1, 1], ['a0', 0, 9, 1],
                                 ['a0', 0, 9, 9]])
    (root / 'test.txt').write_text('\n'.join(f'a{i}' for i in range(test)))
    return dict(type='AachenHeerlen', root=str(root))


def _counts(data):
    return tuple(len(data.files[s]) for s in ('train', 'val', 'test'))


def test_published_aachen_trains_on_every_non_test_image(tmp_path):
    cfg = fake_aachen(tmp_path / 'Aachen')
    assert _counts(build_micrograph_set(cfg, 'published')) == (16, 0, 4)
    assert _counts(build_micrograph_set(cfg, 'clean')) == (13, 3, 4)
    # an explicit setting wins
    assert _counts(build_micrograph_set(dict(cfg, val_fraction=0.25), 'published')) == (12, 4, 4)


def test_published_rule_follows_the_selection_split(tmp_path):
    set_a, _ = planted_sources(tmp_path)
    for split in ('train', 'val', 'test'):
        (tmp_path / 'A' / 'splits' / f'{split}.txt').unlink()
    (tmp_path / 'A' / 'splits').rmdir()  # seeded split from here on
    on_test = dict(set_a, selection_split='test', test_fraction=0.3)
    assert _counts(build_micrograph_set(on_test, 'published')) == (4, 0, 2)
    assert _counts(build_micrograph_set(on_test, 'clean')) == (3, 1, 2)
    assert _counts(build_micrograph_set(dict(set_a, test_fraction=0.3), 'published')) == (3, 1, 2)


@pytest.mark.parametrize('samples,batch,dropped', [(285, 128, False), (257, 128, True),
                                                   (8, 8, False), (1, 1, False), (9, 8, True),
                                                   (10, 8, False)])
def test_only_a_one_sample_last_batch_is_dropped(samples, batch, dropped):
    assert drops_single_sample_batch(samples, batch) is dropped


PLUGIN = '''
import torch
from mmengine.model import BaseModel
from matssl_bench.models.encoders import build_resnet
from matssl_bench.method_api import SSLMethod
from matssl_bench.registry import METHODS


class {name}Model(BaseModel):
    def __init__(self, arch):
        super().__init__()
        self.backbone = build_resnet(arch)
    def forward(self, inputs, data_samples=None, mode='tensor'):
        z1, z2 = (self.backbone(v) for v in inputs)
        return dict(loss={loss})


@METHODS.register_module()
class {name}(SSLMethod):
    def build_model(self, arch, initial_state):
        return {name}Model(arch)
'''


def test_editing_a_plugins_loss_changes_its_job_keys(tmp_path):
    import uuid
    name = f'Digest{uuid.uuid4().hex[:6]}'
    plugin = tmp_path / f'{name.lower()}.py'
    plugin.write_text(PLUGIN.format(name=name, loss='(z1 - z2).pow(2).mean()'))
    import_user_plugin(str(plugin))
    suite = load_suite(str(write_tiny_suite(tmp_path, methods=name, epochs=1)))
    before = [j.key for j in expand(suite)]
    assert len(before) == 2 and before == [j.key for j in expand(suite)]
    plugin.write_text(PLUGIN.format(name=name, loss='(z1 - z2).abs().mean()'))
    after = [j.key for j in expand(suite)]
    assert not set(before) & set(after)
    # other methods' keys do not depend on this file
    (tmp_path / 'other').mkdir()
    other = load_suite(str(write_tiny_suite(tmp_path / 'other', methods='MatSSL', epochs=1)))
    keys = [j.key for j in expand(other)]
    plugin.write_text(PLUGIN.format(name=name, loss='(z1 + z2).abs().mean()'))
    assert keys == [j.key for j in expand(other)]


def test_matssl_digest_covers_its_loss_module():
    from matssl_bench.suite.code_digest import method_source_files
    from matssl_bench.registry import METHODS
    files = {p.name for p in method_source_files(METHODS.get('MatSSL'))}
    assert {'matssl.py', 'losses.py', 'method_api.py', 'encoders.py'} <= files
    assert not any('site-packages' in str(p) for p in method_source_files(METHODS.get('MoCoV2')))


def _planted_suite(tmp_path, set_a, set_b, method_cfg='dict()',
                   pretrain='batch_size=4, patch_size=32',
                   finetune='batch_size=4, patch_size=32'):
    """A one-row MatSSL suite fine-tuning on ``set_a`` and pretraining on ``set_b``."""
    path = tmp_path / 's.py'
    path.write_text(textwrap.dedent(f'''
        protocol = 'published'
        backbone = 'resnet18'
        ssl_init = 'random'
        method_cfg = {method_cfg}
        pretrain_sets = dict(B=[{set_b!r}])
        finetune_sets = dict(A={set_a!r})
        rows = [dict(finetune='A', method='MatSSL', pretrain='B')]
        scale = dict(pretrain=dict(epochs=1, {pretrain}),
                     finetune=dict(epochs=1, {finetune}))
    '''))
    return path


def test_prepared_manifest_hash_is_in_job_keys(tmp_path):
    set_a, set_b = planted_sources(tmp_path)
    suite = load_suite(str(_planted_suite(tmp_path, set_a, set_b)))
    plain = {j.stage: j for j in expand(suite)}
    assert plain['finetune'].spec['data_manifests'] == {str(tmp_path / 'A' / 'manifest.json'): None}
    (tmp_path / 'A' / 'manifest.json').write_text('{"format": "x"}')
    assert manifest_sha256(set_a) is not None
    prepared = {j.stage: j for j in expand(suite)}
    assert prepared['finetune'].key != plain['finetune'].key
    assert prepared['pretrain'].key != plain['pretrain'].key  # A's test images are protected
    assert set(prepared['pretrain'].spec['data_manifests'].values()) == {None, manifest_sha256(set_a)}


def test_records_list_excluded_images_and_the_kept_last_batch(tmp_path):
    from matssl_bench.engine.runner import SuiteRunner

    set_a, set_b = planted_sources(tmp_path)
    suite_file = _planted_suite(
        tmp_path, set_a, set_b, method_cfg="dict(MatSSL=dict(hidden_dim=16, out_dim=8))",
        pretrain='batch_size=4, patch_size=32, crop_size=32',
        finetune='batch_size=5, patch_size=32, decoder_channels=(8, 8, 8, 8, 8)')
    suite = load_suite(str(suite_file))
    outcomes = SuiteRunner(suite, tmp_path / 'work').run(expand(suite))
    records = {o.job.stage: o.record for o in outcomes}
    assert all(o.status == 'finished' for o in outcomes), [o.reason for o in outcomes]
    pre = records['pretrain']
    assert [e['name'] for e in pre['excluded']] == ['SetB/unlabeled/copy_of_test']
    assert pre['excluded'][0]['matches'] == 'SetA/a0' and pre['excluded_test_images'] == 1
    assert pre['pool_size'] == 5 and pre['duplicates_dropped'] == 1
    assert pre['duplicate_threshold'] == 0.95 and len(pre['config']['method_code']) == 16
    # A's train split: a3-a5, 2 patches each = 6 at batch 5: the 1-patch last batch is dropped
    assert records['finetune']['dropped_last_batch'] is True
    assert 'data_manifests' in records['finetune']['config']


def test_authors_code_recipe_differs_from_the_paper_only_where_the_code_does():
    from matssl_bench.suite.plan import build_method

    paper, code = load_suite('paper'), load_suite('paper-authors-code')
    assert (paper.recipe, code.recipe) == ('paper', 'authors-code')
    assert code.rows == paper.rows and code.pretrain_sets == paper.pretrain_sets
    assert (code.scale.pretrain.epochs, code.scale.pretrain.batch_size) == (100, 32)
    assert (paper.scale.pretrain.epochs, paper.scale.pretrain.batch_size) == (50, 128)
    assert code.scale.finetune.weight_decay == 0.0 and paper.scale.finetune.weight_decay == 1e-5
    assert code.finetune_scale.Aachen == dict(epochs=50, lr=1e-3)
    for name in ('MatSSL', 'MoCoV2', 'DenseCL'):
        method = build_method(code, name)
        (schedule,) = method.param_scheduler(100)
        assert schedule['eta_min'] == 0.0 and schedule['convert_to_iter_based'] is False
        assert type(method.view_transform(224).transforms[0]).__name__ == 'Resize'
        (schedule,) = build_method(paper, name).param_scheduler(50)
        assert schedule['eta_min'] == 1e-4 and schedule['convert_to_iter_based'] is True
    assert not {j.key for j in expand(paper)} & {j.key for j in expand(code)}


def test_aachen_release_size_gives_the_papers_1403_0_302(tmp_path):
    from PIL import Image
    root = tmp_path / 'Aachen-Heerlen'
    (root / 'images').mkdir(parents=True)
    tile = Image.new('L', (8, 8), 128)
    for i in range(1705):
        tile.save(root / 'images' / f'img{i:04d}.png')
    (root / 'annotations.csv').write_text('image,polygon,x,y\n')
    cfg = dict(type='AachenHeerlen', root=str(root))
    assert _counts(build_micrograph_set(cfg, 'published')) == (1403, 0, 302)
    train, val, test = _counts(build_micrograph_set(cfg, 'clean'))
    assert test == 302 and val > 0 and train + val == 1403
