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

No Textual or Rich here: the CLI (``cockpit logs -f``) and the TUI share this code.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import watchfiles

from .errors import CockpitError

__all__ = [
    "DEFAULT_TAIL_BYTES",
    "LogError",
    "LogTail",
    "LogWatcher",
    "follow",
    "last_lines",
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

_log = logging.getLogger(__name__)

_WAKE_S = 1.0
"""Longest the watcher thread waits inside watchfiles without looking at the clock, the
directory set and its first catch-up check."""

StopCondition = threading.Event | Callable[[], bool] | None


class LogError(CockpitError, OSError):
    """The log path exists but cannot be read as a log (a directory, FIFO, device, no
    permission...). The message is one line, meant to be shown to the user as is."""


# ---------------------------------------------------------------------------------------------
# Low-level helpers (all work on an already opened, verified-regular file descriptor)


def _open_regular(path: Path) -> tuple[int, os.stat_result] | None:
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
    opened = _open_regular(Path(path))
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
    opened = _open_regular(Path(path))
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
        opened = _open_regular(self.path)
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


# ---------------------------------------------------------------------------------------------
# Watching many logs


@dataclass(frozen=True)
class _Sig:
    """What the fallback compares: identity, size and modification time of a log."""

    dev: int
    ino: int
    size: int
    mtime_ns: int


def _abs(path: Path | str) -> Path:
    """Absolute, normalised, symlinks NOT resolved: watchfiles reports paths under the name a
    directory was watched by, and we always watch by this name."""
    return Path(os.path.abspath(path))


def _nearest_existing_dir(directory: Path) -> Path:
    for candidate in (directory, *directory.parents):
        if candidate.is_dir():
            return candidate
    return Path(directory.anchor or "/")


def _polling_wanted(force_polling: bool | None) -> bool:
    """Decide polling the way watchfiles does: the argument, else ``WATCHFILES_FORCE_POLLING``,
    else WSL (where inotify does not see changes made from Windows)."""
    if force_polling is not None:
        return force_polling
    env = os.environ.get("WATCHFILES_FORCE_POLLING")
    if env:
        return env.lower() not in {"false", "disable", "disabled"}
    return "microsoft-standard" in os.uname().release.lower()


class _AnyOf:
    """A stop_event for watchfiles that is set when any of the given events is."""

    def __init__(self, *events: threading.Event) -> None:
        self._events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)


