"""Garbage-collector settings for the TUI's process.

A tile grid keeps tens of thousands of long-lived objects (widgets, rendered rows, terminal
state) and, while logs stream in, makes rendered rows that live for a second or less. With
CPython's default thresholds the short-lived rows reached the oldest generation and triggered
full collections over everything every few seconds: pauses in which no key and no log line
reached the screen, the worst latencies of the whole app (figures: ``bench/ui-figures.md``).

So, once the grid is up: what is alive then is frozen (no collection visits it again); the
young generations are collected a little less often (rows die in them, by reference count,
before they can be promoted); and full collections, which only cyclic garbage needs, run when
the app is quiet, or at the latest every :data:`FULL_EVERY` seconds.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

THRESHOLDS = (2000, 10, 1_000_000_000)
"""gen0 after this many allocations (CPython's default is 700), gen1 every 10 gen0; no
automatic full collection (see :meth:`CollectorTuning.tick`)."""
QUIET_S = 2.0
"""A full collection may run once nothing has changed on screen for this long..."""
QUIET_EVERY = 60.0
"""...at most this often..."""
FULL_EVERY = 600.0
"""...and runs after this long in any case (a fleet that never goes quiet)."""


class CollectorTuning:
    """Apply the settings once (after start-up), run the full collections, and put the old
    settings back when the app ends."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._saved: tuple[int, int, int] | None = None
        self._clock = clock
        self._last_full = clock()
        self.full_collections = 0

    @property
    def applied(self) -> bool:
        return self._saved is not None

    def apply(self) -> None:
        if self._saved is None:
            self._saved = gc.get_threshold()
            gc.collect()
            gc.freeze()
            gc.set_threshold(*THRESHOLDS)
            self._last_full = self._clock()

    def tick(self, quiet_for: float) -> bool:
        """Call every few seconds with how long the screen has been still; runs a full
        collection when it is due. Returns whether it ran."""
        if self._saved is None:
            return False
        since = self._clock() - self._last_full
        if (quiet_for >= QUIET_S and since >= QUIET_EVERY) or since >= FULL_EVERY:
            gc.collect()
            self._last_full = self._clock()
            self.full_collections += 1
            return True
        return False

    def restore(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            gc.unfreeze()
            self._saved = None
