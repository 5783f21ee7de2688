"""Temporary files of writers that were killed: found by name, removed once their writer is gone.

Atomic writes leave ``.<name>.<host>.<pid>.<random>.tmp`` (``atomic.py``) and the
resume checkpoint ``.resume.pth.<host>.<pid>.tmp`` (``engine/hooks.py``) only when
their process dies mid-write (kill -9, power loss). A file is removed when its
host is this one and its process no longer runs; a file of another host is kept
(its writer may be alive there) unless it is older than the lock expiry, after
which a writer would have lost its job lock anyway.
"""
from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from matssl_bench.fileio.locks import lock_expiry_s, process_alive

# .<target name>.<host>.<pid>.<mkstemp random>.tmp, or .resume.pth.<host>.<pid>.tmp
_TAGGED = re.compile(r'^\..+?\.(?P<host>[^.]+(?:\.[^.]+)*?)\.(?P<pid>\d+)(?:\.[^.]+)?\.tmp$')


def writer_of(name: str, hosts: tuple[str, ...]) -> tuple[str, int] | None:
    """(host, pid) named by a temporary file name, trying the known host names first
    (a host name may hold dots), or None for a name that carries none."""
    for host in hosts:
        match = re.search(rf'\.{re.escape(host)}\.(\d+)(?:\.[^.]+)?\.tmp$', name)
        if match:
            return host, int(match.group(1))
    match = _TAGGED.match(name)
    return (match.group('host'), int(match.group('pid'))) if match else None


def clear_stale_temporaries(root: Path) -> list[Path]:
    """Remove the hidden ``*.tmp`` files under ``root`` whose writer is gone; return them."""
    host = socket.gethostname()
    removed = []
    now = time.time()
    for path in Path(root).rglob('.*.tmp'):
        try:
            if not path.is_file() or path.is_symlink():
                continue
            writer = writer_of(path.name, (host,))
            if writer is None:
                continue
            if writer[0] == host:
                stale = not process_alive(writer[1])
            else:
                stale = now - path.stat().st_mtime > lock_expiry_s()
            if stale:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # removed meanwhile, or not ours to remove
    return removed
