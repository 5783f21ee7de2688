import json

from conftest import run_cli
from matssl_bench.suite.plan import expand, load_suite

TABLE4 = [  # (fine-tune, method, pretraining set, published mIoU) from the paper
    ('MetalDAM', 'SupervisedImageNet', None, 66.73), ('MetalDAM', 'DenseCL', 'Aachen+UHCS', 68.76),
    ('MetalDAM', 'MoCoV2', 'Aachen+UHCS', 67.18), ('MetalDAM', 'MatSSL', 'Aachen+UHCS', 69.95),
    ('MetalDAM', 'DenseCL', 'Aachen+UHCS+MetalDAM', 68.34),
    ('MetalDAM', 'MoCoV2', 'Aachen+UHCS+MetalDAM', 68.40),
    ('MetalDAM', 'MatSSL', 'Aachen+UHCS+MetalDAM', 69.02),
    ('Aachen', 'SupervisedImageNet', None, 65.59), ('Aachen', 'DenseCL', 'UHCS+MetalDAM', 65.82),
    ('Aachen', 'MoCoV2', 'UHCS+MetalDAM', 65.90), ('Aachen', 'MatSSL', 'UHCS+MetalDAM', 65.98),
    ('Aachen', 'DenseCL', 'Aachen+UHCS+MetalDAM', 65.56),
    ('Aachen', 'MoCoV2', 'Aachen+UHCS+MetalDAM', 65.65),
    ('Aachen', 'MatSSL', 'Aachen+UHCS+MetalDAM', 65.86),
]
TABLE5 = [('EBC-1', 96.79), ('EBC-2', 94.70), ('EBC-3', 84.53)]


def test_paper_plan_json_matches_tables_4_and_5():
    out = run_cli('--suite', 'paper', '--dry-run', '--format', 'json')
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = json.loads(out.stdout)['jobs']
    for job in jobs:
        assert {'stage', 'method', 'pretrain_set', 'dataset', 'seed', 'est_cost'} <= set(job)
    pretrain = [j for j in jobs if j['stage'] == 'pretrain']
    finetune = [j for j in jobs if j['stage'] == 'finetune']
    assert len(pretrain) == 9 and len(finetune) == 17
    assert {(j['method'], j['pretrain_set']) for j in pretrain} == {
        (m, s) for m in ('MatSSL', 'MoCoV2', 'DenseCL')
        for s in ('UHCS+MetalDAM', 'Aachen+UHCS', 'Aachen+UHCS+MetalDAM')}
    expected = [(d, m, p) for d, m, p, _ in TABLE4] + [(d, 'MatSSL', 'Aachen+UHCS+MetalDAM')
                                                       for d, _ in TABLE5]
    assert [(j['dataset'], j['method'], j['pretrain_set']) for j in finetune] == expected
    keys = {j['key'] for j in pretrain}
    assert all((j['depends_on'] in keys) == (j['pretrain_set'] is not None) for j in finetune)


def test_paper_rows_carry_published_values_and_scale():
    suite = load_suite('paper')
    jobs = [j for j in expand(suite, seeds=[0, 1, 2]) if j.stage == 'finetune']
    assert len(jobs) == 3 * 17
    published = [(j.row['finetune'], j.row['published']) for j in jobs if j.seed == 0]
    assert [p for _, p in published] == [p for *_, p in TABLE4] + [p for _, p in TABLE5]
    by_set = {j.dataset: j.spec['scale'] for j in jobs}
    assert by_set['MetalDAM']['epochs'] == 200 and by_set['Aachen']['epochs'] == 50
    assert by_set['EBC-1']['patch_size'] == 512 and by_set['MetalDAM']['patch_size'] == 256
    assert suite.scale.pretrain.batch_size == 128 and suite.backbone == 'resnet50'
    quoted = [q for q in suite.quoted if q['finetune'] == 'EBC-3']
    assert sorted(q['mIoU'] for q in quoted) == [42.58, 45.69, 56.72]


def test_selection_flags_and_shared_pretraining():
    suite = load_suite('paper')
    jobs = expand(suite, methods=['MatSSL'], datasets=['EBC-*'])
    assert [j.stage for j in jobs] == ['pretrain', 'finetune', 'finetune', 'finetune']
    assert len({j.depends_on for j in jobs[1:]}) == 1
    assert [j.method for j in expand(suite, rows=[0])] == ['SupervisedImageNet']
    # seeds change keys; the same seed gives the same key
    assert expand(suite, seeds=[1], rows=[0])[0].key != expand(suite, seeds=[0], rows=[0])[0].key
    assert expand(suite, seeds=[0], rows=[0])[0].key == expand(suite, rows=[0])[0].key
