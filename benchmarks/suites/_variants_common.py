# Shared by the paper-scale variant suites (labels, frozen, transfer, tricks): the paper's
# data, ResNet-50 encoders and fine-tuning recipe, under the clean protocol (the best epoch
# chosen on a validation part, the test split touched once). Files starting with '_' are
# not suites. Every variant suite keeps all four fine-tuning sets, so its pretraining jobs
# (which leave out every set's test images) are the same and shared in one work dir. Data: MATSSL_DATA (default ./data), prepared as for --suite paper.
protocol = 'clean'
seeds = [0]
backbone = 'resnet50'
ssl_init = 'imagenet'
data_root = '{{$MATSSL_DATA:data}}'
method_cfg = dict()
_metaldam = dict(type='MetalDAM', root=data_root + '/MetalDAM')
_aachen = dict(type='AachenHeerlen', root=data_root + '/Aachen-Heerlen')
_uhcs = dict(type='UHCS', root=data_root + '/UHCS')
pretrain_sets = {'Aachen+UHCS+MetalDAM': [_aachen, _uhcs, _metaldam]}
finetune_sets = dict(
    MetalDAM=_metaldam,
    **{f'EBC-{i}': dict(type='EBC', root=data_root + '/EBC', subset=f'EBC{i}', binary=True)
       for i in (1, 2, 3)},
)
finetune_scale = {f'EBC-{i}': dict(patch_size=512, resize=512) for i in (1, 2, 3)}
scale = dict(
    pretrain=dict(epochs=50, batch_size=128, patch_size=256, crop_size=224, overlap=0.0,
                  num_workers=8),
    finetune=dict(epochs=200, batch_size=128, patch_size=256, lr=1e-4, weight_decay=1e-5,
                  eval_batch_size=32, channels_last=True, num_workers=8),
)
