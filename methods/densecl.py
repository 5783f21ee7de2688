"""DenseCL through mmselfsup's ``DenseCL`` (global + dense contrast) with ``DenseCLNeck``.

Reference settings: queue 65536 (one global, one dense), feature size 128,
neck 2048-2048-128, temperature 0.2, loss = (1 - lambda) global + lambda dense
with lambda 0.5, key-encoder momentum 0.999 in MoCo's convention (mmselfsup
hands mmengine's EMA 0.001). Same start encoder, optimiser and views as
MatSSL; overridable from a suite's ``method_cfg``.
"""
from matssl_bench.method_api import SSLMethod
from matssl_bench.models.mmselfsup_bridge import build_mmselfsup_model, momentum_contrast_cfg
from matssl_bench.registry import METHODS


@METHODS.register_module()
class DenseCL(SSLMethod):
    """DenseCL (mmselfsup DenseCL): global and dense contrastive losses, momentum encoder."""

    source = 'mmselfsup 1.0.0 DenseCL'
    # model only; optimiser and views are the paper's SSL recipe
    reference_config = 'configs/selfsup/densecl/densecl_resnet50_8xb32-coslr-200e_in1k.py (model)'

    defaults = dict(SSLMethod.defaults, queue_len=65536, feat_dim=128, momentum=0.999,
                    temperature=0.2, hidden_dim=2048, loss_lambda=0.5)

    def build_model(self, arch, initial_state):
        cfg = momentum_contrast_cfg('DenseCL', arch, dict(type='mmselfsup.DenseCLNeck', num_grid=None),
                                    self.hparams, loss_lambda=self.hparams['loss_lambda'])
        return build_mmselfsup_model(cfg, initial_state, 'DenseCL initial encoder')
