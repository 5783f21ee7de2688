"""BYOL through mmselfsup's ``BYOL`` with ``NonLinearNeck`` and ``LatentPredictHead``.

Reference: mmselfsup 1.0.0 ``configs/selfsup/byol/byol_resnet50_16xb256-coslr-200e_in1k.py``:
online projector 2048-4096-256 (bias, no last BN), predictor 256-4096-256,
loss 2 x (cosine loss of view 1 + of view 2), target network an EMA of the
online backbone + projector whose momentum rises from 0.99 to 1 on a cosine
over all iterations (``CosineEMA``; the first update copies the online
network), LARS lr 4.8 at batch 4096 (0.3 per 256), momentum 0.9, weight decay
1e-6, none and no LARS trust ratio for batch norm and biases, warm-up 10 of
200 epochs, cosine to 0.

What the suite changes, and why:

- lr = 0.3 x batch / 256 (the reference's own scaling; 0.075 at batch 64);
- warm-up scaled to the epochs (round(epochs x 10/200); none below 10 epochs), the
  cosine stepped per iteration: short runs;
- plain batch norm (SyncBN on several GPUs is the suite's switch);
- the suite's symmetric SimCLR views; the reference's are asymmetric (blur p 1.0 /
  0.1, solarisation p 0 / 0.2): every method here sees the same views;
- under mixed precision the cosine losses run in float32.
"""
from matssl_bench.models.mmselfsup_bridge import neck_in_channels, nonlinear_neck, selfsup_cfg
from matssl_bench.methods.openmmlab import OpenMMLabMethod, lars_exclusions
from matssl_bench.registry import METHODS


@METHODS.register_module()
class BYOL(OpenMMLabMethod):
    """BYOL (mmselfsup BYOL): predictor on an online network, cosine-momentum target."""

    source = 'mmselfsup 1.0.0 BYOL'
    reference_config = 'configs/selfsup/byol/byol_resnet50_16xb256-coslr-200e_in1k.py'
    defaults = dict(OpenMMLabMethod.defaults, hidden_dim=4096, feat_dim=256, momentum=0.99,
                    optimizer=dict(type='mmselfsup.LARS', momentum=0.9, weight_decay=1e-6),
                    base_lr=0.3, warmup_fraction=10 / 200, paramwise_cfg=lars_exclusions())

    def model_cfg(self, arch):
        h = self.hparams
        mlp = dict(num_layers=2, with_bias=True, with_last_bn=False)
        return selfsup_cfg(
            'BYOL', arch, base_momentum=h['momentum'],
            neck=nonlinear_neck(neck_in_channels(arch), h['hidden_dim'], h['feat_dim'],
                                with_avg_pool=True, **mlp),
            head=dict(type='mmselfsup.LatentPredictHead',
                      predictor=nonlinear_neck(h['feat_dim'], h['hidden_dim'], h['feat_dim'],
                                               with_avg_pool=False, **mlp),
                      loss=dict(type='mmselfsup.CosineSimilarityLoss')))
