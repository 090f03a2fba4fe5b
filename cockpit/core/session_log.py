"""Reading and following agents' terminal logs (``.cockpit/agents/<name>/session.log``).

tmux ``pipe-pane 'cat >> session.log'`` appends raw terminal bytes to these files for as long as
an agent runs. Logs grow without bound, may be truncated or rotated (re-created with a new inode)
and may contain anything, including invalid UTF-8. This module therefore:

* works in bytes (decoding and terminal rendering belong to the caller);
* never reads more than a bounded window: a 1 GiB log costs the same as a 1 KiB one;
* tails by byte offset, keyed on the file's identity, so truncation and re-creation are noticed
  even when filesystem events are coalesced or lost;
* opens only regular files. A symlink is followed when its target is a regular file (so a log
  kept elsewhere and linked in still works); a directory, FIFO, device or socket at the path —
  directly or behind a symlink — raises :class:`LogError`, so a FIFO can never block a reader
  and ``/dev/zero`` can never be read forever. A missing file (or dangling symlink) is not an
  error: it reads as empty, because an agent that has not started yet has no log.

No Textual or Rich here: the CLI (``cockpit logs -f``) and the TUI share this code. Watching
many logs for changes at once is :mod:`cockpit.core.log_watch`; reading a whole log by line
number is :mod:`cockpit.core.log_index`.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cockpit.core.errors import CockpitError

__all__ = [
    "DEFAULT_TAIL_BYTES",
    "LogError",
    "LogTail",
    "follow",
    "last_lines",
    "open_regular",
    "read_tail",
]

DEFAULT_TAIL_BYTES = 256 * 1024
"""Default window for :func:`read_tail` and per-call bound for :meth:`LogTail.read_new`."""

_BLOCK = 64 * 1024
_FINGERPRINT = 64
"""Bytes just before the read offset that :class:`LogTail` re-checks on every read: if they
changed, the file was rewritten in place (e.g. truncated and refilled past the old offset between
two polls) and the tail restarts at 0 instead of splicing two different files together."""

_LAST_LINES_MAX = 8 * 1024 * 1024
"""Cap for :func:`last_lines`: a file with no newlines must not be read whole."""

_FOLLOW_CHUNK = 1024 * 1024

StopCondition = threading.Event | Callable[[], bool] | None


class LogError(CockpitError, OSError):
    """The log path exists but cannot be read as a log (a directory, FIFO, device, no
    permission...). The message is one line, meant to be shown to the user as is."""


# ---------------------------------------------------------------------------------------------
# Low-level helpers (all work on an already opened, verified-regular file descriptor)


def open_regular(path: Path) -> tuple[int, os.stat_result] | None:
    """Open ``path`` for reading and return ``(fd, fstat)``; ``None`` if it does not exist.

    ``O_NONBLOCK`` makes opening a FIFO return at once instead of waiting for a writer; the
    ``fstat`` of the opened descriptor (not a separate ``stat`` of the path) decides, so there is
    no window in which the path can be swapped between the check and the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        if exc.errno == errno.ENXIO:
            reason = "not a regular file (a socket)"
        raise LogError(f"cannot read log {path}: {reason}") from exc
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise LogError(f"cannot read log {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise LogError(f"cannot read log {path}: not a regular file ({_kind(st.st_mode)})")
    return fd, st


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    """Read up to ``size`` bytes at ``offset``; shorter only at end of file."""
    parts: list[bytes] = []
    while size > 0:
        chunk = os.pread(fd, min(size, 16 * 1024 * 1024), offset)
        if not chunk:
            break
        parts.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(parts)


def _tail_window(fd: int, size: int, max_bytes: int) -> tuple[int, bytes]:
    """Return ``(start, data)``: the last ``max_bytes`` of the file, ``data == file[start:size]``.

    If the window starts mid-line and contains a later newline, the partial first line is
    dropped so the result begins on a line boundary. One byte before the window is read too, so
    a window that already starts right after a newline keeps its (complete) first line. A window
    with no newline before its last byte is one long line: it is returned as is.
    """
    if max_bytes <= 0 or size <= 0:
        return size, b""
    start = max(0, size - max_bytes)
    if start == 0:
        data = _pread_all(fd, size, 0)
        return 0, data
    data = _pread_all(fd, size - start + 1, start - 1)  # one byte of look-behind
    cut = data.find(b"\n", 0, len(data) - 1)
    if cut == -1:
        return start, data[1:]
    return start - 1 + cut + 1, data[cut + 1 :]


def _last_lines_window(fd: int, size: int, n: int, max_bytes: int) -> tuple[int, bytes]:
    """Return ``(start, data)`` for the last ``n`` lines, reading backwards in blocks.

    A final newline ends the last line; it does not start an empty one. Cost is proportional
    to the size of those lines, capped at ``max_bytes`` (beyond that: :func:`_tail_window`).
    """
    if n <= 0 or size <= 0:
        return size, b""
    end = size - 1 if os.pread(fd, 1, size - 1) == b"\n" else size
    found = 0
    pos = end
    while pos > 0:
        step = min(_BLOCK, pos)
        pos -= step
        block = os.pread(fd, step, pos)
        count = block.count(b"\n")
        if found + count >= n:
            idx = len(block)
            for _ in range(n - found):
                idx = block.rfind(b"\n", 0, idx)
            start = pos + idx + 1
            return start, _pread_all(fd, size - start, start)
        found += count
        if size - pos > max_bytes:
            return _tail_window(fd, size, max_bytes)
    return 0, _pread_all(fd, size, 0)


# ---------------------------------------------------------------------------------------------
# One-shot reads


def read_tail(path: Path | str, max_bytes: int = DEFAULT_TAIL_BYTES) -> bytes:
    """Return the last ``max_bytes`` of the log at ``path``, starting on a line boundary.

    Seeks to the end, so the cost is O(max_bytes) whatever the file size. A missing file gives
    ``b""``; a path that is not a regular file raises :class:`LogError`.
    """
    opened = open_regular(Path(path))
    if opened is None:
        return b""
    fd, st = opened
    try:
        return _tail_window(fd, st.st_size, max_bytes)[1]
    finally:
        os.close(fd)


def last_lines(path: Path | str, n: int, *, max_bytes: int = _LAST_LINES_MAX) -> bytes:
    """Return the last ``n`` lines of the log (as bytes, newlines kept).

    Reads backwards from the end in blocks: O(size of those lines), never more than
    ``max_bytes`` (a log without newlines yields its last ``max_bytes`` instead). Missing file:
    ``b""``; not a regular file: :class:`LogError`.
    """
    opened = open_regular(Path(path))
    if opened is None:
        return b""
    fd, st = opened
    try:
        return _last_lines_window(fd, st.st_size, n, max_bytes)[1]
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# Offset tailing


class LogTail:
    """Incremental reader of one log that survives truncation, deletion and re-creation.

    State is the file's identity ``(st_dev, st_ino)`` and a byte offset. Each
    :meth:`read_new` re-opens the path and applies, in order:

    * path missing -> ``b""``; the file is forgotten, so whatever appears there next is read
      from offset 0 (and reported as a reset);
    * a different file (new inode, e.g. rotated and re-created) -> restart at 0;
    * size below the offset -> truncated, restart at 0;
    * the bytes just before the offset changed -> rewritten in place, restart at 0;
    * otherwise -> the bytes from the offset to the current size.

    Guarantees: bytes are returned untouched (no decoding); no call reads more than about
    ``max_bytes``; with ``skip=True`` (the default) a flood never makes the reader fall behind —
    older pending bytes are skipped and counted in :attr:`skipped`, keeping the newest
    ``max_bytes`` (starting on a line boundary when possible).

    Where the first :meth:`read_new` starts if the file exists then (a file that appears
    later — the agent had not started yet, or after a reset — is always read from 0, so its
    first output is never lost):

    * default: offset 0;
    * ``from_tail=N``: the last N bytes, line-aligned (``0`` = only what is appended from now);
    * ``from_lines=N``: the last N lines.

    Nothing is read in the constructor; it cannot fail. Not thread-safe: one reader per
    instance.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_bytes: int = DEFAULT_TAIL_BYTES,
        from_tail: int | None = None,
        from_lines: int | None = None,
    ) -> None:
        if from_tail is not None and from_lines is not None:
            raise ValueError("give from_tail or from_lines, not both")
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._from_tail = from_tail
        self._from_lines = from_lines
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the file being read
        self._seen_a_file = False
        self._first_read = True  # initial positioning applies only to the very first read
        self._pos = 0
        self._fingerprint = b""  # up to _FINGERPRINT bytes just before _pos
        self.skipped = 0
        """Bytes skipped by the last :meth:`read_new` call to keep up with a flood."""
        self.total_skipped = 0
        """Bytes skipped over the lifetime of this reader."""
        self.was_reset = False
        """True if the last :meth:`read_new` found the file truncated, rewritten or replaced:
        what it returned starts a new file, so a view should be cleared first."""
        self.resets = 0
        """How many resets were seen over the lifetime of this reader."""
        self.pending = 0
        """Bytes known to be still unread after the last call (only with ``skip=False``)."""

    @property
    def position(self) -> int:
        """The offset the next read starts from, in the current file."""
        return self._pos

    def read_new(self, max_bytes: int | None = None, *, skip: bool = True) -> bytes:
        """Return the bytes appended since the last call (see the class docstring).

        ``skip=False`` returns the next ``max_bytes`` in order instead of skipping and sets
        :attr:`pending`, for readers that must see everything (``cockpit logs -f``).
        Raises :class:`LogError` if the path is not a regular file.
        """
        limit = self.max_bytes if max_bytes is None else max_bytes
        if limit <= 0:
            raise ValueError("max_bytes must be positive")
        self.skipped = 0
        self.was_reset = False
        self.pending = 0
        first, self._first_read = self._first_read, False
        opened = open_regular(self.path)
        if opened is None:
            self._forget()
            return b""
        fd, st = opened
        try:
            self._locate(fd, st, first)
            return self._read(fd, st.st_size, limit, skip)
        finally:
            os.close(fd)

    def _forget(self) -> None:
        self._ident = None
        self._pos = 0
        self._fingerprint = b""

    def _reset(self) -> None:
        self._pos = 0
        self._fingerprint = b""
        self.was_reset = True
        self.resets += 1

    def _locate(self, fd: int, st: os.stat_result, first: bool) -> None:
        """Decide where to read from in the file now at the path."""
        ident = (st.st_dev, st.st_ino)
        size = st.st_size
        if self._ident is None:
            self._ident = ident
            if self._seen_a_file:
                self._reset()  # the old file vanished; this one is new
                return
            self._seen_a_file = True
            self._pos = self._initial_offset(fd, size) if first else 0
        elif ident != self._ident:
            self._ident = ident
            self._reset()
            return
        elif size < self._pos:
            self._reset()
            return
        k = min(_FINGERPRINT, self._pos)
        if k and self._fingerprint and os.pread(fd, k, self._pos - k) != self._fingerprint:
            self._reset()
            return
        if k and not self._fingerprint:
            self._fingerprint = os.pread(fd, k, self._pos - k)

    def _initial_offset(self, fd: int, size: int) -> int:
        if self._from_tail is not None:
            return _tail_window(fd, size, self._from_tail)[0] if self._from_tail > 0 else size
        if self._from_lines is not None:
            return _last_lines_window(fd, size, self._from_lines, _LAST_LINES_MAX)[0]
        return 0

    def _read(self, fd: int, size: int, limit: int, skip: bool) -> bytes:
        pending = size - self._pos
        if pending <= 0:
            return b""
        if pending <= limit:
            data = _pread_all(fd, pending, self._pos)
        elif skip:
            start, data = _tail_window(fd, size, limit)
            self.skipped = start - self._pos
            self.total_skipped += self.skipped
            self._pos = start
            self._fingerprint = b""
        else:
            data = _pread_all(fd, limit, self._pos)
        self._pos += len(data)
        self.pending = max(0, size - self._pos)
        if self._fingerprint or self._pos == len(data):
            self._fingerprint = (self._fingerprint + data)[-_FINGERPRINT:]
        else:
            k = min(_FINGERPRINT, self._pos)
            self._fingerprint = os.pread(fd, k, self._pos - k)
        return data


# ---------------------------------------------------------------------------------------------
# Following (``cockpit logs NAME -n N -f``)


def _stopped(stop: StopCondition) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


def _pause(stop: StopCondition, seconds: float) -> None:
    if isinstance(stop, threading.Event):
        stop.wait(seconds)
    else:
        time.sleep(seconds)


def follow(
    path: Path | str,
    lines: int = 10,
    poll: float = 0.2,
    stop: StopCondition = None,
) -> Iterator[bytes]:
    """Yield the last ``lines`` lines of the log, then new bytes as they are appended.

    Polls every ``poll`` seconds (simple and robust on any filesystem, fine for a CLI). Every
    appended byte is yielded in order — nothing is skipped, large backlogs come in 1 MiB pieces.
    After truncation or re-creation it continues from the start of the new file (as
    ``tail -F``). A missing file yields nothing until it appears. Ends when ``stop`` (a
    ``threading.Event`` or a callable returning true) says so, checked at least every ``poll``
    seconds; otherwise runs forever. Raises :class:`LogError` if the path is not a regular file.
    """
    tail = LogTail(path, max_bytes=_FOLLOW_CHUNK, from_lines=max(0, lines))
    while True:
        data = tail.read_new(skip=False)
        if data:
            yield data
        if _stopped(stop):
            return
        if not tail.pending:
            _pause(stop, poll)
            if _stopped(stop):
                return
