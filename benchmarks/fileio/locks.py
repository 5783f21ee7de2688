"""Per-job lock files so that several runners can share one work dir.

A job's lock file ``<job>.lock`` holds one JSON line naming its owner (host,
pid, a random token, start time). Every decision on it (take, take over,
release) happens while holding one short ``filelock.FileLock`` on
``locks/.guard`` (kernel ``flock``), so check-then-act cannot interleave
between processes. While a job runs, a daemon thread refreshes the lock's
mtime (the heartbeat) every ``expiry / 4`` seconds. A lock counts as held
unless its owner is a dead process on this host, or its heartbeat is older
than ``MATSSL_LOCK_EXPIRY_S`` (default 600 s): that covers a dead process on
another host and a PID reused by an unrelated process. An empty or unreadable
lock file counts as held until it expires.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

from filelock import FileLock

LOG = logging.getLogger(__name__)
GUARD_NAME = '.guard'


def lock_expiry_s() -> float:
    """Seconds without a heartbeat after which a lock is taken over."""
    return float(os.environ.get('MATSSL_LOCK_EXPIRY_S', 600))


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobLock:
    """``acquire()`` is False when another live process holds the job; ``release()`` frees only our own."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.acquired = False
        self.token = uuid.uuid4().hex
        self._stop: Optional[threading.Event] = None
        self._beat: Optional[threading.Thread] = None

    # -- owner record ---------------------------------------------------------
    def _guard(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path.parent / GUARD_NAME))

    def owner(self) -> Optional[dict]:
        """The owner record, ``{}`` for an empty or unreadable lock, None when there is no lock."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError:
            return {}
        try:
            owner = json.loads(text)
        except RecursionError:  # not a lock this suite wrote
            return {}
        except ValueError:
            parts = text.split()  # the older 'host pid' format
            return (dict(host=parts[0], pid=int(parts[1]))
                    if len(parts) == 2 and parts[1].isdigit() else {})
        return owner if isinstance(owner, dict) else {}

    def _heartbeat_age(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _stale(self, owner: Optional[dict]) -> bool:
        if owner is None:
            return True
        if self._heartbeat_age() > lock_expiry_s():
            return True
        pid = owner.get('pid')
        return (owner.get('host') == socket.gethostname() and isinstance(pid, int)
                and not process_alive(pid))

    def _mine(self, owner: Optional[dict]) -> bool:
        return bool(owner) and owner.get('token') == self.token

    def describe(self) -> str:
        """Who holds the lock, for log lines."""
        owner = self.owner()
        if owner is None:
            return f'{self.path}: free'
        if not owner:
            return f'{self.path}: held (empty or unreadable lock file)'
        age = self._heartbeat_age()
        return (f'{self.path}: held by pid {owner.get("pid")} on {owner.get("host")} since '
                f'{time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("since", 0)))}, '
                f'last heartbeat {age:.0f} s ago (taken over after {lock_expiry_s():.0f} s '
                'without one, or at once if that process died on this host)')

    # -- acquire / release ----------------------------------------------------
    def acquire(self) -> bool:
        """Take the lock (taking over a stale one) and start its heartbeat."""
        if self.acquired:
            return True
        with self._guard():
            owner = self.owner()
            if not self._stale(owner):
                return False
            if owner is not None:
                LOG.warning('taking over stale lock %s', self.describe())
            record = dict(host=socket.gethostname(), pid=os.getpid(), token=self.token,
                          since=time.time())
            tmp = self.path.with_name(f'.{self.path.name}.{self.token}.tmp')
            tmp.write_text(json.dumps(record) + '\n')
            os.replace(tmp, self.path)  # the lock is never seen empty or half-written
            self.acquired = True
        self._start_heartbeat()
        return True

    def release(self) -> None:
        """Stop the heartbeat and delete the lock file if (and only if) it is still ours."""
        if not self.acquired:
            return
        self._stop_heartbeat()
        self.acquired = False
        with self._guard():
            if self._mine(self.owner()):
                self.path.unlink(missing_ok=True)
            else:
                LOG.warning('%s was taken over by another runner while this one held it',
                            self.path)

    def held_by_other(self) -> bool:
        with self._guard():
            owner = self.owner()
            return owner is not None and not self._stale(owner) and not self._mine(owner)

    # -- heartbeat ------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        self._stop = threading.Event()
        interval = max(0.05, lock_expiry_s() / 4)

        def beat(stop=self._stop):
            while not stop.wait(interval):
                try:
                    with self._guard():
                        if self._mine(self.owner()):
                            os.utime(self.path)
                except OSError as err:  # a transient filesystem error must not kill the job
                    LOG.warning('%s: heartbeat failed (%s)', self.path, err)

        self._beat = threading.Thread(target=beat, name=f'heartbeat {self.path.name}',
                                      daemon=True)
        self._beat.start()

    def _stop_heartbeat(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._beat.join()
            self._stop = self._beat = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def break_locks(locks_dir: Path) -> list[Path]:
    """Delete every job lock in ``locks_dir`` (``--break-locks``: the user knows no runner is alive)."""
    locks_dir = Path(locks_dir)
    if not locks_dir.is_dir():
        return []
    with FileLock(str(locks_dir / GUARD_NAME)):
        broken = sorted(locks_dir.glob('*.lock'))
        for path in broken:
            path.unlink(missing_ok=True)
    return broken
