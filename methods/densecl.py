"""DenseCL through mmselfsup's ``DenseCL`` (global + dense contrast) with ``DenseCLNeck``.

Reference settings: queue 65536 (one global, one dense), feature size 128,
neck 2048-2048-128, temperature 0.2, loss = (1 - lambda) global + lambda dense
with lambda 0.5, key-encoder momentum 0.999 in MoCo's convention (mmselfsup
hands mmengine's EMA 0.001). Same start encoder, optimiser and views as
MatSSL; overridable from a suite's ``method_cfg``.
"""
from matssl_bench.method_api import SSLMethod
from matssl_bench.mmselfsup_bridge import build_mmselfsup_model, mmselfsup_resnet, neck_in_channels
from matssl_bench.registry import METHODS


@METHODS.register_module()
class DenseCL(SSLMethod):
    """DenseCL (mmselfsup DenseCL): global and dense contrastive losses, momentum encoder."""

    defaults = dict(SSLMethod.defaults, queue_len=65536, feat_dim=128, momentum=0.999,
                    temperature=0.2, hidden_dim=2048, loss_lambda=0.5)

    def build_model(self, arch, initial_state):
        h = self.hparams
        cfg = dict(
            type='mmselfsup.DenseCL', queue_len=h['queue_len'], feat_dim=h['feat_dim'],
            momentum=h['momentum'], loss_lambda=h['loss_lambda'],
            backbone=mmselfsup_resnet(arch),
            neck=dict(type='mmselfsup.DenseCLNeck', in_channels=neck_in_channels(arch),
                      hid_channels=h['hidden_dim'], out_channels=h['feat_dim'], num_grid=None),
            head=dict(type='mmselfsup.ContrastiveHead', temperature=h['temperature'],
                      loss=dict(type='mmcls.CrossEntropyLoss')),
            data_preprocessor=dict(type='mmengine.BaseDataPreprocessor'))
        return build_mmselfsup_model(cfg, initial_state, 'DenseCL initial encoder')
