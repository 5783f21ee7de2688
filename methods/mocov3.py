"""MoCo v3 (ResNet) through mmselfsup's ``MoCoV3`` with ``NonLinearNeck`` and ``MoCoV3Head``.

Reference: mmselfsup 1.0.0 ``configs/selfsup/mocov3/mocov3_resnet50_8xb512-amp-coslr-100e_in1k.py``:
projector 2048-4096-256 (no bias, last BN without affine), predictor
256-4096-256, in-batch InfoNCE of each view's prediction against the other
view's momentum key at temperature 1.0, loss weight 2 x temperature, momentum
encoder an EMA of backbone + projector whose momentum rises from 0.99 to 1 on
a cosine over all iterations (``CosineEMA``; the first update copies the
online network), LARS lr 9.6 at batch 4096 (0.6 per 256), momentum 0.9,
weight decay 1e-6, none and no LARS trust ratio for batch norm and biases,
warm-up 10 of 100 epochs, cosine to 0, fp16 with dynamic loss scaling.

What the suite changes, and why:

- lr = 0.6 x batch / 256 (the reference's own scaling; 0.15 at batch 64);
- warm-up scaled to the epochs (round(epochs x 10/100); none below 5 epochs), the
  cosine stepped per iteration: short runs;
- precision is the suite's (``scale.pretrain.precision``: fp32, bf16 or fp16), with
  the logits and loss in float32 either way;
- plain batch norm (SyncBN on several GPUs is the suite's switch);
- the suite's symmetric SimCLR views (the reference: BYOL-style asymmetric ones).
"""
from matssl_bench.models.mmselfsup_bridge import neck_in_channels, nonlinear_neck, selfsup_cfg
from matssl_bench.methods.openmmlab import OpenMMLabMethod, lars_exclusions
from matssl_bench.registry import METHODS


@METHODS.register_module()
class MoCoV3(OpenMMLabMethod):
    """MoCo v3 (mmselfsup MoCoV3, ResNet): predictor, cosine-momentum keys, in-batch InfoNCE."""

    source = 'mmselfsup 1.0.0 MoCoV3'
    reference_config = 'configs/selfsup/mocov3/mocov3_resnet50_8xb512-amp-coslr-100e_in1k.py'
    defaults = dict(OpenMMLabMethod.defaults, hidden_dim=4096, feat_dim=256, temperature=1.0,
                    momentum=0.99,
                    optimizer=dict(type='mmselfsup.LARS', momentum=0.9, weight_decay=1e-6),
                    base_lr=0.6, warmup_fraction=10 / 100, paramwise_cfg=lars_exclusions())

    def model_cfg(self, arch):
        h = self.hparams
        mlp = dict(num_layers=2, with_bias=False, with_last_bn_affine=False, with_last_bias=False)
        return selfsup_cfg(
            'MoCoV3', arch, base_momentum=h['momentum'],
            neck=nonlinear_neck(neck_in_channels(arch), h['hidden_dim'], h['feat_dim'],
                                with_last_bn=True, with_avg_pool=True, vit_backbone=False, **mlp),
            head=dict(type='mmselfsup.MoCoV3Head', temperature=h['temperature'],
                      predictor=nonlinear_neck(h['feat_dim'], h['hidden_dim'], h['feat_dim'],
                                               with_last_bn=False, with_avg_pool=False, **mlp),
                      loss=dict(type='mmcls.CrossEntropyLoss', loss_weight=2 * h['temperature'])))
