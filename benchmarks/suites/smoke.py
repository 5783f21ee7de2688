# Smoke suite: every registered method through pretrain -> fine-tune -> evaluate on the
# embedded synthetic micrographs, at a scale a 2-core laptop finishes in minutes.
description = 'every registered method on embedded synthetic micrographs (tiny scale)'
table = 'table4'
protocol = 'clean'
seeds = [0]
backbone = 'resnet18'
# SSL methods start from this encoder (the paper: 'imagenet'; no weights are needed for 'random').
ssl_init = 'random'
# Per-method settings on top of each plugin's defaults.
method_cfg = dict(
    MatSSL=dict(hidden_dim=256),
    MoCoV2=dict(queue_len=1024, hidden_dim=256),
    DenseCL=dict(queue_len=1024, hidden_dim=256),
)
pretrain_sets = dict(synthetic=[dict(type='SyntheticMicrographs', unlabeled=48)])
finetune_sets = dict(synthetic=dict(type='SyntheticMicrographs', train=12, val=4, test=4))
# '*' expands to every registered method; methods without an SSL stage skip the pretraining set.
rows = [dict(finetune='synthetic', method='*', pretrain='synthetic')]
# SSL under bf16 autocast where the device has native bf16 ('auto'), else float32.
scale = dict(
    pretrain=dict(epochs=2, batch_size=32, patch_size=64, crop_size=64, overlap=0.5,
                  num_workers=0, precision='auto'),
    finetune=dict(epochs=4, batch_size=8, patch_size=64, lr=1e-3, weight_decay=1e-5,
                  decoder_channels=(64, 32, 16, 16, 8), channels_last=True, num_workers=0),
)
