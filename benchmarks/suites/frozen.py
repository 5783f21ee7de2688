# Frozen encoder at paper scale (GPU): is the representation better, or only the starting
# point? Per method and set: full fine-tuning, a frozen encoder (batch-norm statistics
# included) with a trained U-Net++ decoder, and a per-pixel linear probe on the frozen
# multi-scale features (50 epochs: it converges fast and is meant to be cheap).
# Rough estimate, not a measurement: 3 SSL pretraining jobs (~2-3 GPU-hours each) plus 3 x 5
# fine-tuning runs per set (frozen runs are ~40 % cheaper: no encoder backward): 10-14 GPU-hours.
_base_ = './_variants_common.py'
description = ('frozen encoder (GPU): full fine-tuning vs frozen encoder + decoder vs '
               'linear probe, MetalDAM and EBC')
_methods = ('MatSSL', 'MoCoV2', 'DenseCL', 'SupervisedImageNet', 'RandomInit')
_modes = [dict(), dict(encoder_mode='frozen-decoder'),
          dict(encoder_mode='linear-probe', epochs=50, lr=1e-3)]
rows = [dict(finetune=s, method=m, pretrain='Aachen+UHCS+MetalDAM', scale=mode)
        for s in ('MetalDAM', 'EBC-1', 'EBC-2', 'EBC-3') for m in _methods for mode in _modes]
