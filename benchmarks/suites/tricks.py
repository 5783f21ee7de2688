# Training tricks at paper scale (GPU), after "Training tricks for steel microstructure
# segmentation": does a trick matter more than the pretraining? Each trick alone, then all
# stacked, per method, on MetalDAM: augmentation (flips + 90-degree rotations + photometric
# jitter + random scale + elastic deformation), class-balanced random crops (no class above
# 75 % of a crop), input downscaling by 0.5 (larger receptive field), test-time
# augmentation (flips and scales 0.75/1/1.25), encoder learning rate x0.1.
# Rough estimate, not a measurement: 3 SSL pretraining jobs (~2-3 GPU-hours each) plus 7 x 5
# MetalDAM fine-tuning runs (minutes each; downscaled runs are ~4x cheaper): 9-12 GPU-hours.
_base_ = ['./_variants_common.py', './_training_tricks.py']
description = ('training tricks (GPU): augmentation, balanced crops, downscaling, TTA, '
               'encoder lr, one at a time then stacked, MetalDAM')
_methods = ('MatSSL', 'MoCoV2', 'DenseCL', 'SupervisedImageNet', 'RandomInit')
rows = [dict(finetune='MetalDAM', method=m, pretrain='Aachen+UHCS+MetalDAM', trick=name,
             scale=settings) for m in _methods for name, settings in _base_._tricks]
# carbide-style quantification of MetalDAM's precipitate and defect regions
morphology = dict(MetalDAM=['precipitate', 'defect'])
