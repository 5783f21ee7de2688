# Transfer across data sets at paper scale (GPU): does a model fine-tuned on one coating
# hold up on another? Each method fine-tuned on EBC-1, EBC-2 and EBC-3 (binary, same
# classes) is scored on the test split of the other two: a source x target mIoU matrix and
# the relative domain transferability (RDT) per method. MetalDAM's classes differ: it is a
# fine-tuning set here only so the pretraining jobs match the other variant suites'.
# Rough estimate, not a measurement: 3 SSL pretraining jobs (~2-3 GPU-hours each) plus 15 EBC
# fine-tuning runs of minutes each: 8-10 GPU-hours (about 1 without the pretraining).
_base_ = './_variants_common.py'
description = 'transfer (GPU): fine-tuned on one EBC subset, tested on the others (RDT heatmaps)'
_methods = ('MatSSL', 'MoCoV2', 'DenseCL', 'SupervisedImageNet', 'RandomInit')
transfer = True
rows = [dict(finetune=f'EBC-{i}', method=m, pretrain='Aachen+UHCS+MetalDAM')
        for i in (1, 2, 3) for m in _methods]
