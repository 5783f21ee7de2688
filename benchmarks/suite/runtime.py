"""Facts of the running process that change a job's numbers; part of every job key.

A job key must change whenever a result can (docs/job-keys.md lists what is
covered and what is shown not to matter). Besides the suite's settings this is:

- ``threads``: torch intra-op threads (``--threads``, else ``OMP_NUM_THREADS`` or
  torch's default). CPU kernels split reductions by thread, so 1 and 2 threads
  give different floating-point sums and different models;
- ``world_size``: processes of a distributed run (batch split, DDP reductions);
- ``device``: the device class kernels run on: the GPU model, or the CPU
  architecture and the vector instruction set torch dispatches to;
- ``precision``: the precision a stage really runs with (``auto`` resolved);
- ``deterministic``: mmengine's deterministic flag (default on);
- ``versions``: libraries whose kernels or defaults compute the numbers;
- ``cuda_math``: on GPUs, TF32 switches and the cuBLAS workspace setting.

Everything here is resolved once per process (:func:`current_runtime`) before
any job is planned, so planning and running agree.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Optional

import torch
from mmengine.device import get_device

from matssl_bench.suite.precision import check_precision, resolve_precision

# Environment variables naming the world size per launcher (before torch.distributed starts).
_WORLD_SIZE_ENV = dict(pytorch=('WORLD_SIZE',), slurm=('SLURM_NTASKS',),
                       mpi=('OMPI_COMM_WORLD_SIZE', 'PMI_SIZE'))
# Libraries whose code computes a record's numbers (models, kernels, data decoding, RNG).
RESULT_LIBRARIES = ('torch', 'torchvision', 'numpy', 'mmengine', 'mmselfsup',
                    'segmentation_models_pytorch', 'timm', 'PIL')


def world_size(launcher: str = 'none') -> int:
    """Processes of this run: torch.distributed's when started, else the launcher's
    environment (torchrun's ``WORLD_SIZE``, slurm's ``SLURM_NTASKS``), 1 without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    for name in _WORLD_SIZE_ENV.get(launcher, ()):
        value = os.environ.get(name, '')
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def device_class(device_type: Optional[str] = None) -> str:
    """``cuda:<GPU model>`` or ``cpu:<machine>/<vector ISA>``: results differ between them."""
    device_type = device_type or get_device()
    if device_type == 'cuda' and torch.cuda.is_available():
        return f'cuda:{torch.cuda.get_device_name(torch.cuda.current_device())}'
    if device_type == 'cpu':
        capability = getattr(torch.backends.cpu, 'get_cpu_capability', lambda: 'unknown')()
        return f'cpu:{platform.machine()}/{capability}'
    return device_type


def library_versions() -> dict:
    """Versions of :data:`RESULT_LIBRARIES` (``'absent'`` for one not installed)."""
    from importlib import metadata

    names = dict(PIL='pillow')
    versions = {}
    for module in RESULT_LIBRARIES:
        try:
            versions[module] = metadata.version(names.get(module, module).replace('_', '-'))
        except metadata.PackageNotFoundError:
            versions[module] = 'absent'
    versions['cuda'] = torch.version.cuda or 'none'
    versions['cudnn'] = str(torch.backends.cudnn.version()) if torch.cuda.is_available() else 'none'
    return versions


def _cuda_math() -> dict:
    return dict(cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                matmul_precision=torch.get_float32_matmul_precision(),
                cublas_workspace=os.environ.get('CUBLAS_WORKSPACE_CONFIG', ':4096:8'))


@dataclass(frozen=True)
class Runtime:
    """What this process computes with; see the module docstring."""

    threads: int
    world_size: int
    device_type: str
    device: str
    versions: tuple
    cuda_math: tuple = ()
    loader_workers: Optional[int] = None  # --threads: data-loader workers of every stage

    def precision(self, requested: Optional[str], stage: str = 'pretrain') -> str:
        """The precision ``stage`` asking for ``requested`` runs with here (``auto``
        resolved); an impossible one (fp16 on a CPU) stays as asked: the run refuses it."""
        try:
            return resolve_precision(requested, self.device_type, stage)
        except ValueError:
            return check_precision(requested)

    def key_part(self, scale: dict, deterministic: bool, stage: str) -> dict:
        """The facts one ``stage`` job's key holds."""
        part = dict(threads=self.threads, world_size=self.world_size, device=self.device,
                    precision=self.precision(scale.get('precision'), stage),
                    deterministic=bool(deterministic), versions=dict(self.versions))
        if self.cuda_math:
            part['cuda_math'] = dict(self.cuda_math)
        return part


def current_runtime(threads: Optional[int] = None, launcher: str = 'none') -> Runtime:
    """This process's runtime, with ``threads`` (``--threads``) as it will be set."""
    device_type = get_device()
    return Runtime(threads=threads or torch.get_num_threads(),
                   world_size=world_size(launcher), device_type=device_type,
                   device=device_class(device_type),
                   versions=tuple(sorted(library_versions().items())),
                   cuda_math=tuple(sorted(_cuda_math().items())) if device_type == 'cuda' else (),
                   loader_workers=threads)


def runtime_mismatch(planned: Optional[dict], actual: dict) -> Optional[str]:
    """Which planned fact differs from the running process's, or None."""
    if not planned:
        return None
    for name in ('threads', 'world_size', 'device'):
        if planned.get(name) != actual.get(name):
            return f'{name} {planned.get(name)!r} planned, {actual.get(name)!r} running'
    return None
