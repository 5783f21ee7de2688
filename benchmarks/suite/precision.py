"""Numeric precision of a training stage: fp32, or autocast mixed precision (bf16, fp16).

A suite's ``scale`` chooses it per stage with ``precision``:

- ``'fp32'`` (default): plain float32, as in the paper.
- ``'bf16'``: ``torch.autocast`` to bfloat16 on whatever device the model is on
  (CPU or GPU); no loss scaling is needed. Fast where the hardware has native
  bf16 (AVX512-BF16/AMX CPUs, Ampere and later GPUs), slow elsewhere.
- ``'fp16'``: mmengine's ``AmpOptimWrapper`` (float16 with dynamic loss
  scaling); GPUs only.
- ``'auto'``: ``'bf16'`` where the device has native bf16, else ``'fp32'``; fine-tuning
  on a CPU stays ``'fp32'`` (bf16 fine-tuning on CPUs is not accepted yet:
  results/perf/README.md).
  The precision actually used is recorded with every result.

A stage's evaluation (validation, test, transfer, morphology) runs its forward passes at the
stage's resolved precision too. :func:`run_settings` gives every resolved value a job's
result depends on beyond its config (precision, ``deterministic``, world size), for records
and job keys.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch
from mmengine.device import get_device
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry
from torch import nn

from matssl_bench.registry import SCOPE

PRECISIONS = ('fp32', 'bf16', 'fp16', 'auto')

OPTIM_WRAPPERS = Registry('optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope=SCOPE,
                          locations=['matssl_bench.suite.precision'])


def native_bf16(device_type: str) -> bool:
    """Whether ``device_type`` computes bf16 natively (not by emulation)."""
    if device_type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device_type == 'cpu':
        checks = ('_is_avx512_bf16_supported', '_is_amx_tile_supported')
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def check_precision(requested: Optional[str], where: str = 'scale') -> str:
    """``requested`` (None means fp32) if it names a precision, else a ValueError naming ``where``."""
    requested = requested or 'fp32'
    if requested not in PRECISIONS:
        raise ValueError(f'{where}: precision must be one of {PRECISIONS}, got {requested!r}')
    return requested


def resolve_precision(requested: Optional[str], device_type: Optional[str] = None,
                      stage: str = 'pretrain') -> str:
    """The precision ``stage`` ('pretrain' or 'finetune') runs with on ``device_type``
    (default: mmengine's device)."""
    requested = check_precision(requested)
    device_type = device_type or get_device()
    if requested == 'auto':
        if stage == 'finetune' and device_type == 'cpu':
            return 'fp32'
        return 'bf16' if native_bf16(device_type) else 'fp32'
    if requested == 'fp16' and device_type == 'cpu':
        raise ValueError("precision 'fp16' needs a GPU (loss-scaled float16); "
                         "use 'bf16' or 'fp32' on a CPU")
    return requested


def run_settings(stage: str, scale: dict, deterministic: bool = True,
                 world_size: Optional[int] = None, device_type: Optional[str] = None) -> dict:
    """The resolved settings a ``stage`` job's numbers depend on beyond its config, as
    records keep them: ``precision`` (resolved on this device), ``deterministic`` (the
    suite's setting) and ``world_size`` (processes; default: the current run's)."""
    from mmengine.dist import get_world_size

    return dict(precision=resolve_precision(scale.get('precision'), device_type, stage),
                deterministic=bool(deterministic),
                world_size=int(world_size if world_size is not None else get_world_size()))


def with_precision(optim_wrapper: dict, precision: str, owner: str = 'the stage') -> dict:
    """``optim_wrapper`` (an mmengine config) turned into one training at ``precision``.

    ``precision`` is a resolved one (see :func:`resolve_precision`). Only the
    plain ``OptimWrapper`` can be converted; a plugin with its own wrapper type
    must handle precision itself.
    """
    if precision == 'fp32':
        return optim_wrapper
    kind = optim_wrapper.get('type', 'OptimWrapper')
    if kind != 'OptimWrapper':
        raise ValueError(f'{owner} uses optim wrapper {kind!r}, which cannot be combined with '
                         f"precision {precision!r}; use precision 'fp32'")
    if precision == 'bf16':
        return dict(optim_wrapper, type='AutocastOptimWrapper', dtype='bfloat16')
    return dict(optim_wrapper, type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """An OptimWrapper whose forward passes run under ``torch.autocast`` on the model's device.

    Unlike mmengine's AmpOptimWrapper it works on CPUs too; it does not scale
    the loss, so it is meant for bfloat16.
    """

    def __init__(self, *args, dtype: str = 'bfloat16', **kwargs):
        super().__init__(*args, **kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module):
        device_type = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(device_type, dtype=self.cast_dtype):
            yield
