"""Deterministic training on CUDA: the suite's ``deterministic`` setting, and the ops torch
documents as non-deterministic on CUDA (they raise under
``torch.use_deterministic_algorithms(True)``), listed so that a CPU run can check a
training step for them.

:data:`NONDETERMINISTIC_CUDA_OPS` mirrors the list "will throw a RuntimeError when
mode=True" of ``torch.use_deterministic_algorithms``' documentation (torch 2.x) as ATen
op names; :func:`recorded_ops` records the ATen ops a function runs (forward and backward)
with a ``TorchDispatchMode``, which sees the same composite decompositions on CPU as on
CUDA, so a step run on CPU can be checked against the table.
"""
from __future__ import annotations

import os
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# documented operation -> ATen ops (overload packets) it dispatches to
NONDETERMINISTIC_CUDA_OPS: dict[str, tuple[str, ...]] = {
    'AvgPool3d backward': ('avg_pool3d_backward',),
    'AdaptiveAvgPool2d backward': ('_adaptive_avg_pool2d_backward',),
    'AdaptiveAvgPool3d backward': ('_adaptive_avg_pool3d_backward',),
    'AdaptiveMaxPool2d backward': ('adaptive_max_pool2d_backward',),
    'FractionalMaxPool2d/3d backward': ('fractional_max_pool2d_backward',
                                        'fractional_max_pool3d_backward'),
    'MaxUnpool1d/2d/3d': ('max_unpool2d', 'max_unpool3d'),
    'interpolate (linear, bilinear, bicubic, trilinear) backward': (
        'upsample_linear1d_backward', 'upsample_bilinear2d_backward',
        'upsample_bicubic2d_backward', 'upsample_trilinear3d_backward',
        '_upsample_bilinear2d_aa_backward', '_upsample_bicubic2d_aa_backward'),
    'ReflectionPad1d/2d/3d backward': ('reflection_pad1d_backward', 'reflection_pad2d_backward',
                                       'reflection_pad3d_backward'),
    # The documentation names NLLLoss as a whole; CUDA alerts in its 2-D spatial kernel only
    # (nll_loss2d_forward_out_cuda_template; 4-D cross-entropy): the (N, C) form, which
    # NT-Xent and MoCo use, ran under deterministic algorithms on an H200 (docs/gpu.md).
    'NLLLoss on N x C x H x W input': ('nll_loss2d_forward',),
    'CTCLoss backward': ('_ctc_loss_backward',),
    'EmbeddingBag backward (mode max)': ('_embedding_bag_dense_backward',),
    'Tensor.put_': ('put_', 'put'),
    'histc': ('histc',),
    'bincount with weights': ('bincount',),
    'median with indices': ('median', 'nanmedian'),
    'grid_sample backward': ('grid_sampler_2d_backward', 'grid_sampler_3d_backward'),
    'scatter_reduce (prod)': ('scatter_reduce',),
}
# ops of the table that are only non-deterministic with some arguments: op -> that condition
_CONDITIONS: dict[str, Callable[[tuple, dict], bool]] = {
    'bincount': lambda args, kwargs: (len(args) > 1 and args[1] is not None)
    or kwargs.get('weights') is not None,
    'median': lambda args, kwargs: len(args) > 1 or 'dim' in kwargs,  # the indices overloads
    'nanmedian': lambda args, kwargs: len(args) > 1 or 'dim' in kwargs,
    'scatter_reduce': lambda args, kwargs: (args[4] if len(args) > 4
                                            else kwargs.get('reduce')) == 'prod',
}
_OP_TO_DOC = {op: doc for doc, ops in NONDETERMINISTIC_CUDA_OPS.items() for op in ops}


class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: dict[str, int] = {}
        self.flagged: dict[str, str] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        self.ops[name] = self.ops.get(name, 0) + 1
        if name in _OP_TO_DOC and _CONDITIONS.get(name, lambda a, k: True)(args, kwargs):
            self.flagged[name] = _OP_TO_DOC[name]
        return func(*args, **kwargs)


def recorded_ops(fn: Callable[[], object]) -> tuple[dict[str, int], dict[str, str]]:
    """(every ATen op ``fn`` ran with its count, the ones non-deterministic on CUDA ->
    the documented operation) of one call of ``fn`` (include ``backward()`` in it)."""
    recorder = _OpRecorder()
    with recorder:
        fn()
    return recorder.ops, recorder.flagged


def apply_determinism(deterministic: bool) -> None:
    """Set torch's global flags for a run. ``deterministic``: deterministic algorithms (an
    error where torch has none; cuBLAS told so through ``CUBLAS_WORKSPACE_CONFIG``) and no
    cuDNN autotuning. Otherwise cuDNN picks its fastest kernels (``cudnn.benchmark``), whose
    results may differ from run to run; a later deterministic job in the same process sets
    the flags back."""
    # Deterministic cuBLAS needs this set before the first CUDA matmul; harmless elsewhere.
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(bool(deterministic))
    torch.backends.cudnn.deterministic = bool(deterministic)
    torch.backends.cudnn.benchmark = not deterministic
