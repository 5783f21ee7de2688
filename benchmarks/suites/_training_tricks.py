# The training tricks compared by the tricks suites (after "Training tricks for steel
# microstructure segmentation"): each alone, then all stacked. One list, read by tricks.py and
# protocols-smoke.py as `_base_._tricks`; the settings are fine-tuning scale keys
# (docs/variants.md). Files starting with '_' are not suites.
_tricks = [
    ('baseline', {}),
    ('augment strong', dict(augment='strong')),
    ('balanced crops', dict(balanced_crops=True)),
    ('downscale 0.5', dict(downscale=0.5)),
    ('TTA flips+multiscale', dict(tta='flips+multiscale')),
    ('encoder lr x0.1', dict(encoder_lr_mult=0.1)),
    ('stacked', dict(augment='strong', balanced_crops=True, downscale=0.5,
                     tta='flips+multiscale', encoder_lr_mult=0.1)),
]
