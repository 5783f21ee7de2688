"""Barlow Twins through mmselfsup's ``BarlowTwins`` with ``LatentCrossCorrelationHead``.

Reference: mmselfsup 1.0.0 ``configs/selfsup/barlowtwins/barlowtwins_resnet50_8xb256-coslr-300e_in1k.py``:
projector 2048-8192-8192-8192 (three layers, no last BN, Kaiming-uniform
linear init), cross-correlation of the batch-normalised embeddings against
the identity, off-diagonal weight 0.0051, LARS lr 1.6 at batch 2048 (0.2 per
256), momentum 0.9, weight decay 1e-6, batch norm and biases at 0.024 x lr
without weight decay or LARS trust ratio, warm-up from 1.6e-4 x lr over 10 of
300 epochs, cosine to 0.001 x lr, ResNet with zero-initialised residual
batch norm.

What the suite changes, and why:

- lr = 0.2 x batch / 256 (the reference's own scaling; 0.05 at batch 64);
- warm-up scaled to the epochs (round(epochs x 10/300); none below 15 epochs), the
  cosine stepped per iteration: short runs; it ends at 0.001 x each parameter
  group's lr (the reference: 0.001 x the base lr for every group, so its batch
  norm and bias groups end 1/0.024 times higher than here);
- plain batch norm (SyncBN on several GPUs is the suite's switch);
- the suite's symmetric SimCLR views (the reference: BYOL's asymmetric ones);
- under mixed precision the cross-correlation runs in float32.

The 8192-wide projector has 134 M parameters; CPU suites narrow it (``hidden_dim``, ``feat_dim``).
"""
from matssl_bench.models.mmselfsup_bridge import neck_in_channels, nonlinear_neck, selfsup_cfg
from matssl_bench.methods.openmmlab import OpenMMLabMethod, lars_exclusions
from matssl_bench.registry import METHODS


@METHODS.register_module()
class BarlowTwins(OpenMMLabMethod):
    """Barlow Twins (mmselfsup BarlowTwins): cross-correlation of two views driven to identity."""

    source = 'mmselfsup 1.0.0 BarlowTwins'
    reference_config = ('configs/selfsup/barlowtwins/'
                        'barlowtwins_resnet50_8xb256-coslr-300e_in1k.py')
    defaults = dict(OpenMMLabMethod.defaults, hidden_dim=8192, feat_dim=8192, lambd=0.0051,
                    optimizer=dict(type='mmselfsup.LARS', momentum=0.9, weight_decay=1e-6),
                    base_lr=0.2, warmup_fraction=10 / 300, warmup_start_factor=1.6e-4,
                    min_lr_ratio=1e-3, paramwise_cfg=lars_exclusions(lr_mult=0.024))

    def model_cfg(self, arch):
        h = self.hparams
        return selfsup_cfg(
            'BarlowTwins', arch, zero_init_residual=True,
            neck=nonlinear_neck(neck_in_channels(arch), h['hidden_dim'], h['feat_dim'],
                                num_layers=3, with_last_bn=False, with_last_bn_affine=False,
                                with_avg_pool=True,
                                init_cfg=dict(type='Kaiming', distribution='uniform',
                                              layer=['Linear'])),
            head=dict(type='mmselfsup.LatentCrossCorrelationHead', in_channels=h['feat_dim'],
                      loss=dict(type='mmselfsup.CrossCorrelationLoss', lambd=h['lambd'])))
