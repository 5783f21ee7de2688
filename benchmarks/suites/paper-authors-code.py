# The paper suite as the authors' public code runs it, where that code differs from the
# paper's text (README: "Paper vs authors' code vs suite"). Everything else is paper.py's.
_base_ = ['./paper.py']
description = ('Tables 4-5 with the authors\' code settings: SSL 100 epochs at batch 32, cosine '
               'to 0 per epoch, resize before crop; fine-tuning without weight decay, Aachen lr 1e-3')
recipe = 'authors-code'
# The authors' code builds its encoders through segmentation_models_pytorch, which loaded
# torchvision's pre-0.13 ("legacy") ImageNet file resnet50-19c8e357.pth, so every
# encoder here starts from that file (paper.py uses the V1 file resnet50-0676ba61.pth).
_authors_ssl = dict(min_lr=0.0, schedule_per_epoch=True, augmentation=dict(resize=224),
                    imagenet_weights='legacy')
method_cfg = dict(MatSSL=_authors_ssl, MoCoV2=_authors_ssl, DenseCL=_authors_ssl,
                  SupervisedImageNet=dict(imagenet_weights='legacy'))
finetune_scale = dict(Aachen=dict(lr=1e-3))
scale = dict(
    pretrain=dict(epochs=100, batch_size=32),
    finetune=dict(weight_decay=0.0),
)
