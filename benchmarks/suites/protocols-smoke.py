# Variants smoke suite (its name, protocols-smoke, is kept for existing work dirs): label
# efficiency, frozen encoder + linear probe, transfer between two synthetic "materials" with
# the same classes, training tricks and morphology, on embedded synthetic micrographs at a
# scale 2 CPU cores finish in minutes.
_base_ = './_training_tricks.py'
description = ('every variant beyond Tables 4-5 (labels, frozen, transfer, tricks, '
               'morphology) on two synthetic materials (tiny scale)')
protocol = 'clean'
seeds = [0]
backbone = 'resnet18'
ssl_init = 'random'
method_cfg = dict(MatSSL=dict(hidden_dim=128, out_dim=64))
_synthetic = dict(type='SyntheticMicrographs', size=64, train=4, val=2, test=2, unlabeled=12)
pretrain_sets = dict(synthetic=[_synthetic, dict(_synthetic, material='B')])
finetune_sets = {'synthetic-A': _synthetic, 'synthetic-B': dict(_synthetic, material='B')}
# connected regions of these classes, counted in prediction and truth (per_class_morphology)
morphology = {'synthetic-A': ['pore', 'second phase']}
_methods = ('MatSSL', 'RandomInit')
rows = (
    # full fine-tuning on each material, scored on the other one too (transfer.csv); on A
    # also with 1 and 2 labelled images, 2 draws each (label_efficiency.csv; 'all' is the
    # plain run)
    [dict(finetune='synthetic-A', method=m, pretrain='synthetic', transfer=True,
          label_efficiency=dict(n_labelled=[1, 2, 'all'], draws=2)) for m in _methods]
    + [dict(finetune='synthetic-B', method=m, pretrain='synthetic', transfer=True)
       for m in _methods]
    # frozen encoder + decoder, and the linear probe (frozen.csv, beside the full runs)
    + [dict(finetune='synthetic-A', method=m, pretrain='synthetic', scale=dict(encoder_mode=mode))
       for m in _methods for mode in ('frozen-decoder', 'linear-probe')]
    # training tricks one at a time, then stacked (tricks.csv)
    + [dict(finetune='synthetic-A', method=m, pretrain='synthetic', trick=name, scale=settings)
       for m in _methods for name, settings in _base_._tricks]
)
scale = dict(
    pretrain=dict(epochs=1, batch_size=16, patch_size=32, crop_size=32, overlap=0.0,
                  num_workers=0, precision='auto'),
    finetune=dict(epochs=1, batch_size=8, patch_size=32, lr=1e-3, weight_decay=1e-5,
                  decoder_channels=(16, 16, 8, 8, 8), num_workers=0),
)
