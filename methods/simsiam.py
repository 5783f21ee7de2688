"""SimSiam through mmselfsup's ``SimSiam`` with ``NonLinearNeck`` and ``LatentPredictHead``.

Reference: mmselfsup 1.0.0 ``configs/selfsup/simsiam/simsiam_resnet50_8xb32-coslr-200e_in1k.py``:
projector 2048-2048-2048 (three layers, last BN without affine), predictor
2048-512-2048 (last layer with bias, no last BN), symmetric negative-cosine
loss with stop-gradient on the target branch, SGD lr 0.05 at batch 256,
momentum 0.9, weight decay 1e-4, cosine to 0 without warm-up, the predictor's
lr fixed at the base lr (``SimSiamHook``), ResNet with zero-initialised
residual batch norm.

What the suite changes, and why:

- lr = 0.05 x batch / 256 (the reference's own scaling rule; 0.0125 at batch 64), the
  predictor fixed at that lr;
- the cosine stepped per iteration, so the hook fixes the predictor's lr per
  iteration too (the reference: per epoch, with a per-epoch cosine);
- plain batch norm (SyncBN on several GPUs is the suite's switch);
- the suite's views (the reference uses MoCo v2's, the same family);
- under mixed precision the cosine losses run in float32.
"""
from mmengine.dist import get_dist_info

from matssl_bench.models.mmselfsup_bridge import neck_in_channels, nonlinear_neck, selfsup_cfg
from matssl_bench.methods.openmmlab import OpenMMLabMethod
from matssl_bench.registry import METHODS


@METHODS.register_module()
class SimSiam(OpenMMLabMethod):
    """SimSiam (mmselfsup SimSiam): predictor and stop-gradient, no negatives, no momentum."""

    source = 'mmselfsup 1.0.0 SimSiam'
    reference_config = 'configs/selfsup/simsiam/simsiam_resnet50_8xb32-coslr-200e_in1k.py'
    defaults = dict(OpenMMLabMethod.defaults, hidden_dim=2048, feat_dim=2048, pred_hidden_dim=512,
                    optimizer=dict(type='SGD', momentum=0.9, weight_decay=1e-4), base_lr=0.05,
                    paramwise_cfg=dict(custom_keys={'predictor': dict(fix_lr=True)}))

    def model_cfg(self, arch):
        h = self.hparams
        return selfsup_cfg(
            'SimSiam', arch, zero_init_residual=True,
            neck=nonlinear_neck(neck_in_channels(arch), h['hidden_dim'], h['feat_dim'],
                                num_layers=3, with_last_bn_affine=False, with_avg_pool=True),
            head=dict(type='mmselfsup.LatentPredictHead',
                      loss=dict(type='mmselfsup.CosineSimilarityLoss'),
                      predictor=nonlinear_neck(h['feat_dim'], h['pred_hidden_dim'], h['feat_dim'],
                                               with_avg_pool=False, with_last_bn=False,
                                               with_last_bias=True)))

    def custom_hooks(self, batch_size):
        per_epoch = self.hparams.get('schedule_per_epoch', False)
        return [dict(type='mmselfsup.SimSiamHook', priority='HIGH', fix_pred_lr=True,
                     lr=self.learning_rate(batch_size * get_dist_info()[1]),
                     adjust_by_epoch=per_epoch)]
