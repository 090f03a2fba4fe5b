"""Random access to the lines of a ``session.log`` of any size, read from the file on demand.

The zoomed view and its search must reach a whole log — a 1 GiB one too — without holding it
in memory and without making the view wait for it. A :class:`LineIndex` knows where lines
start from a sparse table of checkpoints: the offset of one line start about every
:data:`STEP` bytes and its line number. A window of lines is then found by reading at most
``STEP`` bytes from the checkpoint before it, and each line is read from the file only when
asked for (at most its last ``cap`` bytes: the end of a ``\\r``-redrawn line is its final state).

A line is the bytes between two ``\\n`` (a final line without one is the live line a program
is still writing). The index opens on the end of the log (:meth:`LineIndex.open`), so the
newest lines can be shown at once; the part before is scanned later, in blocks, by
:meth:`LineIndex.scan_head` (in a worker), which renumbers the lines: a view keeps its place
by the shift it returns. The file is followed by offset as it grows (:meth:`LineIndex.extend`);
if it is truncated or replaced, the index starts over (``generation`` changes).

Memory: two integers per checkpoint — a 1 GiB log of 100-byte lines needs 16,384 of them.
No Textual or Rich here: this is bytes and offsets.
"""

from __future__ import annotations

import os
import threading
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cockpit.core.session_log import open_regular

STEP = 64 * 1024
"""Bytes between two checkpoints (at least): what finding a line reads at most."""
BLOCK = 256 * 1024
"""Bytes read at a time while scanning."""
TAIL_BYTES = 256 * 1024
"""How much of the end of a log :meth:`LineIndex.open` indexes before anything else."""
LINE_CAP = 16 * 1024
"""Bytes of one line read at most (its end)."""


LOOKBACK = 4 * 1024 * 1024
"""How far before the tail :meth:`LineIndex.open` looks for a line start when the tail is all
one line; beyond it, the whole file is indexed at once."""


def _line_start_near(fd: int, pos: int, size: int) -> int:
    """The first line start at or after ``pos`` (before ``size``), else the last one before it
    within :data:`LOOKBACK`, else 0."""
    window = os.pread(fd, size - pos + 1, pos - 1)
    newline = window.find(b"\n", 0, len(window) - 1)  # (a final newline starts no line)
    if newline >= 0:
        return pos + newline
    low = max(0, pos - LOOKBACK)
    while pos > low:
        size = min(STEP, pos - low)
        newline = os.pread(fd, size, pos - size).rfind(b"\n")
        if newline >= 0:
            return pos - size + newline + 1
        pos -= size
    return 0


@dataclass(frozen=True)
class Line:
    """One line as read from the file: its start offset, its bytes (no ``\\n``; at most the
    last ``cap`` of them) and whether its head was cut off."""

    offset: int
    data: bytes
    cut: bool = False
    end: int = 0
    """Where the line ends (its ``\\n``, or the end of the file for the live line): with
    ``offset``, what identifies this state of the line (the live one grows)."""


