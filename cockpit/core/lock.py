"""Locks between cockpit processes: ``flock`` on a file under ``.cockpit/``.

The kernel drops an ``flock`` when its holder dies, so a crash never wedges the fleet. Two locks
use it: the repository lock (``.cockpit/lock``, :func:`repo_lock`), which serialises operations,
and the merge queue's (``.cockpit/queue.lock``, :mod:`cockpit.core.queue`), held by the one
process that runs the queue.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cockpit.core.errors import LockBusy


def take(fd: int, timeout: float, interval: float = 0.05) -> bool:
    """Take an exclusive ``flock`` on ``fd``, retrying every ``interval`` seconds for up to
    ``timeout`` seconds (0: one try). True once held, False when it stayed busy."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(interval)


@contextmanager
def repo_lock(path: Path, timeout: float = 60.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the duration of the block.

    Waits up to ``timeout`` seconds for another process to finish, then raises :class:`LockBusy`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not take(fd, timeout):
            raise LockBusy(f"another cockpit operation holds {path} (waited {timeout:.0f}s)")
        yield
    finally:
        os.close(fd)
