"""Log feeds and their render thread: a quiet log renders at once, a flooding one only as
often as a tile can show it, a key holds rendering back, and the share of time is kept."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path

from cockpit.ui.feeds import FLOOD_INTERVAL, LogFeed, RenderScheduler
from conftest import wait_until


def test_a_quiet_log_renders_at_once_and_a_flooding_one_at_the_flood_interval(tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    log.write_bytes(b"")
    scheduler = RenderScheduler()
    scheduler.start()
    renders: list[float] = []
    feed = LogFeed("a", log, scheduler=scheduler)
    original = feed.flush

    def counted() -> None:  # records when each render started
        before = feed.version
        original()
        if feed.version != before:
            renders.append(feed._rendered_at)

    feed.flush = counted  # type: ignore[method-assign]
    try:
        feed.rows = 10
        with log.open("ab") as handle:
            handle.write(b"one line\n")
        written = time.monotonic()
        feed.pump()
        wait_until(lambda: feed.lines and feed.lines[-1].plain == "one line", 5, message="the line")
        assert renders[-1] - written < FLOOD_INTERVAL, "a quiet log is not held back"

        renders.clear()
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < 1.0:  # 1 s of far more lines than the tile shows
            with log.open("ab") as handle:
                handle.write(b"".join(b"flood %d\n" % (n + i) for i in range(50)))
            n += 50
            feed.pump()  # as fast as the loop goes: a flood
        wait_until(lambda: feed.lines and feed.lines[-1].plain == f"flood {n - 1}", 5, message="the last line")
        assert feed.flooding
        gaps = [b - a for a, b in pairwise(renders)]
        assert len(renders) <= 1.0 / FLOOD_INTERVAL + 3, renders
        assert gaps and min(gaps) >= FLOOD_INTERVAL * 0.9
    finally:
        scheduler.stop()


def test_a_hold_delays_the_next_batch(tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    log.write_bytes(b"")
    scheduler = RenderScheduler()
    scheduler.start()
    try:
        feed = LogFeed("a", log, scheduler=scheduler)
        scheduler.hold(0.3)
        held = time.monotonic()
        with log.open("ab") as handle:
            handle.write(b"after the key\n")
        feed.pump()
        wait_until(lambda: feed.lines and feed.lines[-1].plain == "after the key", 5, message="the line")
        assert time.monotonic() - held >= 0.25
    finally:
        scheduler.stop()


def test_a_hold_mid_batch_holds_the_rest_of_the_batch_and_other_threads(tmp_path: Path) -> None:
    """A key that comes while a batch renders stops it before its next feed, and other
    background work (the watcher's reads, the poll's git calls) waits on the same hold."""
    scheduler = RenderScheduler()
    scheduler.start()
    rendered: dict[str, float] = {}
    try:
        feeds = []
        for name in ("first", "second"):
            log = tmp_path / f"{name}.log"
            log.write_bytes(f"{name}\n".encode())
            feed = LogFeed(name, log, scheduler=scheduler)
            original = feed.flush

            def flush(feed=feed, original=original) -> None:
                original()
                rendered.setdefault(feed.name, time.monotonic())
                if feed.name == "first":
                    scheduler.hold(0.3)  # the key arrives while "first" renders
            feed.flush = flush  # type: ignore[method-assign]
            feeds.append(feed)
        for feed in feeds:
            feed._tail.read_new()  # (so that pump below sees them as changed together)
        with scheduler._wake:  # both in one batch
            for feed in feeds:
                feed._stale = True
                scheduler._pending[feed] = 0.0
            scheduler._wake.notify()
        wait_until(lambda: "second" in rendered, 5, message="the second feed rendered")
        assert rendered["second"] - rendered["first"] >= 0.25
        scheduler.hold(0.3)
        started = time.monotonic()
        scheduler.wait_while_held()
        assert time.monotonic() - started >= 0.25
        started = time.monotonic()
        scheduler.wait_while_held()  # no hold: returns at once
        assert time.monotonic() - started < 0.1
    finally:
        scheduler.stop()


def test_without_a_scheduler_pump_renders_in_the_caller(tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    log.write_bytes(b"hello\n")
    feed = LogFeed("a", log)
    assert feed.pump() and feed.lines[-1].plain == "hello"
