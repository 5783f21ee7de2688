"""Issue 22, everyday use: run the paper suite on the data you have (--pretrain-sets,
exclusion of the selected fine-tuning sets only, labels and overrides), and data checked
before any training (undeclared mask values, broken split lists, images smaller than the
patch)."""
import json
import os
import textwrap

import numpy as np
import pytest

from conftest import REPO
from matssl_bench.commands.run_benchmark import main
from matssl_bench.suite.plan import expand, load_suite

from _data_fakes import grey_folder, save


def run_main(capsys, *argv):
    status = main(list(map(str, argv)))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- run what you have --------------------------------------------------------------------

def test_paper_suite_on_metaldam_and_ebc_needs_no_aachen_or_uhcs(tmp_path, capsys, monkeypatch):
    """The documented command (docs/paper.md): nothing of Aachen or UHCS is asked for."""
    monkeypatch.setenv('MATSSL_DATA', str(tmp_path / 'data'))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    args = ['--suite', 'paper', '--pretrain-sets', 'MetalDAM', '--datasets', 'MetalDAM', 'EBC-1',
            '--dry-run', '--work-dir', tmp_path / 'w']
    status, out, err = run_main(capsys, *args, '--format', 'json')
    assert status == 0, err
    report = json.loads(out)
    paths = [m['path'] for m in report['missing']]
    assert paths and not [p for p in paths if 'Aachen' in p or 'UHCS' in p]
    assert str(tmp_path / 'data' / 'MetalDAM') in paths and str(tmp_path / 'data' / 'EBC') in paths
    ssl = [j for j in report['jobs'] if j['pretrain_set']]
    # the Aachen+UHCS rows have no MetalDAM part: not run; the others pretrain on MetalDAM
    assert {j['pretrain_set'] for j in ssl} == {'MetalDAM'}
    assert sorted((j['method'], j['dataset']) for j in ssl if j['stage'] == 'finetune') == [
        ('DenseCL', 'MetalDAM'), ('MatSSL', 'EBC-1'), ('MatSSL', 'MetalDAM'), ('MoCoV2', 'MetalDAM')]
    assert all('--pretrain-sets: Aachen+UHCS+MetalDAM -> MetalDAM' in j['overrides'] for j in ssl)
    plain = [j for j in report['jobs'] if not j['pretrain_set']]
    assert [j['method'] for j in plain] == ['SupervisedImageNet'] and plain[0]['overrides'] == []
    status, text, _ = run_main(capsys, *args)
    assert status == 0 and 'Aachen' not in text.split('missing')[1]
    assert max(map(len, text.splitlines())) <= 120


def test_pools_exclude_the_selected_fine_tuning_sets_only(tmp_path, monkeypatch):
    monkeypatch.setenv('MATSSL_DATA', str(tmp_path))
    suite = load_suite('paper')
    everything = {j.key: j for j in expand(suite) if j.stage == 'pretrain'}
    assert all(len(j.spec['exclude_test_images_of']) == 5 for j in everything.values())
    selected = [j for j in expand(suite, datasets=['MetalDAM', 'EBC-1']) if j.stage == 'pretrain']
    for job in selected:
        excluded = job.spec['exclude_test_images_of']
        assert [c['type'] for c in excluded] == ['EBC', 'MetalDAM']
        assert excluded[0]['subset'] == 'EBC1'
        assert job.key not in everything  # another pool: its own cache entry
        assert job.pretrain_set == 'Aachen+UHCS+MetalDAM' or job.pretrain_set == 'Aachen+UHCS'


