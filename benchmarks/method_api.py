"""The plugin interface of a pretraining method.

A method answers one question: given a pretraining set, produce a ResNet
encoder state dict with torchvision key names. Methods with a self-supervised
stage subclass :class:`SSLMethod` and provide a model, its view augmentation,
optimiser and the export of the encoder; the pipeline trains it with
mmengine's Runner. Methods without one (ImageNet, random init) subclass
:class:`PretrainingMethod` and implement :meth:`encoder_state`.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional

import torch
from mmengine.model import BaseModel

from matssl_bench.models.encoders import (build_resnet, encoder_state_of,
                                          load_encoder_state, read_state_dict, stage_channels)
from matssl_bench.models.foreign_checkpoints import convert_state
from matssl_bench.models.losses import nt_xent
from matssl_bench.models.mmselfsup_bridge import (build_mmselfsup_model,
                                                  momentum_contrast_cfg)
from matssl_bench.data.ssl_views import simclr_batch_views, simclr_view_transform
from matssl_bench.errors import MissingResourceError
from matssl_bench.models.weights import (IMAGENET_VARIANTS, file_sha256, find_init_weights,
                                         init_label, load_imagenet_encoder,
                                         load_micronet_encoder)

EncoderState = dict[str, torch.Tensor]

# What a method plugin may import from here.
__all__ = ['PretrainingMethod', 'SSLMethod', 'EncoderState', 'INITS', 'build_resnet',
           'load_encoder_state', 'stage_channels', 'nt_xent', 'build_mmselfsup_model',
           'momentum_contrast_cfg', 'read_state_dict', 'convert_state', 'file_sha256']
INITS = ('imagenet', 'micronet', 'random')


class PretrainingMethod:
    """Base of every method plugin. ``init`` names the encoder a method starts from.

    ``imagenet``: torchvision's supervised weights; ``micronet``: NASA's MicroNet
    weights (hparam ``micronet_variant``: ``micronet`` or ``image-micronet``);
    ``random``: none. Weight files are read from ``weights_path``, else looked
    up by their published names in the hparam ``weights_dir``,
    ``$MATSSL_WEIGHTS`` and the torch cache (see ``weights.py``). The hparam
    ``imagenet_weights`` picks torchvision's variant: ``V1`` (default), ``V2`` or
    ``legacy``; no other variant is ever substituted.
    """

    needs_pretraining = False
    #: Label shown in tables (defaults to the registered name).
    label: Optional[str] = None
    #: Where the implementation comes from and the config its settings follow (``--list``).
    source: str = ''
    reference_config: str = ''
    #: Whether a suite row's method pattern (``'*'``) includes it; False: only rows or
    #: ``--methods`` naming it do (the comparison methods beyond the paper's set).
    in_wildcards: bool = True
    #: Settings a suite's ``method_cfg`` may give beside the constructor's named arguments
    #: and ``defaults``: the base class reads these from ``hparams``.
    extra_settings: tuple = ('weights_dir', 'imagenet_weights', 'micronet_variant')
    #: True for a plugin that takes settings it does not declare (no key is checked).
    free_form_settings = False

    def __init__(self, init: str = 'imagenet', weights_path: Optional[str] = None, **hparams: Any):
        if init not in INITS:
            raise ValueError(f'{type(self).__name__}: init must be one of {INITS}, got {init!r}')
        variant = hparams.get('imagenet_weights', 'V1')
        if variant not in IMAGENET_VARIANTS:
            raise ValueError(f'{type(self).__name__}: imagenet_weights must be one of '
                             f'{", ".join(IMAGENET_VARIANTS)}, got {variant!r}')
        self.init = init
        self.weights_path = weights_path
        self.hparams = hparams

    @classmethod
    def declared_settings(cls) -> Optional[set]:
        """Keys a suite's ``method_cfg.<Method>`` may set, or None when the plugin declares
        ``free_form_settings``: the named arguments of every ``__init__`` up the class
        chain, the keys of ``defaults`` and every class's ``extra_settings``."""
        if cls.free_form_settings:
            return None
        names = set(getattr(cls, 'defaults', {}))
        for klass in cls.__mro__:
            if not issubclass(klass, PretrainingMethod):
                continue
            names.update(vars(klass).get('extra_settings', ()))
            init = vars(klass).get('__init__')
            if init is not None:
                params = list(inspect.signature(init).parameters.values())[1:]
                names.update(p.name for p in params
                             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        return names

    @property
    def name(self) -> str:
        return self.label or type(self).__name__

    def config(self) -> dict:
        """Everything that changes this method's output; part of every cache key."""
        return dict(type=type(self).__name__, init=self.init, weights_path=self.weights_path,
                    **self.hparams)

    def initial_encoder_state(self, arch: str) -> Optional[EncoderState]:
        """The encoder the method starts from: published weights, or None for random init."""
        folder = self.hparams.get('weights_dir')
        if self.init == 'imagenet':
            return load_imagenet_encoder(arch, self.weights_path, folder,
                                         self.hparams.get('imagenet_weights', 'V1'))
        if self.init == 'micronet':
            return load_micronet_encoder(arch, self.hparams.get('micronet_variant', 'micronet'),
                                         self.weights_path, folder)
        return None

    def weight_file(self, arch: str) -> Optional[Path]:
        """The weight file the method starts from (None for random init); raises if missing."""
        return find_init_weights(self.init, arch, self.weights_path, self.hparams.get('weights_dir'),
                                 self.hparams.get('imagenet_weights', 'V1'),
                                 self.hparams.get('micronet_variant', 'micronet'))

    def weights_sha256(self, arch: str) -> dict[str, str]:
        """{file name: sha256} of the weight files a run starts from, for records and cache
        keys; empty for random init or while the file is missing (the run then stops on it)."""
        try:
            path = self.weight_file(arch)
        except MissingResourceError:
            return {}
        return {} if path is None else {path.name: file_sha256(path)}

    def init_label(self, arch: str) -> str:
        """``imagenet-v1``, ``image-micronet``, ``random``...: the tables' ``SSL init``."""
        return init_label(self.init, self.weights_path, self.hparams.get('imagenet_weights', 'V1'),
                          self.hparams.get('micronet_variant', 'micronet'))

    def encoder_state(self, arch: str) -> Optional[EncoderState]:
        """For methods without pretraining: the encoder handed to fine-tuning."""
        return self.initial_encoder_state(arch)


class SSLMethod(PretrainingMethod):
    """A method with a self-supervised stage trained by mmengine's Runner.

    Default hyperparameters (``defaults``) are merged with the config's, so a
    suite changes settings without touching code.
    """

    needs_pretraining = True
    extra_settings = ('schedule_per_epoch',)  # True: the cosine schedule steps per epoch
    defaults: dict = dict(
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-6),
        min_lr=1e-4,
        augmentation=dict(),
    )

    def __init__(self, init: str = 'imagenet', weights_path: Optional[str] = None, **hparams: Any):
        merged = {**self.defaults, **hparams}
        super().__init__(init=init, weights_path=weights_path, **merged)

    def build_model(self, arch: str, initial_state: Optional[EncoderState]) -> BaseModel:
        raise NotImplementedError

    def view_transform(self, crop_size: int):
        """One patch's view (uint8 3 x H x W -> normalised float), made in a loader worker."""
        return simclr_view_transform(crop_size, **self.hparams.get('augmentation', {}))

    def batch_views(self, crop_size: int):
        """The same views of a whole batch on the training device (N x 3 x H x W floats in
        [0, 1] -> normalised views; pretraining scale ``views='device'``)."""
        return simclr_batch_views(crop_size, **self.hparams.get('augmentation', {}))

    def optim_wrapper(self, batch_size: int) -> dict:
        return dict(type='OptimWrapper', optimizer=dict(self.hparams['optimizer']))

    def custom_hooks(self, batch_size: int) -> list:
        """mmengine hook configs the SSL stage needs (``batch_size``: per process)."""
        return []

    def param_scheduler(self, epochs: int) -> list:
        # stepped per iteration; ``schedule_per_epoch=True`` steps per epoch (the authors' code)
        return [dict(type='CosineAnnealingLR', T_max=epochs, eta_min=self.hparams['min_lr'],
                     by_epoch=True, begin=0, end=epochs,
                     convert_to_iter_based=not self.hparams.get('schedule_per_epoch', False))]

    def export_encoder(self, model: BaseModel) -> EncoderState:
        """The trained ResNet's tensors with torchvision names; default: ``model.backbone``."""
        return encoder_state_of(model.backbone)
