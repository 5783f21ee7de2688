"""DenseCL through mmselfsup's ``DenseCL`` (global + dense contrast, lambda 0.5)."""
from matssl_bench.mmselfsup_bridge import build_mmselfsup_model, mmselfsup_resnet, neck_in_channels
from matssl_bench.method_api import SSLMethod
from matssl_bench.registry import METHODS


@METHODS.register_module()
class DenseCL(SSLMethod):
    """DenseCL (mmselfsup DenseCL): global and dense contrastive losses, momentum encoder."""

    defaults = dict(
        optimizer=dict(type='SGD', lr=0.03, momentum=0.9, weight_decay=1e-4),
        min_lr=0.0, queue_len=65536, feat_dim=128, momentum=0.999, temperature=0.2,
        hidden_dim=2048, loss_lambda=0.5, augmentation=dict())

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
