"""Waiting for something another process does: poll a condition until a deadline, never sleep a
fixed time (a fixed sleep is too short on a loaded machine and too long on an idle one)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 60.0, interval: float = 0.05,
               message: str = "condition") -> T:
    """Call ``condition`` every ``interval`` seconds until it returns something truthy, and return
    that. Raises :class:`TimeoutError` naming ``message`` once ``timeout`` seconds have passed;
    the condition is always tried at least once, and once more after the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
