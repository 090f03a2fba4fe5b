"""The repository lock, ``.cockpit/lock``: two cockpit processes serialise their operations."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from cockpit.core.errors import LockBusy


@contextmanager
def repo_lock(path: Path, timeout: float = 60.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the duration of the block.

    Waits up to ``timeout`` seconds for another process to finish, then raises :class:`LockBusy`.
    The lock is released by the kernel if the holder dies, so a crash never wedges the fleet.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockBusy(f"another cockpit operation holds {path} (waited {timeout:.0f}s)") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
