# CPU suite: the paper's methods and protocol on the real MetalDAM and EBC micrographs,
# at a scale a 2-core machine finishes in under an hour (results/cpu/README.md: measured).
# Data: MATSSL_DATA, else ../shared/data.
description = ('real MetalDAM + EBC at CPU scale: ResNet-18, 32 px patches of 1/8-size images, '
               '5 seeds, each with its own SSL run')
protocol = 'clean'
# Each fine-tuning seed fine-tunes from its own SSL run (no pretrain_seeds: seed s pretrains
# with seed s), so the intervals cover the spread between pretraining runs as well as
# fine-tuning seeds and test images (3 is the statistics' minimum: docs/statistics.md).
seeds = [0, 1, 2, 3, 4]
backbone = 'resnet18'
# No ImageNet weights on CPU machines here: SSL methods start from random init (the table
# says so in its 'SSL init' column; the supervised ImageNet row names the missing file).
ssl_init = 'random'
_env_root = '{{$MATSSL_DATA:-}}'
data_root = '{{ fileDirname }}/../../../shared/data' if _env_root == '-' else _env_root
method_cfg = dict(
    MatSSL=dict(hidden_dim=512),
    MoCoV2=dict(queue_len=4096, hidden_dim=512),
    DenseCL=dict(queue_len=4096, hidden_dim=512),
)
_metaldam = dict(type='MetalDAM', root=data_root + '/MetalDAM')
# SSL on the real unlabeled MetalDAM micrographs (test images excluded), non-overlapping patches.
pretrain_sets = {'MetalDAM': [dict(_metaldam, overlap=0.0)]}
finetune_sets = dict(
    MetalDAM=_metaldam,
    **{f'EBC-{i}': dict(type='EBC', root=data_root + '/EBC', subset=f'EBC{i}', binary=True)
       for i in (1, 2, 3)},
)
rows = ([dict(table='table4', finetune='MetalDAM', method='*', pretrain='MetalDAM')]
        + [dict(table='table5', finetune=f'EBC-{i}', method='*', pretrain='MetalDAM')
           for i in (1, 2, 3)])
# SSL runs under bf16 autocast where the CPU has native bf16 ('auto'; each result records the
# precision used); fine-tuning stays float32 (bf16 fine-tuning is not accepted yet:
# results/perf/README.md). Validation every 2 epochs and the test on whole images with the
# default half-overlapping windows (side-by-side windows score 0.5-8 mIoU points lower:
# results/perf/README.md). EBC-2 has 4 training images: 8 epochs give it 16 steps.
scale = dict(
    pretrain=dict(epochs=5, batch_size=64, patch_size=32, crop_size=32, rescale=0.125,
                  num_workers=0, precision='auto'),
    finetune=dict(epochs=6, batch_size=32, patch_size=32, rescale=0.125, lr=1e-3,
                  weight_decay=1e-5, decoder_channels=(128, 64, 32, 16, 16),
                  eval_batch_size=64, val_interval=2, num_workers=0),
)
finetune_scale = {'EBC-2': dict(epochs=8)}
