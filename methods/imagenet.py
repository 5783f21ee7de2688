"""Supervised ImageNet weights (torchvision), read from the torch cache or a given path.

``imagenet_weights='V1'`` (default), ``'V2'`` or ``'legacy'`` picks torchvision's file
(``resnet50-0676ba61.pth``, ``resnet50-11ad3fa6.pth``, ``resnet50-19c8e357.pth``); each is
checked against the hash in its name, and no variant ever stands in for another.
"""
from matssl_bench.method_api import PretrainingMethod
from matssl_bench.registry import METHODS


@METHODS.register_module()
class SupervisedImageNet(PretrainingMethod):
    """Supervised ImageNet encoder from torchvision's published weights (no SSL stage)."""

    source = 'torchvision ImageNet weights'

    label = 'supervised ImageNet'

    def __init__(self, weights_path=None, **hparams):
        super().__init__(init='imagenet', weights_path=weights_path, **hparams)
