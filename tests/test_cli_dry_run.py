"""--dry-run: job statuses, every missing resource at once, image counts, a work-based cost."""
import json

from conftest import run_cli, write_tiny_suite
from matssl_bench.commands.run_benchmark import main
from matssl_bench.suite.plan import expand, load_suite
from matssl_bench.engine.records import RecordStore


def dry_run(capsys, *argv):
    status = main(['--dry-run', *argv])
    captured = capsys.readouterr()
    assert status == 0, captured.err[-2000:]
    return captured.out


def test_finished_job_is_cached_the_rest_ready(tmp_path, capsys):
    suite_path = write_tiny_suite(tmp_path, methods='*')
    work = tmp_path / 'work'
    jobs = expand(load_suite(str(suite_path)), methods=['MatSSL', 'RandomInit'])
    done = next(j for j in jobs if j.method == 'RandomInit')
    RecordStore(work).put('finetune', done.key, dict(
        stage='finetune', key=done.key, status='finished', method=done.method,
        method_label=done.method, encoder_init='random', pretrain_set=None,
        dataset=done.dataset, seed=done.seed, protocol='clean', config=done.spec,
        test=dict(mIoU=50.0), history=[], weights='runs/x/best.pth'))
    entries = json.loads(dry_run(capsys, '--suite', str(suite_path), '--work-dir', str(work),
                                 '--methods', 'MatSSL', 'RandomInit', '--format', 'json'))['jobs']
    status = {e['key']: e['status'] for e in entries}
    assert status.pop(done.key) == 'cached'
    assert set(status.values()) == {'ready'} and len(status) == 2
    finetune = [e for e in entries if e['stage'] == 'finetune']
    assert all((e['train_images'], e['val_images'], e['test_images']) == (4, 2, 2)
               for e in finetune)
    text = dry_run(capsys, '--suite', str(suite_path), '--work-dir', str(work),
                   '--methods', 'MatSSL', 'RandomInit')
    assert text.count(' cached ') == 1 and text.count(' ready ') == 2


