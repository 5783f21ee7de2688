# The paper suite: everything behind Tables 4 and 5 of the MatSSL paper, at the paper's scale.
# Prepare the data first (tools/prepare_data.py) and point MATSSL_DATA at the folder holding
# MetalDAM/, Aachen-Heerlen/, UHCS/ and EBC/; ImageNet ResNet-50 weights go in the torch cache.
description = 'Tables 4-5 of the MatSSL paper: 9 pretraining + 17 fine-tuning jobs per seed (GPU)'
protocol = 'published'
# 'paper': the paper's text where it states a setting; 'authors-code' (suite
# paper-authors-code) follows the authors' public code where it differs (README:
# "Paper vs authors' code vs suite").
recipe = 'paper'
# Near-copy exclusion from pretraining pools (correlation of 32x32 grey thumbnails);
# None: only images named like a test image are excluded.
duplicate_threshold = 0.95
seeds = [0]
backbone = 'resnet50'
ssl_init = 'imagenet'
data_root = '{{$MATSSL_DATA:data}}'
method_cfg = dict()
# Every row is compared with this method's row on the same fine-tuning set (tables).
baseline = 'SupervisedImageNet'

# published: train on all 33 MetalDAM training images (the authors select on test);
# clean (--protocol clean): a seeded 15 % of them become the validation part.
_metaldam = dict(type='MetalDAM', root=data_root + '/MetalDAM',
                 protocol_options=dict(published=dict(val_fraction=0.0)))
_aachen = dict(type='AachenHeerlen', root=data_root + '/Aachen-Heerlen')
_uhcs = dict(type='UHCS', root=data_root + '/UHCS')
pretrain_sets = {
    'UHCS+MetalDAM': [_uhcs, _metaldam],
    'Aachen+UHCS': [_aachen, _uhcs],
    'Aachen+UHCS+MetalDAM': [_aachen, _uhcs, _metaldam],
}
finetune_sets = dict(
    MetalDAM=_metaldam,
    Aachen=_aachen,
    **{f'EBC-{i}': dict(type='EBC', root=data_root + '/EBC', subset=f'EBC{i}', binary=True)
       for i in (1, 2, 3)},
)
# The authors' code fine-tunes 50 epochs on Aachen and feeds EBC images resized to 512x512.
finetune_scale = dict(
    Aachen=dict(epochs=50),
    **{f'EBC-{i}': dict(patch_size=512, resize=512) for i in (1, 2, 3)},
)


def _row(table, finetune, method, pretrain, published):
    return dict(table=table, finetune=finetune, method=method, pretrain=pretrain,
                published=published)


rows = [
    _row('table4', 'MetalDAM', 'SupervisedImageNet', None, 66.73),
    _row('table4', 'MetalDAM', 'DenseCL', 'Aachen+UHCS', 68.76),
    _row('table4', 'MetalDAM', 'MoCoV2', 'Aachen+UHCS', 67.18),
    _row('table4', 'MetalDAM', 'MatSSL', 'Aachen+UHCS', 69.95),
    _row('table4', 'MetalDAM', 'DenseCL', 'Aachen+UHCS+MetalDAM', 68.34),
    _row('table4', 'MetalDAM', 'MoCoV2', 'Aachen+UHCS+MetalDAM', 68.40),
    _row('table4', 'MetalDAM', 'MatSSL', 'Aachen+UHCS+MetalDAM', 69.02),
    _row('table4', 'Aachen', 'SupervisedImageNet', None, 65.59),
    _row('table4', 'Aachen', 'DenseCL', 'UHCS+MetalDAM', 65.82),
    _row('table4', 'Aachen', 'MoCoV2', 'UHCS+MetalDAM', 65.90),
    _row('table4', 'Aachen', 'MatSSL', 'UHCS+MetalDAM', 65.98),
    _row('table4', 'Aachen', 'DenseCL', 'Aachen+UHCS+MetalDAM', 65.56),
    _row('table4', 'Aachen', 'MoCoV2', 'Aachen+UHCS+MetalDAM', 65.65),
    _row('table4', 'Aachen', 'MatSSL', 'Aachen+UHCS+MetalDAM', 65.86),
    _row('table5', 'EBC-1', 'MatSSL', 'Aachen+UHCS+MetalDAM', 96.79),
    _row('table5', 'EBC-2', 'MatSSL', 'Aachen+UHCS+MetalDAM', 94.70),
    _row('table5', 'EBC-3', 'MatSSL', 'Aachen+UHCS+MetalDAM', 84.53),
]
# Table 5's other columns come from other papers: shown as quoted reference values only.
quoted = [
    dict(table='table5', finetune=f'EBC-{i}', model=model, encoder=encoder, mIoU=value,
         source='quoted in MatSSL Table 5 (Stuckner et al. 2022 and follow-up work)')
    for i, values in ((1, (95.17, 93.01, 95.98)), (2, (84.6, 84.3, 86.73)), (3, (42.58, 56.72, 45.69)))
    for (model, encoder), value in zip((('UNet++', 'MicroNet'), ('Transformer', 'MicroLite'),
                                        ('CS-UNet', 'MicroNet+MicroLite')), values)
]
notes = ('The paper\'s Table 3 gives EBC-3 one training image; the public benchmark has 15, '
         'which this suite uses.')
# GPU settings (docs/gpu.md): bf16 autocast where the GPU has it natively ('auto'; records
# say what ran), channels-last, SSL views made on the GPU from uint8 batches.
scale = dict(
    pretrain=dict(epochs=50, batch_size=128, patch_size=256, crop_size=224, overlap=0.0,
                  num_workers=8, precision='auto', channels_last=True, views='device'),
    finetune=dict(epochs=200, batch_size=128, patch_size=256, lr=1e-4, weight_decay=1e-5,
                  eval_batch_size=32, channels_last=True, num_workers=8, precision='auto'),
)
