"""Random initialisation: the encoder fine-tuning starts from when nothing is pretrained."""
from matssl_bench.method_api import PretrainingMethod
from matssl_bench.registry import METHODS


@METHODS.register_module()
class RandomInit(PretrainingMethod):
    """Randomly initialised encoder (seeded by the run), the lower bound."""

    source = 'torchvision ResNet init'
    label = 'random init'

    def __init__(self, **hparams):
        super().__init__(init='random', **hparams)
