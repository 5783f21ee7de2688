"""Mixed precision for mmselfsup algorithms: networks under autocast, the loss in float32.

Under ``torch.autocast`` every matmul of an algorithm's ``loss`` would run in
bf16/fp16, the similarity logits and cross-correlations included (8 bits of
mantissa in bf16: a cosine/0.1 logit is off by up to ~0.04). Here the loss runs
with autocast off, while the backbone and the MLPs (necks, predictors, and their
momentum copies) re-enter the autocast that was active when the loss started
and hand back float32 outputs. Without an active autocast nothing changes.

mmselfsup computes those parts inside each algorithm's ``loss``; rather than
copying that code, the instances are given subclasses of their own classes
(same state-dict keys, same code, plus the switch above).
"""
from __future__ import annotations

import contextvars
import functools
from typing import Any, Optional

import torch
from torch import nn

# (device type, dtype) of the autocast active when an algorithm's loss started, or None.
_AMBIENT_AUTOCAST: contextvars.ContextVar[Optional[tuple[str, torch.dtype]]] = \
    contextvars.ContextVar('ambient_autocast', default=None)


def _float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_float32(v) for v in value)
    return value


class NetworkUnderAutocast:
    """Mixin of a backbone or MLP: forward under the ambient autocast, float32 outputs."""

    def forward(self, *args, **kwargs):
        ambient = _AMBIENT_AUTOCAST.get()
        if ambient is None:
            return super().forward(*args, **kwargs)
        device_type, dtype = ambient
        with torch.autocast(device_type, dtype=dtype):
            out = super().forward(*args, **kwargs)
        return _float32(out)


class LossInFloat32:
    """Mixin of an algorithm: ``loss`` with autocast off around everything but the networks."""

    def loss(self, inputs, data_samples, **kwargs):
        device_type = inputs[0].device.type
        if not torch.is_autocast_enabled(device_type):
            return super().loss(inputs, data_samples, **kwargs)
        token = _AMBIENT_AUTOCAST.set((device_type, torch.get_autocast_dtype(device_type)))
        try:
            with torch.autocast(device_type, enabled=False):
                return super().loss(inputs, data_samples, **kwargs)
        finally:
            _AMBIENT_AUTOCAST.reset(token)


@functools.lru_cache(maxsize=None)
def _with_mixin(cls: type, mixin: type) -> type:
    if issubclass(cls, mixin):
        return cls
    return type(cls.__name__, (mixin, cls), {'__module__': cls.__module__,
                                             '__qualname__': cls.__qualname__})


def compute_loss_in_float32(model: nn.Module) -> nn.Module:
    """Switch ``model`` (an mmselfsup algorithm) in place: see the module docstring.

    The networks are its backbone and every module of its neck's class (the
    neck, a predictor MLP of the same class, the momentum copies).
    """
    network_types = (type(model.backbone), type(model.neck))
    for module in model.modules():
        if type(module) in network_types:
            module.__class__ = _with_mixin(type(module), NetworkUnderAutocast)
    model.__class__ = _with_mixin(type(model), LossInFloat32)
    return model
