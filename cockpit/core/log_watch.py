"""Watching the session logs of every agent for changes, with one thread.

A report means "look again" (the caller then reads with its :class:`~cockpit.core.session_log.LogTail`),
not "there is new data": spurious reports are possible, missed changes are not. See
:class:`LogWatcher` for how filesystem events, a stat fallback and polling are combined.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from cockpit.core.session_log import LogError

__all__ = ["LogWatcher"]

_log = logging.getLogger(__name__)

_WAKE_S = 1.0
QUIET_STEP_MS = 40
"""How often watchfiles looks for changes while the logs are quiet. Every look wakes a thread and
takes the GIL: at a step of 4 ms that alone cost ~0.7 % of a core with nothing written. The first
change after a quiet spell is reported within about two quiet steps; the watch then goes back to
the fast step until the logs have been quiet for :data:`QUIET_AFTER_S`."""
QUIET_AFTER_S = 2.0
"""Longest the watcher thread waits inside watchfiles without looking at the clock, the
directory set and its first catch-up check."""


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
        self._last_change = -1e18  # (monotonic) when the last change was seen: the fast step until quiet
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
        except Exception as exc:  # noqa: BLE001 - a broken callback must not kill the watcher: reported
            self._report(exc)

    def _report(self, exc: BaseException) -> None:
        """Hand ``exc`` to ``on_error``; without one (or if it fails itself), log it."""
        if self._on_error is None:
            _log.warning("log watcher: %s", exc)
            return
        try:
            self._on_error(exc)
        except Exception:  # noqa: BLE001 - the report itself failed: logged
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
            except Exception as exc:  # noqa: BLE001 - report, pause, retry: the thread must not die
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
        quiet = time.monotonic() - self._last_change >= QUIET_AFTER_S
        step = max(self._step, QUIET_STEP_MS) if quiet else self._step
        for changes in watchfiles.watch(
            *sorted(roots),
            watch_filter=None,
            debounce=max(self._debounce, step),
            step=step,
            stop_event=self._interrupt,
            rust_timeout=max(1, int(min(self._fallback, _WAKE_S) * 1000)),
            yield_on_timeout=True,
            recursive=False,
            force_polling=False,
            raise_interrupt=False,
        ):
            layout_changed = woke = False
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
                    self._last_change = time.monotonic()
                    woke = True
                    # No stat per hit here (each system call is a wait for the GIL under
                    # load): the fallback check may report these once more, which is harmless.
                    self._emit(hits)
            timed_out = last_check is None or time.monotonic() - last_check >= self._fallback
            if timed_out:
                last_check = time.monotonic()
                self.check_now()
            if (layout_changed or timed_out) and self._roots() != roots:
                return  # a directory appeared or vanished: restart over the new set
            if step != self._step and woke:
                return  # the logs woke up: watch again at the fast step
            if step == self._step and time.monotonic() - self._last_change >= QUIET_AFTER_S:
                return  # quiet again: watch at the quiet step
