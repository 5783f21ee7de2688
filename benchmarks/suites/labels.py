# Label efficiency at paper scale (GPU): how many images must be annotated? Every method is
# fine-tuned on 1, 2, 4, 8, 16 and all MetalDAM training images and on 1, 2, 4, 8 and all
# of EBC-1's, 5 seeded draws per n, the same draws for every method.
# Rough estimate, not a measurement: the 3 SSL pretraining jobs (~2-3 GPU-hours each) plus
# about 6 full fine-tuning runs' worth of images per set and method: 10-15 GPU-hours.
_base_ = './_variants_common.py'
description = ('label efficiency (GPU): mIoU vs 1..all labelled MetalDAM / EBC-1 images, '
               '5 shared draws per n')
_methods = ('MatSSL', 'MoCoV2', 'DenseCL', 'SupervisedImageNet', 'RandomInit')
_sizes = {'MetalDAM': [1, 2, 4, 8, 16, 'all'], 'EBC-1': [1, 2, 4, 8, 'all']}
rows = [dict(finetune=s, method=m, pretrain='Aachen+UHCS+MetalDAM',
             label_efficiency=dict(n_labelled=n, draws=5))
        for s, n in _sizes.items() for m in _methods]
