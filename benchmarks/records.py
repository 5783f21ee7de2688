"""Append-only result records: one JSON per finished run, written atomically."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import torch


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(',', ':'), default=str)


def config_key(obj: Any) -> str:
    """Stable key of a configuration: the first 16 hex digits of its canonical JSON's sha256."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]


def current_umask() -> int:
    """The process umask: from /proc on Linux (no change to process state), else by setting
    and restoring it."""
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('Umask:'):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_shareable(path: Path) -> None:
    """Give a file the permissions a plain ``open()`` would have: ``0o666 & ~umask``.

    ``tempfile.mkstemp`` creates owner-only (0600) files, which breaks the shared
    work dirs of a team; this restores what the user's umask allows.
    """
    os.chmod(path, 0o666 & ~current_umask())


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    The result honours the umask like any other new file (not mkstemp's 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        make_shareable(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True,
                                                             default=str) + '\n'))


def save_torch_atomic(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def environment_versions() -> dict:
    """Versions that a result depends on, recorded with every result."""
    import mmengine
    import numpy
    import segmentation_models_pytorch as smp
    import torchvision

    versions = {
        'python': platform.python_version(),
        'torch': torch.__version__,
        'torchvision': torchvision.__version__,
        'mmengine': mmengine.__version__,
        'segmentation_models_pytorch': smp.__version__,
        'numpy': numpy.__version__,
    }
    for name in ('mmseg', 'mmselfsup', 'mmcv'):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a version we cannot read is recorded as such
            versions[name] = 'unavailable'
    versions['cuda'] = torch.version.cuda or 'none'
    versions['device'] = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
                          else platform.processor() or platform.machine())
    return versions


class RecordStore:
    """Records under ``work_dir/records/<stage>/<key>.json``; finished records are never rewritten."""

    def __init__(self, work_dir: Path):
        self.root = Path(work_dir) / 'records'

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / f'{key}.json'

    def get(self, stage: str, key: str) -> Optional[dict]:
        path = self.path(stage, key)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f'{path}: unreadable record ({err}); delete it to rerun that job') from err

    def finished(self, stage: str, key: str) -> Optional[dict]:
        record = self.get(stage, key)
        return record if record is not None and record.get('status') == 'finished' else None

    def put(self, stage: str, key: str, record: dict) -> Path:
        path = self.path(stage, key)
        if self.finished(stage, key) is not None:
            return path  # another worker finished it first; keep the first record
        write_json_atomic(path, record)
        return path

    def all(self, stage: str) -> list[dict]:
        folder = self.root / stage
        if not folder.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(folder.glob('*.json'))]
