"""MoCo v2 through mmselfsup's ``MoCo`` with ``MoCoV2Neck`` and ``ContrastiveHead``.

Reference settings: queue 65536, feature size 128, neck 2048-2048-128,
temperature 0.2, key-encoder momentum 0.999 in MoCo's convention (the key
encoder keeps 0.999 of itself; mmselfsup 1.0.0 hands mmengine's EMA
``1 - momentum`` = 0.001). It starts from the same encoder as MatSSL
(ImageNet by default) and uses the paper's SSL optimiser and views; any
setting is overridable from a suite's ``method_cfg``.
"""
from matssl_bench.method_api import SSLMethod
from matssl_bench.models.mmselfsup_bridge import build_mmselfsup_model, momentum_contrast_cfg
from matssl_bench.registry import METHODS


@METHODS.register_module()
class MoCoV2(SSLMethod):
    """MoCo v2 (mmselfsup MoCo + MoCoV2Neck), momentum encoder and a negative queue."""

    source = 'mmselfsup 1.0.0 MoCo'
    # model only; optimiser and views are the paper's SSL recipe
    reference_config = 'configs/selfsup/mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py (model)'

    defaults = dict(SSLMethod.defaults, queue_len=65536, feat_dim=128, momentum=0.999,
                    temperature=0.2, hidden_dim=2048)

    def build_model(self, arch, initial_state):
        cfg = momentum_contrast_cfg('MoCo', arch, dict(type='mmselfsup.MoCoV2Neck', with_avg_pool=True),
                                    self.hparams)
        return build_mmselfsup_model(cfg, initial_state, 'MoCoV2 initial encoder')