def test_pretrain_sets_select_whole_pools_or_refuse_unknown_names(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('MATSSL_DATA', str(tmp_path))
    suite = load_suite('paper')
    jobs = expand(suite, pretrain_sets=['Aachen+UHCS'])
    assert {j.pretrain_set for j in jobs if j.pretrain_set} == {'Aachen+UHCS'}
    assert not any(j.row.get('overrides') for j in jobs)
    # rows without pretraining run whatever the pools
    assert {j.method for j in jobs if not j.pretrain_set} == {'SupervisedImageNet'}
    status, _, err = run_main(capsys, '--suite', 'paper', '--pretrain-sets', 'Nothing*',
                              '--dry-run')
    last = err.strip().splitlines()[-1]
    assert status == 2 and last.startswith('error: ')
    assert "--pretrain-sets 'Nothing*' matches nothing" in last and 'MetalDAM' in last


def test_an_overridden_pool_is_named_by_its_real_sources_and_marked(tmp_path, monkeypatch):
    monkeypatch.setenv('MATSSL_DATA', str(tmp_path))
    metaldam = str(tmp_path / 'MetalDAM')
    options = {'pretrain_sets.UHCS+MetalDAM.0.type': 'MetalDAM',
               'pretrain_sets.UHCS+MetalDAM.0.root': metaldam,
               'scale.finetune.epochs': 3}
    jobs = expand(load_suite('paper', options), datasets=['Aachen'])
    pools = {j.pretrain_set for j in jobs if j.stage == 'pretrain'}
    assert pools == {'MetalDAM', 'Aachen+UHCS+MetalDAM'}  # was UHCS+MetalDAM
    narrowed = [j for j in jobs if j.stage == 'finetune' and j.pretrain_set == 'MetalDAM']
    assert len(narrowed) == 3
    for job in narrowed:
        assert 'pretrain_sets.UHCS+MetalDAM.0.type=MetalDAM' in job.row['overrides']
        assert 'scale.finetune.epochs=3' in job.row['overrides']
    others = [j for j in jobs if j.stage == 'finetune' and j.pretrain_set != 'MetalDAM']
    assert all(j.row['overrides'] == ['scale.finetune.epochs=3'] for j in others)
    # a setting of a source that keeps its images keeps the pool's name, and is listed
    jobs = expand(load_suite('paper', {'pretrain_sets.UHCS+MetalDAM.0.overlap': 0.5}),
                  datasets=['Aachen'])
    changed = [j for j in jobs if j.stage == 'pretrain' and j.spec['sources'][0].get('overlap')]
    assert len(changed) == 3 and {j.pretrain_set for j in changed} == {'UHCS+MetalDAM'}
    assert all(j.row['overrides'] == ['pretrain_sets.UHCS+MetalDAM.0.overlap=0.5']
               for j in changed)


# -- data checked before training ---------------------------------------------------------

FOLDER_SUITE = '''
protocol = 'clean'
backbone = 'resnet18'
ssl_init = 'random'
_mine = dict(type='Folder', root={root!r}, classes=['a', 'b', 'c', 'd'],
             label_map={{0: 0, 85: 1, 170: 2, 255: 3}}{extra})
pretrain_sets = dict(mine=[_mine])
finetune_sets = dict(mine=_mine)
rows = [dict(finetune='mine', method='RandomInit')]
scale = dict(
    pretrain=dict(epochs=1, batch_size=4, patch_size=32),
    finetune=dict(epochs=1, batch_size=4, patch_size={patch}, decoder_channels=(16, 16, 8, 8, 8)),
)
'''


def folder_suite(tmp_path, patch=32, extra=''):
    root = grey_folder(tmp_path / 'mine', labeled=6, size=(40, 48))
    path = tmp_path / 'suite.py'
    path.write_text(textwrap.dedent(FOLDER_SUITE.format(root=str(root), patch=patch, extra=extra)))
    return root, path


def test_undeclared_mask_value_stops_dry_run_and_run_before_training(tmp_path, capsys):
    root, suite = folder_suite(tmp_path, extra=", splits=dict(train=['s0', 's1', 's2', 's3'], "
                                                "val=['s4'], test=['s5'])")
    mask = root / 'masks' / 's5.png'  # the test mask
    values = np.zeros((40, 48), np.uint8)
    values[:4, :4] = 7
    save(mask, values)
    work = tmp_path / 'w'
    status, out, _ = run_main(capsys, '--suite', suite, '--work-dir', work, '--dry-run')
    assert status == 2
    [line] = [l for l in out.splitlines() if str(mask) in l]
    assert '[7]' in line and 'add it to classes or map it with label_map' in line
    assert 'invalid' in out
    status, _, err = run_main(capsys, '--suite', suite, '--work-dir', work)
    assert status == 2 and f'error: {mask}: label value(s) [7]' in err
    assert not (work / 'records').exists()  # nothing trained, nothing recorded
    # the values are cached by file state: an edited mask is read again
    cache = json.loads((work / 'cache' / 'mask_label_values.json').read_text())
    assert len(cache) == 6 and sum(7 in v['values'] for v in cache.values()) == 1
    save(mask, np.zeros((40, 48), np.uint8))
    os.utime(mask, ns=(1, 1))  # a new state even within the file system's time resolution
    status, out, _ = run_main(capsys, '--suite', suite, '--work-dir', work, '--dry-run')
    assert status == 0 and 'invalid' not in out


def test_undeclared_class_id_without_label_map(tmp_path, capsys):
    root = tmp_path / 'mine'
    for i in range(5):
        save(root / 'images' / f's{i}.png', np.full((40, 48), 40 * i, np.uint8))
        save(root / 'masks' / f's{i}.png', np.full((40, 48), 4 if i == 2 else i % 4, np.uint8))
    path = tmp_path / 'suite.py'
    path.write_text(textwrap.dedent(FOLDER_SUITE.format(root=str(root), patch=32, extra=''))
                    .replace("label_map={0: 0, 85: 1, 170: 2, 255: 3}", 'test_fraction=0.4'))
    status, out, _ = run_main(capsys, '--suite', path, '--work-dir', tmp_path / 'w', '--dry-run')
    assert status == 2
    assert f'{root / "masks" / "s2.png"}: label value(s) [4] not declared by Folder ' \
           '(declared: 0..3); add it' in ' '.join(out.split())


def test_a_split_naming_a_missing_image_makes_dry_run_exit_2(tmp_path, capsys):
    root, suite = folder_suite(tmp_path, extra=", splits=dict(train=['s0', 's1'], test=['s9'])")
    status, out, _ = run_main(capsys, '--suite', suite, '--work-dir', tmp_path / 'w',
                              '--dry-run', '--format', 'json')
    assert status == 2
    report = json.loads(out)
    assert report['jobs'][0]['status'] == 'invalid'
    [problem] = report['invalid']
    assert 'split test names s9' in problem['message'] and str(root) in problem['message']


def test_images_smaller_than_the_patch_block_the_job(tmp_path, capsys):
    _, suite = folder_suite(tmp_path, patch=256)
    status, out, _ = run_main(capsys, '--suite', suite, '--work-dir', tmp_path / 'w', '--dry-run')
    assert status == 2
    [line] = [l for l in out.splitlines() if 'patch size' in l]
    assert 'fine-tuning set mine' in line and '48x40 px' in line and '256 px patch size' in line
    assert 'scale.finetune.patch_size' in line and len(line) <= 120


def test_prepared_copy_lists_label_values_and_the_plan_uses_them(tmp_path, capsys):
    src = grey_folder(tmp_path / 'src', labeled=6, size=(40, 48))
    out = tmp_path / 'prepared'
    from matssl_bench.data.prepare import prepare
    prepare('folder', src, out, options=dict(classes=['a', 'b', 'c', 'd'],
                                             label_map={0: 0, 85: 1, 170: 2, 255: 3}))
    manifest = json.loads((out / 'manifest.json').read_text())
    entries = [e for split in manifest['splits'].values() for e in split]
    assert len(entries) == 6 and all(set(e['label_values']) <= {0, 1, 2, 3} for e in entries)
    from matssl_bench.data.label_check import LabelValueCache, label_problems
    from matssl_bench.registry import MICROGRAPH_SETS
    data = MICROGRAPH_SETS.build(dict(type='Folder', root=str(out), classes=['a', 'b', 'c', 'd']))
    cache = LabelValueCache()
    assert label_problems(data, cache) == [] and cache.entries == {}  # no mask was read


# -- prepare_data names --------------------------------------------------------------------

def prepare_data_main():
    """tools/prepare_data.py's main(), run in this process (the script is not a module)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('prepare_data_tool',
                                                  REPO / 'tools' / 'prepare_data.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_prepare_data_matches_type_names_case_insensitively(tmp_path, capsys):
    from _data_fakes import fake_metaldam
    src = fake_metaldam(tmp_path / 'src', labeled=5, unlabeled=0)
    tool = prepare_data_main()
    for name in ('metaldam', 'METALDAM'):
        out = tmp_path / name
        assert tool([name, '--src', str(src), '--out', str(out)]) == 0
        assert json.loads((out / 'manifest.json').read_text())['dataset'] == 'MetalDAM'
    capsys.readouterr()
    assert tool(['metaldamx', '--src', str(src), '--out', str(tmp_path / 'out2')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: ')
    assert 'did you mean MetalDAM?' in err and '--option' not in err
    assert 'registered: AachenHeerlen, EBC, Folder, MetalDAM, UHCS' in err
    assert not (tmp_path / 'out2').exists()


def test_paper_authors_code_asks_for_the_legacy_imagenet_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('MATSSL_DATA', str(tmp_path))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.delenv('MATSSL_WEIGHTS', raising=False)
    status, out, _ = run_main(capsys, '--suite', 'paper-authors-code', '--datasets', 'MetalDAM',
                              '--dry-run', '--format', 'json', '--work-dir', tmp_path / 'w')
    assert status == 0
    [weights] = [m for m in json.loads(out)['missing'] if m['kind'] == 'weights']
    assert weights['path'].endswith('resnet50-19c8e357.pth')
    assert weights['url'] == 'https://download.pytorch.org/models/resnet50-19c8e357.pth'
    assert weights['fix'] == 'python tools/fetch_weights.py --suite paper-authors-code'


@pytest.mark.parametrize('reader', ['UHCS', 'aachen'])
def test_prepare_command_of_docs_works_for_uhcs_and_aachen(tmp_path, reader):
    """docs/datasets.md's prepare commands: UHCS from the public labeled_img/GT/unlabeled_img
    layout, Aachen-Heerlen from images/ + annotations.csv."""
    from _data_fakes import labels, texture
    src = tmp_path / 'src'
    if reader == 'UHCS':
        for i in range(6):
            save(src / 'labeled_img' / f'micrograph{i}.jpg', texture(i, 48, 64), quality=95)
            save(src / 'GT' / f'micrograph{i}.png', labels(i, 48, 64, 4))
        for i in range(3):
            save(src / 'unlabeled_img' / f'micrograph{10 + i}.jpg', texture(50 + i, 48, 64),
                 quality=95)
    else:
        for i in range(6):
            save(src / 'images' / f'a{i}.png', texture(i, 48, 64))
        (src / 'annotations.csv').write_text('image,polygon,x,y\n'
                                             'a1.png,0,2,2\na1.png,0,20,2\na1.png,0,20,20\n')
    out = tmp_path / 'out'
    assert prepare_data_main()([reader, '--src', str(src), '--out', str(out)]) == 0
    manifest = json.loads((out / 'manifest.json').read_text())
    assert sum(manifest['counts'][s] for s in ('train', 'val', 'test')) == 6
    values = {v for split in manifest['splits'].values() for e in split for v in e['label_values']}
    assert values <= ({0, 1, 2, 3} if reader == 'UHCS' else {0, 1}) and len(values) > 1


def test_table_note_shows_a_rows_overrides():
    from matssl_bench.report.tables import finetune_table
    units = [dict(name=f'i{i}', height=4, width=4, intersection=[8, 8], union=[10, 10],
                  pred_area=[8, 8], gt_area=[8, 8]) for i in range(3)]
    record = dict(stage='finetune', key='k', status='finished', suite='paper', method='MatSSL',
                  method_label='MatSSL', encoder_init='imagenet', pretrain_set='MetalDAM',
                  dataset='EBC-1', seed=0, protocol='clean',
                  row=dict(table='table5', published=96.79, index=0,
                           overrides=['--pretrain-sets: Aachen+UHCS+MetalDAM -> MetalDAM']),
                  metric=dict(convention='clean', num_classes=2),
                  dataset_meta=dict(classes=['background', 'foreground']),
                  test=dict(mIoU=80.0, images=units))
    row = finetune_table([record]).iloc[0]
    assert row['pretrain set'] == 'MetalDAM'
    assert 'differs from the suite file: --pretrain-sets: Aachen+UHCS+MetalDAM -> MetalDAM' \
        in row['note']
    plain = finetune_table([dict(record, row=dict(table='table5', index=0))]).iloc[0]
    assert 'differs' not in plain['note']


def test_audit_data_audits_the_selected_pools_and_sets(tmp_path, capsys, monkeypatch):
    import importlib.util

    from _data_fakes import fake_metaldam
    fake_metaldam(tmp_path / 'MetalDAM', labeled=10, unlabeled=2, size=(40, 60))
    monkeypatch.setenv('MATSSL_DATA', str(tmp_path))
    spec = importlib.util.spec_from_file_location('audit_tool', REPO / 'tools' / 'audit_data.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(['--suite', 'paper', '--format', 'json']) == 1  # Aachen, UHCS, EBC absent
    capsys.readouterr()
    assert tool.main(['--suite', 'paper', '--format', 'json', '--pretrain-sets', 'MetalDAM',
                      '--datasets', 'MetalDAM']) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report['pools']) == ['MetalDAM'] and report['finetune_sets'] == ['MetalDAM']
    # published MetalDAM: 2 of 10 labeled images are test images, left out of the pool
    pool = report['pools']['MetalDAM']
    assert len(pool['excluded']) == 2 and pool['images'] == 10
    assert report['unreadable_sources'] == []


def test_a_work_dir_that_cannot_hold_the_cache_still_gets_its_plan(tmp_path, capsys):
    _, suite = folder_suite(tmp_path)
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('a file where the work dir would be')
    status, out, _ = run_main(capsys, '--suite', suite, '--work-dir', blocker, '--dry-run')
    assert status == 0 and '1 jobs (0 pretraining, 1 fine-tuning): 1 ready' in out
