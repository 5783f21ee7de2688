"""A new user's path: a folder of micrographs and the suite template, outside the repository,
run to a table through the documented commands only (README "Bring your own micrographs")."""
import json
import os
import shutil

import pytest

from conftest import REPO, run_cli

from _data_fakes import grey_folder

pytestmark = pytest.mark.slow  # trains suites or starts processes

# The template's scale is for a GPU; these documented overrides make it a seconds-long run.
TINY = ['backbone=resnet18', 'ssl_init=random',
        'scale.pretrain.epochs=1', 'scale.pretrain.batch_size=8', 'scale.pretrain.patch_size=32',
        'scale.pretrain.crop_size=32', 'scale.pretrain.num_workers=0',
        'scale.finetune.epochs=1', 'scale.finetune.batch_size=8', 'scale.finetune.patch_size=32',
        'scale.finetune.num_workers=0', 'scale.finetune.lr=0.001',
        'scale.finetune.decoder_channels=(16,16,8,8,8)', 'method_cfg.MatSSL.hidden_dim=64']


def test_own_folder_and_suite_outside_the_repository_to_a_table(tmp_path):
    project = tmp_path / 'my_project'
    grey_folder(project / 'my_micrographs', labeled=8, unlabeled=4, stem='steel_',
                unlabeled_stem='extra_')
    suite = project / 'my_suite.py'
    shutil.copy(REPO / 'examples' / 'my_suite.py', suite)
    assert REPO not in suite.parents
    work = project / 'work_dirs' / 'mine'
    common = ['--suite', str(suite), '--work-dir', str(work), '--methods', 'MatSSL', 'RandomInit',
              '--cfg-options', *TINY]

    env = dict(os.environ, OMP_NUM_THREADS='1')  # tiny models on shared cores: threads only wait
    result = run_cli(*common, cwd=project, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (work / 'tables' / 'table4.md').read_text()
    assert 'MatSSL' in table and 'random init' in table
    records = [json.loads(p.read_text()) for p in (work / 'records' / 'finetune').glob('*.json')]
    assert sorted(r['method'] for r in records) == ['MatSSL', 'RandomInit']
    assert all(r['status'] == 'finished' for r in records)
    assert records[0]['dataset_meta']['classes'] == ['matrix', 'ferrite', 'pearlite', 'pore']
    assert set(records[0]['test']) and 0.0 <= records[0]['test']['mIoU'] <= 100.0
    [pretrain] = [json.loads(p.read_text()) for p in (work / 'records' / 'pretrain').glob('*.json')]
    # 8 labeled images less 2 test and 1 validation image (clean protocol: both kept out of
    # pretraining), plus the 4 of unlabeled/ (used without being named)
    assert pretrain['status'] == 'finished' and pretrain['pool_size'] == 5 + 4

    plan = run_cli(*common, '--dry-run', '--format', 'json', cwd=project, timeout=300, env=env)
    assert plan.returncode == 0, plan.stderr[-2000:]
    jobs = json.loads(plan.stdout)['jobs']
    assert [j['status'] for j in jobs] == ['cached'] * 3
    finetune = [j for j in jobs if j['stage'] == 'finetune']
    assert all((j['train_images'], j['val_images'], j['test_images']) == (5, 1, 2)
               for j in finetune)
    assert all(j['patches'] == 5 * 4 and j['patches_counted'] for j in finetune)
