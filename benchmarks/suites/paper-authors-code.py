# The paper suite as the authors' public code runs it, where that code differs from the
# paper's text (README: "Paper vs authors' code vs suite"). Everything else is paper.py's.
_base_ = ['./paper.py']
description = ('Tables 4-5 with the authors\' code settings: SSL 100 epochs at batch 32, cosine '
               'to 0 per epoch, resize before crop; fine-tuning without weight decay, Aachen lr 1e-3')
recipe = 'authors-code'
_authors_ssl = dict(min_lr=0.0, schedule_per_epoch=True, augmentation=dict(resize=224))
method_cfg = dict(MatSSL=_authors_ssl, MoCoV2=_authors_ssl, DenseCL=_authors_ssl)
finetune_scale = dict(Aachen=dict(lr=1e-3))
scale = dict(
    pretrain=dict(epochs=100, batch_size=32),
    finetune=dict(weight_decay=0.0),
)
