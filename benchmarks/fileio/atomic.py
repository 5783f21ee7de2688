"""Atomic file writes that honour the umask: a file is either complete or absent."""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from matssl_bench.errors import DiskFullError

# Below this many free bytes a failed write is put down to a full disk (torch's writer
# reports ENOSPC as a RuntimeError without the errno).
_NEARLY_FULL_BYTES = 1 << 20


def is_disk_full(err: BaseException, folder: Path) -> bool:
    """Whether ``err``, raised while writing into ``folder``, means the disk (or quota) is full."""
    if isinstance(err, DiskFullError):
        return True
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(err, (OSError, RuntimeError)):
        try:
            return shutil.disk_usage(folder).free < _NEARLY_FULL_BYTES
        except OSError:
            return False
    return False


def raise_if_disk_full(err: BaseException, path: Path) -> None:
    """A :class:`DiskFullError` naming ``path`` in place of ``err`` when the disk is full."""
    if is_disk_full(err, Path(path).parent) and not isinstance(err, DiskFullError):
        raise DiskFullError(path) from err


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


def writer_tag() -> str:
    """``<host>.<pid>`` of this process, as temporary file names carry it."""
    return f'{socket.gethostname()}.{os.getpid()}'


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    The result honours the umask like any other new file (not mkstemp's 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # host and pid in the name: a later run removes it only once this writer is gone
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.{writer_tag()}.', suffix='.tmp',
                               dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        make_shareable(Path(tmp))
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        raise_if_disk_full(err, path)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True,
                                                             default=str) + '\n'))


def save_torch_atomic(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