def test_missing_weights_make_pretraining_unavailable_and_block_its_user(tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.delenv('MATSSL_WEIGHTS', raising=False)
    suite_path = write_tiny_suite(tmp_path, methods='*')
    entries = json.loads(dry_run(capsys, '--suite', str(suite_path), '--work-dir',
                                 str(tmp_path / 'w'), '--methods', 'MatSSL', 'RandomInit',
                                 '--cfg-options', 'ssl_init=imagenet', '--format', 'json'))['jobs']
    pretrain, matssl, random_init = entries
    assert pretrain['status'] == 'unavailable'
    assert 'resnet18-f37072fd.pth' in pretrain['missing'][0]['message']
    assert 'https://download.pytorch.org/models/' in pretrain['missing'][0]['message']
    assert matssl['status'] == 'blocked' and matssl['blocked_by'] == pretrain['key']
    assert random_init['status'] == 'ready' and random_init['missing'] == []


def test_paper_suite_without_data_or_weights_lists_everything_at_once(tmp_path, capsys,
                                                                      monkeypatch):
    empty = tmp_path / 'data'
    empty.mkdir()
    monkeypatch.setenv('MATSSL_DATA', str(empty))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.delenv('MATSSL_WEIGHTS', raising=False)
    args = ['--suite', 'paper', '--work-dir', str(tmp_path / 'w')]
    text = dry_run(capsys, *args)
    for folder, kind in (('MetalDAM', 'MetalDAM'), ('Aachen-Heerlen', 'AachenHeerlen'),
                         ('UHCS', 'UHCS'), ('EBC', 'EBC')):
        assert f'- data {empty / folder} (' in text  # each missing folder once, with its fix
        assert text.count(f'- data {empty / folder} (') == 1
        assert f'python tools/prepare_data.py {kind} ' in text
    assert 'https://download.pytorch.org/models/resnet50-0676ba61.pth' in text
    assert 'run: python tools/fetch_weights.py --suite paper' in text
    assert 'test images of EBC-1, EBC-2, EBC-3 excluded from pools' in ' '.join(text.split())
    assert max(map(len, text.splitlines())) <= 120
    assert f'read under {empty}: the built-in suites take it from MATSSL_DATA' in ' '.join(text.split())
    report = json.loads(dry_run(capsys, *args, '--format', 'json'))
    entries = report['jobs']
    missing = {m['path']: m for m in report['missing']}
    assert missing[str(empty / 'UHCS')]['url'] == 'https://hdl.handle.net/11256/940'
    assert missing[str(empty / 'MetalDAM')]['fix'].startswith(
        'python tools/prepare_data.py MetalDAM --src ')
    assert missing[str(empty / 'EBC')]['excluded_from_pools'] == ['EBC-1', 'EBC-2', 'EBC-3']
    assert report['totals']['status']['unavailable'] == len(entries) == 26
    assert {e['status'] for e in entries} == {'unavailable'}
    for e in entries:
        if e['stage'] == 'finetune':
            assert e['train_images'] is None and e['test_images'] is None
            assert any(m['kind'] == 'data' and str(empty) in m['message'] for m in e['missing'])
    # cost follows the FLOPs: the U-Net++ decoder puts Aachen fine-tuning ahead of any SSL job
    pretraining = [e['est_cost'] for e in entries if e['stage'] == 'pretrain']
    assert sum(pretraining) < 0.5 * sum(e['est_cost'] for e in entries)
    by_set = {e['dataset']: e['est_cost'] for e in entries if e['stage'] == 'finetune'}
    assert by_set['Aachen'] > max(pretraining)
    assert by_set['Aachen'] > by_set['MetalDAM'] > by_set['EBC-1']


def test_json_plan_is_pure_json_on_stdout(tmp_path):
    """mmengine logs that it substituted MATSSL_DATA; that line must not reach stdout. A fresh
    process: in-process, mmengine's logger keeps the stderr of the test that created it."""
    import os
    env = dict(os.environ, MATSSL_DATA=str(tmp_path), TORCH_HOME=str(tmp_path / 'torch'))
    result = run_cli('--suite', 'paper', '--dry-run', '--format', 'json', env=env, timeout=300,
                     fresh_process=True)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = json.loads(result.stdout)['jobs']
    assert len(jobs) == 26 and 'MATSSL_DATA' in result.stderr


def test_counts_real_metaldam(shared_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('MATSSL_DATA', str(shared_data))
    entries = json.loads(dry_run(capsys, '--suite', 'cpu', '--work-dir', str(tmp_path / 'w'),
                                 '--methods', 'RandomInit', '--datasets', 'MetalDAM', '--seeds', '0',
                                 '--format', 'json'))['jobs']
    [job] = entries
    # clean protocol on the shared copy (README "Data sets"): 28 / 5 / 9 images
    assert (job['train_images'], job['val_images'], job['test_images']) == (28, 5, 9)
    # 1/4-size images, 64-px patches: the same 245 patches as 256-px ones at full size
    assert job['patches'] == 245 and job['patches_counted'] and job['status'] == 'ready'


def test_paper_aachen_counts_are_what_the_reader_builds(tmp_path, capsys, monkeypatch):
    """Issue 11: with an Aachen-Heerlen folder of 1,705 images the published jobs show the
    reader's split (the paper: 1403 train / 302 test)."""
    import numpy as np
    from PIL import Image

    from matssl_bench.data.sources import build_micrograph_set
    root = tmp_path / 'Aachen-Heerlen'
    (root / 'images').mkdir(parents=True)
    for i in range(1705):
        Image.fromarray(np.full((8, 8), i % 256, np.uint8)).save(root / 'images' / f'a{i}.png')
    (root / 'annotations.csv').write_text('image,polygon,x,y\n')
    monkeypatch.setenv('MATSSL_DATA', str(tmp_path))
    entries = json.loads(dry_run(capsys, '--suite', 'paper', '--work-dir', str(tmp_path / 'w'),
                                 '--datasets', 'Aachen', '--methods', 'SupervisedImageNet',
                                 # 8 px images: 8 px patches, else no patch (an invalid job)
                                 '--cfg-options', 'finetune_scale.Aachen.patch_size=8',
                                 '--format', 'json'))['jobs']
    [job] = entries
    suite = load_suite('paper')
    data = build_micrograph_set(suite.finetune_sets.Aachen, 'published')
    expected = tuple(len(data.files[s]) for s in ('train', 'val', 'test'))
    assert (job['train_images'], job['val_images'], job['test_images']) == expected
    assert job['train_images'] + job['val_images'] == 1403 and job['test_images'] == 302
    assert not any(m['kind'] == 'data' for m in job['missing'])
