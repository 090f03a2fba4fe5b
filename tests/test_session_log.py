"""Tests for cockpit.core.session_log: tail windows, offset tailing, follow and the watcher.

Everything runs on real files in tmp_path. Nothing sleeps for a fixed time: asynchronous
effects are awaited with ``wait_until`` (a short poll loop with a deadline).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cockpit.core.errors import CockpitError
from cockpit.core.log_watch import LogWatcher
from cockpit.core.session_log import (
    LogError,
    LogTail,
    follow,
    last_lines,
    read_tail,
)
from conftest import wait_until

GiB = 1024**3


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def sparse_log(path: Path, tail: bytes) -> Path:
    """A 1 GiB file (a hole, no disk used) with ``tail`` appended, like a huge old log."""
    with open(path, "wb") as f:
        f.truncate(GiB)
    append(path, tail)
    return path


def replace_with_new_file(path: Path, data: bytes) -> None:
    """Re-create ``path`` as a different file. The new file is written while the old one still
    exists, so it cannot reuse the old inode number."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------- read_tail


def test_read_tail_small_file_whole(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    p.write_bytes(b"one\ntwo\nthree")
    assert read_tail(p) == b"one\ntwo\nthree"


def test_read_tail_starts_on_line_boundary(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    p.write_bytes(b"aaaa\nbbbb\ncccc\n")
    assert read_tail(p, max_bytes=7) == b"cccc\n"  # window "b\ncccc\n": partial line dropped
    assert read_tail(p, max_bytes=10) == b"bbbb\ncccc\n"  # window starts right after a newline
    assert read_tail(p, max_bytes=5) == b"cccc\n"  # one line ending in a newline is kept


def test_read_tail_without_newline_keeps_window(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    p.write_bytes(b"x" * 100 + b"\n" + b"y" * 100)
    assert read_tail(p, max_bytes=10) == b"y" * 10


def test_read_tail_one_gib_sparse(tmp_path: Path) -> None:
    p = sparse_log(tmp_path / "session.log", b"\nlast-but-one\nlast line\n")
    out = read_tail(p, max_bytes=4096)
    assert out.endswith(b"last-but-one\nlast line\n")
    assert len(out) <= 4096
    assert last_lines(p, 2) == b"last-but-one\nlast line\n"


def test_read_tail_missing_file(tmp_path: Path) -> None:
    assert read_tail(tmp_path / "nope" / "session.log") == b""


def test_read_tail_directory_is_clear_error(tmp_path: Path) -> None:
    d = tmp_path / "session.log"
    d.mkdir()
    with pytest.raises(LogError) as info:
        read_tail(d)
    msg = str(info.value)
    assert "\n" not in msg and "directory" in msg and str(d) in msg
    assert isinstance(info.value, OSError) and isinstance(info.value, CockpitError)


def test_read_tail_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "session.log"
    os.mkfifo(fifo)
    with pytest.raises(LogError, match="FIFO"):
        read_tail(fifo)


def test_read_tail_symlinks(tmp_path: Path) -> None:
    target = tmp_path / "real.log"
    target.write_bytes(b"hello\n")
    link = tmp_path / "session.log"
    link.symlink_to(target)
    assert read_tail(link) == b"hello\n"  # a link to a regular file is followed

    to_dir = tmp_path / "dirlink.log"
    to_dir.symlink_to(tmp_path)
    with pytest.raises(LogError, match="directory"):
        read_tail(to_dir)

    dangling = tmp_path / "dangling.log"
    dangling.symlink_to(tmp_path / "gone")
    assert read_tail(dangling) == b""


# -------------------------------------------------------------------------------- last_lines


@pytest.mark.parametrize("trailing_newline", [True, False])
def test_last_lines_matches_reference(tmp_path: Path, trailing_newline: bool) -> None:
    lines = [f"{i:04d} ".encode() + b"z" * (i % 2000) for i in range(300)]  # crosses 64K blocks
    data = b"\n".join(lines) + (b"\n" if trailing_newline else b"")
    p = tmp_path / "session.log"
    p.write_bytes(data)
    for n in (0, 1, 2, 7, 64, 299, 300, 1000):
        expected = b"".join(data.splitlines(keepends=True)[-n:]) if n else b""
        assert last_lines(p, n) == expected, n


def test_last_lines_edge_cases(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    assert last_lines(p, 3) == b""
    p.write_bytes(b"")
    assert last_lines(p, 3) == b""
    p.write_bytes(b"\n\n\n")
    assert last_lines(p, 2) == b"\n\n"
    p.write_bytes(b"q" * 5000)  # no newline at all: capped tail
    assert last_lines(p, 1, max_bytes=100) == b"q" * 100


# ----------------------------------------------------------------------------------- LogTail


def test_logtail_appends(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    p.write_bytes(b"first\n")
    t = LogTail(p)
    assert t.read_new() == b"first\n"
    assert t.read_new() == b""
    append(p, b"sec")
    assert t.read_new() == b"sec"  # partial lines are returned as they come
    append(p, b"ond\n")
    assert t.read_new() == b"ond\n"
    assert not t.was_reset and t.resets == 0 and t.skipped == 0


def test_logtail_missing_then_created_reads_from_start(tmp_path: Path) -> None:
    p = tmp_path / "agent" / "session.log"
    t = LogTail(p, from_tail=0)
    assert t.read_new() == b""
    p.parent.mkdir()
    p.write_bytes(b"hello\n")
    assert t.read_new() == b"hello\n"  # a log that appears later is read from 0
    assert not t.was_reset


def test_logtail_truncate_then_write(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    p.write_bytes(b"old line 1\nold line 2\n")
    t = LogTail(p)
    t.read_new()
    p.write_bytes(b"new\n")  # truncates (same inode) and writes less than before
    assert t.read_new() == b"new\n"
    assert t.was_reset and t.resets == 1
    append(p, b"more\n")
    assert t.read_new() == b"more\n"
    assert not t.was_reset


def test_logtail_truncate_and_refill_past_old_offset(tmp_path: Path) -> None:
    """Truncated and refilled beyond the old offset between two reads: size alone cannot
    tell, the re-checked bytes before the offset do."""
    p = tmp_path / "session.log"
    p.write_bytes(b"AAAA\n")
    t = LogTail(p)
    t.read_new()
    ino = p.stat().st_ino
    p.write_bytes(b"a much longer new file\n")
    assert p.stat().st_ino == ino
    assert t.read_new() == b"a much longer new file\n"
    assert t.was_reset


def test_logtail_delete_and_recreate(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    p.write_bytes(b"one\ntwo\n")
    t = LogTail(p)
    t.read_new()
    p.unlink()
    assert t.read_new() == b""
    assert not t.was_reset
    p.write_bytes(b"x\n")  # may even reuse the inode number: being gone was remembered
    assert t.read_new() == b"x\n"
    assert t.was_reset


def test_logtail_recreated_with_new_inode_unseen(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    p.write_bytes(b"a fairly long first file\n")
    t = LogTail(p)
    t.read_new()
    replace_with_new_file(p, b"a fairly long second file, longer\n")
    assert t.read_new() == b"a fairly long second file, longer\n"
    assert t.was_reset


def test_logtail_rename_away_and_recreate(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    p.write_bytes(b"before rotation\n")
    t = LogTail(p)
    t.read_new()
    p.rename(tmp_path / "session.log.1")
    assert t.read_new() == b""
    append(tmp_path / "session.log.1", b"late write to the old inode\n")
    p.write_bytes(b"after rotation\n")
    assert t.read_new() == b"after rotation\n"
    assert t.was_reset


def test_logtail_flood_skips_to_newest(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    p.write_bytes(b"start\n")
    t = LogTail(p, max_bytes=1000)
    assert t.read_new() == b"start\n"
    flood = b"".join(f"line {i:05d} ".encode() + b"." * 40 + b"\n" for i in range(1000))
    append(p, flood)
    got = t.read_new()
    size = p.stat().st_size
    assert 0 < len(got) <= 1000
    assert p.read_bytes().endswith(got)
    assert got.startswith(b"line ")  # line-aligned after the skip
    assert t.skipped == size - len(b"start\n") - len(got)
    assert t.total_skipped == t.skipped
    append(p, b"tail\n")
    assert t.read_new() == b"tail\n"
    assert t.skipped == 0


def test_logtail_no_skip_returns_everything_in_chunks(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    data = os.urandom(10_000)
    p.write_bytes(data)
    t = LogTail(p, max_bytes=3000)
    parts = [t.read_new(skip=False)]
    while t.pending:
        parts.append(t.read_new(skip=False))
    assert b"".join(parts) == data and t.total_skipped == 0


def test_logtail_binary_bytes_untouched(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    blob = bytes(range(256)) + b"\xff\xfe\x80\x1b[31m\r\n\x00"
    p.write_bytes(blob)
    t = LogTail(p)
    assert t.read_new() == blob
    append(p, b"\xc3")  # half a UTF-8 character
    assert t.read_new() == b"\xc3"
    append(p, b"\xa9")
    assert t.read_new() == b"\xa9"


def test_logtail_from_tail_on_huge_file(tmp_path: Path) -> None:
    p = sparse_log(tmp_path / "session.log", b"\nrecent 1\nrecent 2\n")
    t = LogTail(p, from_tail=64 * 1024)
    got = t.read_new()
    assert got.endswith(b"recent 1\nrecent 2\n") and len(got) <= 64 * 1024
    assert t.skipped == 0 and t.position == GiB + len(b"\nrecent 1\nrecent 2\n")


def test_logtail_from_tail_zero_and_from_lines(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    p.write_bytes(b"1\n2\n3\n4\n")
    end = LogTail(p, from_tail=0)
    assert end.read_new() == b""
    append(p, b"5\n")
    assert end.read_new() == b"5\n"

    lines = LogTail(p, from_lines=2)
    assert lines.read_new() == b"4\n5\n"

    with pytest.raises(ValueError):
        LogTail(p, from_tail=1, from_lines=1)


def test_logtail_non_regular_file_raises(tmp_path: Path) -> None:
    d = tmp_path / "session.log"
    d.mkdir()
    t = LogTail(d)  # the constructor does no I/O
    with pytest.raises(LogError, match="directory"):
        t.read_new()


# ------------------------------------------------------------------------------------ follow


class Follower:
    """Runs follow() in a thread and collects what it yields."""

    def __init__(self, path: Path, lines: int) -> None:
        self.stop = threading.Event()
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(path, lines), daemon=True)
        self.thread.start()

    def _run(self, path: Path, lines: int) -> None:
        try:
            for chunk in follow(path, lines=lines, poll=0.02, stop=self.stop):
                with self._lock:
                    self._chunks.append(chunk)
        except BaseException as exc:  # noqa: BLE001 (surfaced by the test through .error)
            self.error = exc

    @property
    def text(self) -> bytes:
        with self._lock:
            return b"".join(self._chunks)


def test_follow_last_lines_then_appends_truncation_and_recreation(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    p.write_bytes(b"".join(f"line {i}\n".encode() for i in range(20)))
    f = Follower(p, lines=3)
    try:
        wait_until(lambda: f.text == b"line 17\nline 18\nline 19\n", message="last 3 lines")
        append(p, b"appended\n")
        wait_until(lambda: f.text.endswith(b"line 19\nappended\n"), message="appended line")

        p.write_bytes(b"after truncate\n")
        wait_until(lambda: f.text.endswith(b"appended\nafter truncate\n"), message="truncation")

        p.unlink()
        p.write_bytes(b"re-created\n")
        wait_until(lambda: f.text.endswith(b"after truncate\nre-created\n"), message="re-creation")
    finally:
        f.stop.set()
        f.thread.join(5)
    assert not f.thread.is_alive()
    assert f.error is None


def test_follow_missing_file_waits_for_it(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    f = Follower(p, lines=10)
    try:
        p.write_bytes(b"born\n")
        wait_until(lambda: f.text == b"born\n", message="file to appear")
    finally:
        f.stop.set()
        f.thread.join(5)
    assert not f.thread.is_alive()


def test_follow_stop_callable_ends(tmp_path: Path) -> None:
    p = tmp_path / "session.log"
    p.write_bytes(b"a\nb\nc\n")
    assert list(follow(p, lines=2, poll=0.01, stop=lambda: True)) == [b"b\nc\n"]


def test_follow_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(LogError):
        next(follow(tmp_path, stop=lambda: True))


# -------------------------------------------------------------------------------- LogWatcher


class Recorder:
    """Collects on_change / on_error calls from the watcher thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.batches: list[set[Path]] = []
        self.errors: list[BaseException] = []

    def on_change(self, paths: set[Path]) -> None:
        with self._lock:
            self.batches.append(set(paths))

    def on_error(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(exc)

    def seen(self) -> set[Path]:
        with self._lock:
            return set().union(*self.batches) if self.batches else set()

    def clear(self) -> None:
        with self._lock:
            self.batches.clear()


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def make_watcher(rec: Recorder, **kw: object) -> LogWatcher:
    # A long fallback interval: apart from the one catch-up check right after the watch is set
    # up, reports must come from filesystem events.
    kw.setdefault("fallback_interval", 60.0)
    kw.setdefault("force_polling", False)  # events, whatever WATCHFILES_FORCE_POLLING says
    return LogWatcher(rec.on_change, on_error=rec.on_error, **kw)  # type: ignore[arg-type]


def test_watcher_two_agents_report_right_path(tmp_path: Path, rec: Recorder) -> None:
    a = tmp_path / ".cockpit" / "agents" / "a" / "session.log"
    b = tmp_path / ".cockpit" / "agents" / "b" / "session.log"
    for p in (a, b):
        p.parent.mkdir(parents=True)
        p.write_bytes(b"")
    w = make_watcher(rec)
    w.watch(a)
    w.watch(b)
    w.start()
    try:
        append(a, b"from a\n")
        wait_until(lambda: a in rec.seen(), message="a reported")
        assert b not in rec.seen()
        rec.clear()
        append(b, b"from b\n")
        wait_until(lambda: b in rec.seen(), message="b reported")
        assert a not in rec.seen()
    finally:
        w.stop()
    assert rec.errors == []


def test_watcher_directory_created_after_start(tmp_path: Path, rec: Recorder) -> None:
    log = tmp_path / ".cockpit" / "agents" / "late" / "session.log"
    w = make_watcher(rec)
    w.start()
    w.watch(log)  # added while running, and nothing of its path exists yet
    try:
        log.parent.mkdir(parents=True)
        append(log, b"first words\n")
        wait_until(lambda: log in rec.seen(), message="log in a new directory reported")
        rec.clear()
        append(log, b"more\n")  # now watched directly
        wait_until(lambda: log in rec.seen(), message="later write reported")
    finally:
        w.stop()
    assert rec.errors == []


def test_watcher_directory_removed_and_recreated(tmp_path: Path, rec: Recorder) -> None:
    log = tmp_path / "agents" / "x" / "session.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"v1\n")
    w = make_watcher(rec)
    w.watch(log)
    w.start()
    try:
        shutil.rmtree(log.parent)
        wait_until(lambda: log in rec.seen(), message="deletion reported")
        rec.clear()
        log.parent.mkdir()
        log.write_bytes(b"v2\n")
        wait_until(lambda: log in rec.seen(), message="re-created log reported")
    finally:
        w.stop()


def test_watcher_truncate_and_rewrite(tmp_path: Path, rec: Recorder) -> None:
    log = tmp_path / "agent" / "session.log"
    log.parent.mkdir()
    log.write_bytes(b"some old output\n")
    tail = LogTail(log)
    assert tail.read_new() == b"some old output\n"
    w = make_watcher(rec)
    w.watch(log)
    w.start()
    try:
        log.write_bytes(b"fresh\n")
        wait_until(lambda: log in rec.seen(), message="truncate+rewrite reported")
        assert tail.read_new() == b"fresh\n" and tail.was_reset
    finally:
        w.stop()


@pytest.mark.parametrize("polling", [False, True])
def test_watcher_relative_path(
    tmp_path: Path, rec: Recorder, monkeypatch: pytest.MonkeyPatch, polling: bool
) -> None:
    """watch() normalises to absolute paths, and reports use them."""
    monkeypatch.chdir(tmp_path)
    rel = Path("agent") / "session.log"
    rel.parent.mkdir()
    rel.write_bytes(b"")
    w = make_watcher(rec, force_polling=polling)
    w.watch(rel)
    w.start()
    try:
        append(rel, b"polled\n")
        wait_until(lambda: (tmp_path / rel) in rec.seen(), message="polled change reported")
        assert w.paths == {tmp_path / rel}
    finally:
        w.stop()


@pytest.mark.parametrize("polling", [False, True])
def test_watcher_survives_rotation(tmp_path: Path, rec: Recorder, polling: bool) -> None:
    log = tmp_path / "agent" / "session.log"
    log.parent.mkdir()
    log.write_bytes(b"")
    w = make_watcher(rec, force_polling=polling)
    w.watch(log)
    w.start()
    try:
        append(log, b"one\n")
        wait_until(lambda: log in rec.seen(), message="first write")
        rec.clear()
        log.rename(log.with_name("session.log.1"))
        log.write_bytes(b"rotated\n")
        wait_until(lambda: log in rec.seen(), message="rotation")
        rec.clear()
        append(log, b"after\n")
        wait_until(lambda: log in rec.seen(), message="write to the new file")
    finally:
        w.stop()
    assert rec.errors == []


def test_watcher_polling_sees_quick_appends(tmp_path: Path, rec: Recorder) -> None:
    """Several appends within one second are each seen (watchfiles' poller, comparing mtimes
    to the second, would miss all but the first)."""
    log = tmp_path / "agent" / "session.log"
    w = make_watcher(rec, force_polling=True, poll_interval=0.02)
    w.watch(log)
    w.start()
    try:
        log.parent.mkdir()
        log.write_bytes(b"x\n")
        wait_until(lambda: log in rec.seen(), message="polled report of creation")
        for i in range(3):
            rec.clear()
            append(log, b"y\n")
            wait_until(lambda: log in rec.seen(), message=f"polled report of append {i}")
    finally:
        w.stop()
    assert rec.errors == []


def test_watcher_fallback_catches_what_events_miss(tmp_path: Path, rec: Recorder) -> None:
    """A log that is a symlink into another directory gets no events (its target's directory
    is not watched): the fallback timer still reports it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "real.log"
    target.write_bytes(b"")
    log = tmp_path / "agent" / "session.log"
    log.parent.mkdir()
    log.symlink_to(target)
    w = make_watcher(rec, fallback_interval=0.05)
    w.watch(log)
    w.start()
    try:
        for i in range(2):
            rec.clear()
            append(target, b"written through the link target\n")
            wait_until(lambda: log in rec.seen(), message=f"fallback report {i}")
    finally:
        w.stop()
    assert rec.errors == []


def test_watcher_polling_missing_directory(tmp_path: Path, rec: Recorder) -> None:
    """Polling mode covers a log whose directory appears later."""
    log = tmp_path / "agent" / "session.log"
    w = make_watcher(rec, force_polling=True, poll_interval=0.05)
    w.watch(log)
    w.start()
    try:
        log.parent.mkdir()
        log.write_bytes(b"x\n")
        wait_until(lambda: log in rec.seen(), message="report of creation")
        rec.clear()
        log.write_bytes(b"y\n")  # same size, new content: mtime tells
        wait_until(lambda: log in rec.seen(), message="report of rewrite")
    finally:
        w.stop()


def test_watcher_check_now_directly(tmp_path: Path, rec: Recorder) -> None:
    log = tmp_path / "session.log"
    log.write_bytes(b"a\n")
    other = tmp_path / "other.log"
    w = make_watcher(rec)  # never started: no events at all
    w.watch(log)
    w.watch(other)
    assert w.check_now() == set()
    append(log, b"b\n")
    assert w.check_now() == {log}
    assert rec.batches == [{log}]
    assert w.check_now() == set()
    replace_with_new_file(log, b"a\nb\n")  # same size, new inode
    assert w.check_now() == {log}
    w.unwatch(log)
    append(log, b"c\n")
    assert w.check_now() == set()


def test_watcher_unwatch_stops_reports(tmp_path: Path, rec: Recorder) -> None:
    a = tmp_path / "a" / "session.log"
    b = tmp_path / "b" / "session.log"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(b"")
    w = make_watcher(rec)
    w.watch(a)
    w.watch(b)
    w.start()
    try:
        w.unwatch(a)
        append(a, b"ignored\n")
        append(b, b"seen\n")
        wait_until(lambda: b in rec.seen(), message="b reported")
        assert a not in rec.seen()
    finally:
        w.stop()


def test_watcher_callback_error_is_reported_not_fatal(tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    log.write_bytes(b"")
    errors: list[BaseException] = []
    calls: list[set[Path]] = []

    def on_change(paths: set[Path]) -> None:
        calls.append(paths)
        if len(calls) == 1:
            raise RuntimeError("boom")

    w = LogWatcher(on_change, on_error=errors.append, fallback_interval=60.0)
    w.watch(log)
    w.start()
    try:
        append(log, b"1\n")
        wait_until(lambda: errors, message="error reported")
        assert isinstance(errors[0], RuntimeError)
        append(log, b"2\n")
        wait_until(lambda: len(calls) >= 2, message="watcher still alive")
    finally:
        w.stop()


def test_watcher_stop_is_prompt(tmp_path: Path, rec: Recorder) -> None:
    log = tmp_path / "session.log"
    log.write_bytes(b"")
    w = make_watcher(rec)  # fallback 60 s: the inner watch would block that long if not stopped
    w.watch(log)
    w.start()
    append(log, b"x\n")
    wait_until(lambda: log in rec.seen(), message="watcher running")
    t0 = time.monotonic()
    w.stop()
    assert time.monotonic() - t0 < 2.0
    assert not any(t.name == "cockpit-logwatcher" for t in threading.enumerate())
    w.stop()  # idempotent


def test_symlink_loop_is_clear_error_reported_once(tmp_path: Path, rec: Recorder) -> None:
    loop = tmp_path / "session.log"
    loop.symlink_to(loop)
    with pytest.raises(LogError):
        read_tail(loop)
    w = make_watcher(rec)
    w.watch(loop)
    w.check_now()
    w.check_now()
    assert len(rec.errors) == 1 and isinstance(rec.errors[0], LogError)
    assert "\n" not in str(rec.errors[0])


# ------------------------------------------------------------------------------ import hygiene


def test_no_textual_or_rich_imported() -> None:
    code = (
        "import sys, cockpit.core.session_log;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
