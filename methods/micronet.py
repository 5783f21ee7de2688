"""MicroNet: NASA's ResNet weights pretrained on >100,000 microscopy images (no SSL stage).

Files as published by pretrained-microscopy-models, e.g.
``resnet50_pretrained_microscopynet_v1.1.pth.tar`` (``variant='micronet'``) or
``resnet50_pretrained_imagenet-microscopynet_v1.0.pth.tar`` (``'image-micronet'``),
read from ``weights_path`` or found in ``weights_dir``, ``$MATSSL_WEIGHTS`` or
``$TORCH_HOME/hub/checkpoints``. No sha256 is pinned for these files yet (NASA
publishes none): a file is checked only if ``weights.PINNED_SHA256`` names it, and its
sha256 is recorded either way.
"""
from matssl_bench.method_api import PretrainingMethod
from matssl_bench.registry import METHODS


@METHODS.register_module()
class MicroNet(PretrainingMethod):
    """MicroNet encoder (NASA pretrained-microscopy-models), fine-tuned as is."""

    source = 'NASA pretrained-microscopy-models weights'

    label = 'MicroNet'

    def __init__(self, variant: str = 'micronet', weights_path=None, weights_dir=None, **hparams):
        super().__init__(init='micronet', weights_path=weights_path, micronet_variant=variant,
                         weights_dir=weights_dir, **hparams)
