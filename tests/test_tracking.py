"""Tracking configs and tags, without training: run names per backend, train/ and val/
prefixes, hyper-parameters flattened, final metrics logged once."""
import importlib.util
import json
import uuid
from types import SimpleNamespace

from mmengine.registry import VISUALIZERS

from matssl_bench.engine import hooks
from matssl_bench.engine.console import run_name


def test_run_names_follow_the_job():
    job = SimpleNamespace(stage='finetune', method='MatSSL', dataset='MetalDAM',
                          pretrain_set='pool', seed=2, spec=dict(labels=dict(n=4, draw=1)))
    assert run_name(job) == 'finetune/MatSSL/MetalDAM@pool/seed2/n4draw1'
    job = SimpleNamespace(stage='pretrain', method='MoCoV2', dataset=None, pretrain_set='pool',
                          seed=0, spec={})
    assert run_name(job) == 'pretrain/MoCoV2/pool/seed0'


def test_backend_configs_name_the_run(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: object())
    kw = dict(run_name='finetune/M/S/seed0', root=str(tmp_path),
              hparams=dict(seed=0, scale=dict(lr=1e-3, decoder=(8, 4)), x=None),
              experiment='matssl-bench-t')
    tb = hooks.visualizer_cfg('tensorboard', **kw)
    assert tb['type'] == 'TrackingVisualizer'
    assert tb['vis_backends'][1]['save_dir'] == str(tmp_path / 'tensorboard/finetune/M/S/seed0')
    assert tb['hparams'] == {'seed': 0, 'scale.lr': 1e-3, 'scale.decoder': '[8, 4]', 'x': 'None'}
    wandb = hooks.visualizer_cfg('wandb', **kw)['vis_backends'][1]['init_kwargs']
    assert (wandb['name'], wandb['group'], wandb['project']) == (
        'finetune/M/S/seed0', 'finetune/M', 'matssl-bench-t')
    mlflow = hooks.visualizer_cfg('mlflow', **kw)['vis_backends'][1]
    assert (mlflow['run_name'], mlflow['exp_name'], mlflow['params']['scale.lr']) == (
        'finetune/M/S/seed0', 'matssl-bench-t', '0.001')


def test_tags_prefixed_by_phase_and_final_metrics_once(tmp_path):
    vis = VISUALIZERS.build(dict(hooks.visualizer_cfg('local', hparams=dict(seed=0)),
                                 name=f'vis-{uuid.uuid4().hex}', save_dir=str(tmp_path)))
    runner = SimpleNamespace(visualizer=vis, epoch=0)
    hook = hooks.TrackingHook()
    vis.add_scalars({'loss': 1.0, 'lr': 0.1}, step=1)
    hook.after_train_iter(runner, 0, outputs=dict(loss=1.0))
    hook.after_train_epoch(runner)
    hook.before_val_epoch(runner)
    vis.add_scalars({'mIoU': 50.0}, step=1)
    hook.after_val_epoch(runner)
    vis.close()  # the Runner's close: deferred until the test set is scored
    hooks.finish_tracking({'test/mIoU': 61.0})
    hooks.finish_tracking({'test/mIoU': 99.0})  # a second call changes nothing
    (scalars,) = tmp_path.glob('vis_data/scalars.json')
    logged = [json.loads(line) for line in scalars.read_text().splitlines()]
    keys = [sorted(k for k in entry if k != 'step') for entry in logged]
    assert keys == [['train/loss', 'train/lr'], ['train/epoch_loss'], ['val/mIoU'],
                    ['test/mIoU']]
    assert logged[1]['step'] == 1 and logged[-1]['test/mIoU'] == 61.0
