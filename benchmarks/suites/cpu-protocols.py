# CPU variants suite (its name, cpu-protocols, is kept for existing work dirs and results):
# the questions beyond Tables 4-5 on the real MetalDAM and EBC
# micrographs, at the CPU suite's scale (results/cpu-protocols/README.md: measured).
# - label efficiency on MetalDAM: 1, 2, 4, 8 and all training images, 5 draws per n (the same
#   draws for every method); smaller subsets train for more epochs, so every n gets a
#   comparable number of steps;
# - transfer: fine-tuned on EBC-1, EBC-2 or EBC-3, tested on all three (RDT matrix);
# - frozen encoder: full fine-tuning vs a frozen encoder (batch-norm statistics included) with
#   a trained decoder, on MetalDAM.
# MatSSL against random init only: a 2-core hour holds one SSL method's variants.
_base_ = './cpu.py'
description = ('real MetalDAM + EBC at CPU scale: label efficiency, EBC transfer matrix, '
               'frozen encoder; MatSSL vs random init')
seeds = [0, 1, 2]
_methods = ('MatSSL', 'RandomInit')
# n -> fine-tuning epochs (all 28 images: the suite's 6)
_label_epochs = {1: 24, 2: 16, 4: 12, 8: 8}
rows = (
    [dict(table='labels', finetune='MetalDAM', method=m, pretrain='MetalDAM', seeds=[0],
          label_efficiency=dict(n_labelled=[n], draws=5),
          scale=dict(epochs=epochs, val_interval=epochs // 4))
     for m in _methods for n, epochs in _label_epochs.items()]
    # all labels: the label curve's last point and the frozen table's full fine-tuning
    + [dict(table='table4', finetune='MetalDAM', method=m, pretrain='MetalDAM')
       for m in _methods]
    + [dict(table='frozen', finetune='MetalDAM', method=m, pretrain='MetalDAM',
            scale=dict(encoder_mode='frozen-decoder')) for m in _methods]
    + [dict(table='table5', finetune=f'EBC-{i}', method=m, pretrain='MetalDAM', transfer=True)
       for i in (1, 2, 3) for m in _methods]
)