class LogWatcher:
    """One background watcher for the session logs of every agent.

    ``on_change(paths)`` is called from the watcher thread with the set of watched log paths
    (absolute, as normalised by :meth:`watch`) that may have changed; the caller then reads them
    with its :class:`LogTail`. A report means "look again", not "there is new data": spurious
    reports are possible, missed changes are not (within ``fallback_interval``).

    How: a single ``watchfiles.watch`` (one Rust thread) over the parent directory of every
    watched log, non-recursively. A log whose directory does not exist yet is covered by
    watching its nearest existing ancestor; when directories appear or vanish the inner watch
    is restarted, and after every (re)start all logs are stat'ed so nothing written in between
    is lost. In addition, every ``fallback_interval`` seconds each log's
    ``(dev, inode, size, mtime_ns)`` is compared with the last one seen, which catches events
    that watchfiles coalesced or never got (a log that is a symlink to elsewhere, inotify
    unavailable or out of watches).

    Polling (``force_polling=True``, or watchfiles' own rule: ``WATCHFILES_FORCE_POLLING``,
    WSL) does not use watchfiles at all: its poller compares mtimes to the second and misses
    appends within the same second, so the watcher instead stats the logs itself every
    ``poll_interval`` seconds — one ``stat`` per log, cheap even on network filesystems.

    Errors never escape the thread: they go to ``on_error(exc)`` (if given) and the watcher
    retries after a pause.
    """

    def __init__(
        self,
        on_change: Callable[[set[Path]], None],
        *,
        fallback_interval: float = 2.0,
        debounce_ms: int = 50,
        on_error: Callable[[BaseException], None] | None = None,
        force_polling: bool | None = None,
        poll_interval: float = 0.3,
    ) -> None:
        if fallback_interval <= 0 or poll_interval <= 0:
            raise ValueError("fallback_interval and poll_interval must be positive")
        self._on_change = on_change
        self._on_error = on_error
        self._fallback = fallback_interval
        self._debounce = max(1, debounce_ms)
        self._step = max(1, min(self._debounce, 20))
        self._polling = _polling_wanted(force_polling)
        self._poll_interval = poll_interval
        self._lock = threading.Lock()
        self._logs: dict[Path, _Sig | None] = {}
        self._stat_errors: dict[Path, str] = {}  # reported once each, not on every poll
        self._stop = threading.Event()
        # Set by stop(), watch() and unwatch(). The watchfiles stop_event is "wake or stop", so
        # any of them ends the inner watch at once (within one `step`).
        self._wake = threading.Event()
        self._interrupt = _AnyOf(self._stop, self._wake)
        self._thread: threading.Thread | None = None

    # -- public API ---------------------------------------------------------------------------

    def watch(self, path: Path | str) -> None:
        """Watch the log at ``path``; its directory may not exist yet. Idempotent."""
        p = _abs(path)
        sig = self._signature(p)
        with self._lock:
            if p in self._logs:
                return
            self._logs[p] = sig
        self._wake.set()

    def unwatch(self, path: Path | str) -> None:
        """Stop watching the log at ``path`` (unknown paths are ignored)."""
        with self._lock:
            known = _abs(path) in self._logs
            self._logs.pop(_abs(path), None)
            self._stat_errors.pop(_abs(path), None)
        if known:
            self._wake.set()

    @property
    def paths(self) -> set[Path]:
        """The watched log paths (absolute)."""
        with self._lock:
            return set(self._logs)

    def start(self) -> None:
        """Start the daemon thread (no-op if it is already running)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, name="cockpit-logwatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it (returns within ~one debounce step unless an
        ``on_change`` callback is still running). Safe to call twice or from a callback."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def check_now(self) -> set[Path]:
        """Run the fallback check once: stat every watched log and report (via ``on_change``,
        in the calling thread) and return those whose identity, size or mtime changed since
        last seen. The background thread calls this every ``fallback_interval``."""
        changed = self._stat_changes()
        if changed:
            self._emit(changed)
        return changed

    # -- internals ----------------------------------------------------------------------------

    def _signature(self, path: Path) -> _Sig | None:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            message = f"cannot stat log {path}: {exc.strerror}"
            with self._lock:
                new = self._stat_errors.get(path) != message
                self._stat_errors[path] = message
            if new:
                self._report(LogError(message))
            return None
        with self._lock:
            self._stat_errors.pop(path, None)
        return _Sig(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _stat_changes(self) -> set[Path]:
        with self._lock:
            known = dict(self._logs)
        changed: set[Path] = set()
        for path, old in known.items():
            new = self._signature(path)
            if new != old:
                changed.add(path)
                with self._lock:
                    if path in self._logs:
                        self._logs[path] = new
        return changed

    def _emit(self, paths: set[Path]) -> None:
        try:
            self._on_change(paths)
        except Exception as exc:  # a broken callback must not kill the watcher
            self._report(exc)

    def _report(self, exc: BaseException) -> None:
        """Hand ``exc`` to ``on_error``; without one (or if it fails itself), log it."""
        if self._on_error is None:
            _log.warning("log watcher: %s", exc)
            return
        try:
            self._on_error(exc)
        except Exception:
            _log.exception("log watcher: on_error failed while reporting %r", exc)

    def _roots(self) -> set[Path]:
        """Directories to watch: each log's directory, or its nearest existing ancestor."""
        with self._lock:
            dirs = {p.parent for p in self._logs}
        return {_nearest_existing_dir(d) for d in dirs}

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                roots = self._roots()
                self.check_now()  # catch up on anything written while not watching
                if self._polling:
                    self._interruptible_wait(self._poll_interval)  # then check_now again
                elif roots:
                    self._watch_roots(roots)
                else:
                    self._interruptible_wait(self._fallback)
            except FileNotFoundError:
                # A watched directory vanished between listing and watching it: not an error,
                # the next round watches its nearest existing ancestor instead.
                self._stop.wait(self._step / 1000)
            except Exception as exc:  # report, pause, retry: the thread must not die
                self._report(exc)
                self._stop.wait(min(self._fallback, 1.0))

    def _interruptible_wait(self, seconds: float) -> None:
        if not self._stop.is_set():
            self._wake.wait(seconds)

    def _watch_roots(self, roots: set[Path]) -> None:
        """Run one watchfiles session until woken, or until the set of roots must change.

        The first batch (or timeout, at most ``_WAKE_S`` later) triggers a stat check: writes
        made while the watch was being set up are in neither the events nor the earlier check.
        """
        last_check: float | None = None
        for changes in watchfiles.watch(
            *sorted(roots),
            watch_filter=None,
            debounce=self._debounce,
            step=self._step,
            stop_event=self._interrupt,
            rust_timeout=max(1, int(min(self._fallback, _WAKE_S) * 1000)),
            yield_on_timeout=True,
            recursive=False,
            force_polling=False,
            raise_interrupt=False,
        ):
            layout_changed = False
            if changes:
                with self._lock:
                    watched = set(self._logs)
                hits: set[Path] = set()
                for change, raw in changes:
                    path = _abs(raw)
                    if path in watched:
                        hits.add(path)
                    if change != watchfiles.Change.modified or path not in watched:
                        layout_changed = True  # something appeared or vanished
                if hits:
                    # No stat per hit here (each system call is a wait for the GIL under
                    # load): the fallback check may report these once more, which is harmless.
                    self._emit(hits)
            timed_out = last_check is None or time.monotonic() - last_check >= self._fallback
            if timed_out:
                last_check = time.monotonic()
                self.check_now()
            if (layout_changed or timed_out) and self._roots() != roots:
                return  # a directory appeared or vanished: restart over the new set
