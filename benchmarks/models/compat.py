"""Compatibility of the pinned OpenMMLab stack with current torch and mmcv-lite.

Everything the suite needs to make mmengine/mmseg/mmselfsup work on this
torch lives here, and `apply()` is idempotent. It changes nothing when full
mmcv (with compiled ops) is installed.
"""
from __future__ import annotations

import importlib
import sys
import types
import warnings

import torch
import torch.nn.functional as F

_applied = False


def point_sample(input: torch.Tensor, points: torch.Tensor, align_corners: bool = False,
                 **kwargs) -> torch.Tensor:
    """Pure-PyTorch equivalent of ``mmcv.ops.point_sample``.

    ``points`` holds normalised (x, y) coordinates in [0, 1], shape (N, P, 2)
    or (N, Hp, Wp, 2).
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return output.squeeze(3) if add_dim else output


def _has_compiled_mmcv_ops() -> bool:
    try:
        importlib.import_module('mmcv._ext')
        return True
    except ImportError:
        return False


def _install_mmcv_ops_stub() -> None:
    """Give mmcv-lite an ``mmcv.ops`` that provides what mmseg imports at module level."""
    if 'mmcv.ops' in sys.modules and hasattr(sys.modules['mmcv.ops'], 'point_sample'):
        return
    import mmcv

    ops = types.ModuleType('mmcv.ops')
    ops.__doc__ = 'Pure-PyTorch stand-ins installed by matssl_bench.models.compat (mmcv-lite has no ops).'
    ops.point_sample = point_sample

    def _unavailable(name):
        def op(*args, **kwargs):
            raise RuntimeError(f'mmcv.ops.{name} needs full mmcv with compiled ops; '
                               'install mmcv (not mmcv-lite) to use it.')
        return op

    ops.sigmoid_focal_loss = _unavailable('sigmoid_focal_loss')

    def missing_op(name):
        # mmseg guards optional ops with `except ModuleNotFoundError`.
        if name.startswith('__'):
            raise AttributeError(name)
        raise ModuleNotFoundError(f'mmcv.ops.{name} needs full mmcv with compiled ops')

    ops.__getattr__ = missing_op
    sys.modules['mmcv.ops'] = ops
    mmcv.ops = ops


def _allow_mmengine_checkpoints() -> None:
    """torch>=2.6 loads with weights_only=True; allow what mmengine stores in resume checkpoints."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return
    import numpy as np
    from mmengine.logging import HistoryBuffer

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    allowed = [HistoryBuffer, np.dtype, np.ndarray, _reconstruct, scalar]
    # numpy RNG states and message-hub scalars pickle their dtype classes
    allowed += [type(np.dtype(t)) for t in ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8',
                                            'uint16', 'uint32', 'uint64', 'float16', 'float32',
                                            'float64')]
    add_safe_globals(allowed)


def apply() -> None:
    """Make the installed OpenMMLab stack importable and resumable on this torch."""
    global _applied
    if _applied:
        return
    if not _has_compiled_mmcv_ops():
        _install_mmcv_ops_stub()
        # mmcv-lite warns on import about a transformer op none of the suite's models use
        warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')
    _allow_mmengine_checkpoints()
    _applied = True
