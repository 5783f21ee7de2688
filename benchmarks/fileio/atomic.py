"""Atomic file writes that honour the umask: a file is either complete or absent."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch


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
