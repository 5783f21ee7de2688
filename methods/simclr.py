"""SimCLR through mmselfsup's ``SimCLR`` with ``NonLinearNeck`` and ``ContrastiveHead``.

Reference: mmselfsup 1.0.0 ``configs/selfsup/simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py``:
both views through one network (batch norm over both), projection MLP
2048-2048-128 (two layers, BN, no bias), NT-Xent at temperature 0.1 over the
global batch, LARS lr 4.8 at batch 4096 (0.3 per 256 images), momentum 0.9,
weight decay 1e-6, none and no LARS trust ratio for batch norm and biases,
warm-up 10 of 200 epochs, cosine to 0, ResNet with zero-initialised residual
batch norm.

What the suite changes, and why:

- lr = 0.3 x batch / 256 (the reference's own linear scaling rule; 0.075 at batch 64);
- warm-up scaled to the epochs (round(epochs x 10/200); none below 10 epochs), and
  the cosine stepped per iteration (the reference steps it per epoch): short runs;
- plain batch norm (the suite switches to SyncBN itself on several GPUs);
- the suite's views (SimCLR's own family, as for every method of the suite) at its
  patch size, and its start encoder (``init``);
- under mixed precision the loss (normalisation, similarities) runs in float32.

Settings are overridable from a suite's ``method_cfg`` (``hidden_dim``, ``feat_dim``...).
"""
from matssl_bench.models.mmselfsup_bridge import neck_in_channels, nonlinear_neck, selfsup_cfg
from matssl_bench.methods.openmmlab import OpenMMLabMethod, lars_exclusions
from matssl_bench.registry import METHODS


@METHODS.register_module()
class SimCLR(OpenMMLabMethod):
    """SimCLR (mmselfsup SimCLR): in-batch NT-Xent over both views, projection MLP."""

    source = 'mmselfsup 1.0.0 SimCLR'
    reference_config = 'configs/selfsup/simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py'
    defaults = dict(OpenMMLabMethod.defaults, hidden_dim=2048, feat_dim=128, temperature=0.1,
                    optimizer=dict(type='mmselfsup.LARS', momentum=0.9, weight_decay=1e-6),
                    base_lr=0.3, warmup_fraction=10 / 200, paramwise_cfg=lars_exclusions())

    def model_cfg(self, arch):
        h = self.hparams
        return selfsup_cfg(
            'SimCLR', arch, zero_init_residual=True,
            neck=nonlinear_neck(neck_in_channels(arch), h['hidden_dim'], h['feat_dim'],
                                num_layers=2, with_avg_pool=True),
            head=dict(type='mmselfsup.ContrastiveHead', temperature=h['temperature'],
                      loss=dict(type='mmcls.CrossEntropyLoss')))
