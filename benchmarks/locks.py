"""Per-job lock files so that several runners can share one work dir."""
from __future__ import annotations

import os
import socket
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobLock:
    """``acquire()`` is False when another live process holds the job.

    A lock left by a process that died on this host is taken over; locks from
    other hosts are respected (their owner cannot be checked from here).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.acquired = False

    def _try_create(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(fd, 'w') as f:
            f.write(f'{socket.gethostname()} {os.getpid()}\n')
        return True

    def _owner(self):
        """(host, pid) written in the lock file, or None when it is gone or unreadable."""
        try:
            host, pid = self.path.read_text().split()
            return host, int(pid)
        except (FileNotFoundError, ValueError):
            return None

    def _stale(self) -> bool:
        owner = self._owner()
        return owner is None or (owner[0] == socket.gethostname() and not _alive(owner[1]))

    def _owned(self) -> bool:
        return self._owner() == (socket.gethostname(), os.getpid())

    def acquire(self) -> bool:
        """Take the lock; a lock whose owner died on this host is taken over."""
        if self._try_create():
            self.acquired = True
        elif self._stale():
            self.path.unlink(missing_ok=True)
            self.acquired = self._try_create()
        return self.acquired

    def release(self) -> None:
        if self.acquired:
            self.path.unlink(missing_ok=True)
            self.acquired = False

    def held_by_other(self) -> bool:
        return self.path.exists() and not self._stale() and not self._owned()