class LineIndex:
    """Where the lines of one log start. Thread-safe: scans and reads may run in different
    workers. Line numbers count from the first indexed line (0), which is the first line of
    the file once :attr:`complete`."""

    def __init__(self, path: Path | str, step: int = STEP) -> None:
        self.path = Path(path)
        self.step = step
        self._lock = threading.RLock()
        self.generation = 0
        """Grows whenever the file was found truncated or replaced: every line number before
        is meaningless."""
        self.numbering = 0
        """Grows whenever line numbers change meaning: a new generation, or the head indexed
        (a read that saw it change under it is stale)."""
        self._reset()

    def _reset(self, identity: tuple[int, int] | None = None, start: int = 0) -> None:
        self._identity = identity
        self.start = start
        """The offset the indexed lines begin at (0 once :attr:`complete`)."""
        self.end = start
        """How far the file is indexed."""
        self._lines = array("q", [0])  # checkpoint line numbers...
        self._offsets = array("q", [start])  # ...and their offsets, ascending
        self._newlines = 0  # newlines in [start, end)
        self._last = b""  # the byte before ``end`` (does the indexed part end a line?)
        self.finished_end = start
        """The offset just after the last ``\\n`` indexed: the finished lines end here, the
        live line (if any) starts here."""

    # -- what is known -------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """Whether the index reaches back to the start of the file."""
        return self.start == 0

    @property
    def lines(self) -> int:
        """Lines indexed, the live last one (no ``\\n`` yet) included. Takes no lock (the UI
        thread asks): a scan under way may make it one behind."""
        return self._newlines + (1 if self.end > self.start and self._last != b"\n" else 0)

    @property
    def finished_lines(self) -> int:
        """Lines indexed that end with ``\\n``: the live last line is not one of them."""
        return self._newlines

    # -- building ------------------------------------------------------------------------------
    def open(self, tail: int = TAIL_BYTES) -> bool:
        """Start (or restart) on the current file: index its last ``tail`` bytes, from the
        first line start in them. Returns False when there is no file (yet)."""
        opened = open_regular(self.path)
        if opened is None:
            with self._lock:
                self._reset()
                self.generation += 1
                self.numbering += 1
            return False
        fd, st = opened
        try:
            start = _line_start_near(fd, st.st_size - tail, st.st_size) if st.st_size > tail else 0
            with self._lock:
                self._reset((st.st_dev, st.st_ino), start)
                self.generation += 1
                self.numbering += 1
                self._scan(fd, st.st_size)
        finally:
            os.close(fd)
        return True

    def extend(self) -> bool:
        """Index what was appended since the last look. Returns True when anything changed.
        A file truncated or replaced meanwhile is opened again (``generation`` grows)."""
        opened = open_regular(self.path)
        if opened is None:
            if self._identity is not None or self.end:
                self.open()
                return True
            return False
        fd, st = opened
        try:
            with self._lock:
                if (st.st_dev, st.st_ino) != self._identity or st.st_size < self.end:
                    os.close(fd)
                    fd = -1
                    self.open()
                    return True
                if st.st_size == self.end:
                    return False
                self._scan(fd, st.st_size)
                return True
        finally:
            if fd >= 0:
                os.close(fd)

    def _scan(self, fd: int, size: int) -> None:
        """Index ``[end, size)`` (appended lines). Holds the lock."""
        pos = self.end
        while pos < size:
            data = os.pread(fd, min(BLOCK, size - pos), pos)
            if not data:
                break
            self._newlines = self._add_checkpoints(data, pos, self._newlines, self._lines, self._offsets)
            newline = data.rfind(b"\n")
            if newline >= 0:
                self.finished_end = pos + newline + 1
            pos += len(data)
            self._last = data[-1:]
        self.end = pos

    def _add_checkpoints(self, data: bytes, at: int, newlines: int, lines: array, offsets: array) -> int:
        """Add checkpoints for the line starts in ``data`` (read at offset ``at``), one at the
        first line start at least :attr:`step` bytes after the previous checkpoint. Returns
        the number of newlines seen so far, ``data``'s included."""
        done = 0
        while True:
            wanted = offsets[-1] + self.step - 1 - at  # a newline here or later starts a far enough line
            newline = data.find(b"\n", max(wanted, done))
            if newline < 0:
                break
            newlines += data.count(b"\n", done, newline + 1)
            done = newline + 1
            lines.append(newlines)
            offsets.append(at + done)
        return newlines + data.count(b"\n", done)

    def scan_head(self, stop: Callable[[], bool] = lambda: False,
                  progress: Callable[[float], None] | None = None, share: float = 1.0) -> int | None:
        """Index the part of the file before :attr:`start`, block by block (a worker's job: a
        GiB takes a second or two). Returns how many lines it added at the top (every line
        number grew by that), 0 when it was complete already, None when stopped or when the
        file changed meanwhile. ``share``: the most of a core to take (it rests between
        blocks), so that the thread that draws the screen keeps what it needs."""
        with self._lock:
            start, generation, identity = self.start, self.generation, self._identity
        if start == 0:
            return 0
        opened = open_regular(self.path)
        if opened is None:
            return None
        fd, st = opened
        try:
            if (st.st_dev, st.st_ino) != identity or st.st_size < start:
                return None
            lines, offsets = array("q", [0]), array("q", [0])
            newlines = 0
            pos = 0
            while pos < start:
                if stop():
                    return None
                began = time.thread_time()
                data = os.pread(fd, min(BLOCK, start - pos), pos)
                if not data:
                    return None
                newlines = self._add_checkpoints(data, pos, newlines, lines, offsets)
                pos += len(data)
                if progress is not None:
                    progress(pos / start)
                if share < 1.0:
                    time.sleep((time.thread_time() - began) * (1 - share) / share)
        finally:
            os.close(fd)
        with self._lock:
            if self.generation != generation or self.start != start:
                return None
            if offsets[-1] == start:  # the tail's first checkpoint is that same line start
                lines.pop()
                offsets.pop()
            lines.extend(line + newlines for line in self._lines)
            offsets.extend(self._offsets)
            self._lines, self._offsets = lines, offsets
            self._newlines += newlines
            self.start = 0
            self.numbering += 1
            return newlines

    # -- reading -------------------------------------------------------------------------------
    def read(self, first: int, count: int, cap: int = LINE_CAP) -> list[Line]:
        """Lines ``first`` .. ``first + count - 1`` (fewer at the end), read from the file: for
        each, at most its last ``cap`` bytes. Costs what it returns plus at most :attr:`step`."""
        with self._lock:
            total = self.lines
            first = max(0, first)
            count = min(count, total - first)
            if count <= 0:
                return []
            lines, offsets, end, generation = self._lines, self._offsets, self.end, self.generation
            checkpoint = bisect_right(lines, first) - 1
        opened = open_regular(self.path)
        if opened is None:
            return []
        fd, st = opened
        try:
            if generation != self.generation:
                return []
            end = min(end, st.st_size)
            number, pos = lines[checkpoint], offsets[checkpoint]
            found: list[Line] = []
            while len(found) < count and pos < end:
                stop, following = self._line_end(fd, pos, end, checkpoint, lines, offsets)
                if number >= first:
                    size = stop - pos
                    data = os.pread(fd, min(size, cap), stop - min(size, cap))
                    found.append(Line(pos, data, size > cap, stop))
                number += 1
                pos = following
                while checkpoint + 1 < len(offsets) and offsets[checkpoint + 1] <= pos:
                    checkpoint += 1
            return found
        finally:
            os.close(fd)

    def line_of(self, offset: int) -> int | None:
        """The number of the line starting at ``offset``; None when that part of the file is
        not indexed (yet), or ``offset`` starts no line."""
        with self._lock:
            if not self.start <= offset <= self.end:
                return None
            checkpoint = bisect_right(self._offsets, offset) - 1
            number, pos = self._lines[checkpoint], self._offsets[checkpoint]
        if offset == pos:
            return number
        opened = open_regular(self.path)
        if opened is None:
            return None
        fd, _st = opened
        try:
            data = os.pread(fd, offset - pos, pos)  # less than a step: see _add_checkpoints
        finally:
            os.close(fd)
        if len(data) != offset - pos or not data.endswith(b"\n"):
            return None
        return number + data.count(b"\n")

    def _line_end(self, fd: int, pos: int, end: int, checkpoint: int, lines: array,
                  offsets: array) -> tuple[int, int]:
        """``(end of the line at pos, start of the next line)``. A line longer than a step
        ends just before the next checkpoint, which is the next line start: no need to read it."""
        limit = min(end, pos + self.step + 1)
        scan = pos
        while scan < limit:
            data = os.pread(fd, min(STEP, limit - scan), scan)
            if not data:
                break
            newline = data.find(b"\n")
            if newline >= 0:
                return scan + newline, scan + newline + 1
            scan += len(data)
        following = checkpoint + 1
        while following < len(offsets) and offsets[following] <= pos:
            following += 1
        if following < len(offsets) and offsets[following] <= end:
            return offsets[following] - 1, offsets[following]
        return end, end  # the live last line
