"""Supervised ImageNet weights (torchvision), read from the torch cache or a given path."""
from matssl_bench.method_api import PretrainingMethod
from matssl_bench.registry import METHODS


@METHODS.register_module()
class SupervisedImageNet(PretrainingMethod):
    """Supervised ImageNet encoder from torchvision's published weights (no SSL stage)."""

    label = 'supervised ImageNet'

    def __init__(self, weights_path=None, **hparams):
        super().__init__(init='imagenet', weights_path=weights_path, **hparams)
