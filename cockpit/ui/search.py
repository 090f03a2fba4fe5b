"""Searching a whole ``session.log`` for the zoomed view: :class:`LogSearch`.

A search looks at finished lines only — the live line a program keeps redrawing (a progress bar)
is searched once it ends — so its count only grows while the log does. It scans the file
backwards from where it began, newest lines first (:mod:`cockpit.core.log_search` finds candidate
lines in the raw bytes; each is rendered as the view renders it and matched case-insensitively
on its text), then each line as it is finished. Both scans run in the view's worker threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text

from cockpit.core.log_index import LINE_CAP, LineIndex
from cockpit.core.log_search import candidates
from cockpit.ui.logview import Match
from cockpit.ui.terminal import LineRenderer

MAX_MATCHES = 100_000
"""Matches kept per search: the newest ones (a search for "e" in a GiB log would fill memory)."""
POST_EVERY_S = 0.1
"""How often a running search reports what it found."""


def find_matches(lines: list[Text], query: str) -> list[tuple[int, int, int]]:
    """``(line, start, end)`` of every case-insensitive occurrence of ``query``."""
    if not query:
        return []
    needle = query.lower()
    found = []
    for number, line in enumerate(lines):
        haystack = line.plain.lower()
        start = haystack.find(needle)
        while start != -1:
            found.append((number, start, start + len(needle)))
            start = haystack.find(needle, start + max(1, len(needle)))
    return found


class LogSearch:
    """One query's progress: where the backward scan is, and how far new lines were searched."""

    def __init__(self, query: str, end: int, generation: int) -> None:
        self.query = query
        self.origin = end
        """The backward scan covers the finished lines before this offset..."""
        self.end = end
        """...and the forward one those from ``origin`` to here, as lines are finished."""
        self.generation = generation
        """The log's generation it searches (a truncated or replaced log is searched again)."""
        self.done = False
        self.capped = False
        self.fraction = 0.0
        self.lock = threading.Lock()

    def scan_backwards(self, path: Path, stop: Callable[[], bool], report: Callable[[list[Match]], object]) -> None:
        """Every finished line before :attr:`origin`, newest first: ``report`` gets the matches
        in batches (at most every :data:`POST_EVERY_S`), the last one once the scan is
        :attr:`done`. Nothing more is reported once ``stop()`` says so."""
        renderer = LineRenderer()
        batch: list[Match] = []
        found = 0
        posted = time.monotonic()
        end = self.origin

        def progress(done: int) -> None:
            self.fraction = done / end if end else 1.0

        for offset, raw in candidates(path, self.query, 0, end, backwards=True, stop=stop, progress=progress):
            matches = matches_in(renderer, offset, raw, self.query)
            batch.extend(reversed(matches))  # newest first
            found += len(matches)
            if found >= MAX_MATCHES:
                self.capped = True
                break
            if time.monotonic() - posted >= POST_EVERY_S and batch:
                report(batch)
                batch, posted = [], time.monotonic()
        if stop():
            return
        self.done = True
        report(batch)

    def new_lines(self, index: LineIndex) -> list[Match]:
        """The matches in the lines finished since the last look."""
        with self.lock:
            start, end = self.end, index.finished_end
            if end <= start or self.generation != index.generation:
                return []
            self.end = end
            renderer = LineRenderer()
            found: list[Match] = []
            for offset, raw in candidates(index.path, self.query, start, end):
                found.extend(matches_in(renderer, offset, raw, self.query))
        return found


def matches_in(renderer: LineRenderer, offset: int, raw: bytes, query: str) -> list[Match]:
    """The matches of ``query`` in the line at ``offset``, rendered as the view renders it."""
    data, cut = (raw[-LINE_CAP:], True) if len(raw) > LINE_CAP else (raw, False)
    text = renderer.render(data, cut)
    return [(offset, start, end) for _, start, end in find_matches([text], query)]
