"""MoCo v2 through mmselfsup's ``MoCo`` (queue 65536, momentum 0.999, temperature 0.2)."""
from matssl_bench.mmselfsup_bridge import build_mmselfsup_model, mmselfsup_resnet, neck_in_channels
from matssl_bench.method_api import SSLMethod
from matssl_bench.registry import METHODS


@METHODS.register_module()
class MoCoV2(SSLMethod):
    """MoCo v2 (mmselfsup MoCo + MoCoV2Neck), momentum encoder and a negative queue."""

    defaults = dict(
        optimizer=dict(type='SGD', lr=0.03, momentum=0.9, weight_decay=1e-4),
        min_lr=0.0, queue_len=65536, feat_dim=128, momentum=0.999, temperature=0.2,
        hidden_dim=2048, augmentation=dict())

    def build_model(self, arch, initial_state):
        h = self.hparams
        cfg = dict(
            type='mmselfsup.MoCo', queue_len=h['queue_len'], feat_dim=h['feat_dim'],
            momentum=h['momentum'], backbone=mmselfsup_resnet(arch),
            neck=dict(type='mmselfsup.MoCoV2Neck', in_channels=neck_in_channels(arch),
                      hid_channels=h['hidden_dim'], out_channels=h['feat_dim'], with_avg_pool=True),
            head=dict(type='mmselfsup.ContrastiveHead', temperature=h['temperature'],
                      loss=dict(type='mmcls.CrossEntropyLoss')),
            data_preprocessor=dict(type='mmengine.BaseDataPreprocessor'))
        return build_mmselfsup_model(cfg, initial_state, 'MoCoV2 initial encoder')
