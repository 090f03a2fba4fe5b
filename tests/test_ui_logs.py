"""Log tiles: appended lines appear, truncated and re-created logs keep showing new lines, and a
huge log opens at once with bounded memory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cockpit.core.fleet import Fleet
from cockpit.ui.app import make_app
from cockpit.ui.feeds import HISTORY, TILE_LINES, LogFeed
from ui_support import tile_text, tiles, wait_for


def app_for(fleet: Fleet, tmp_path: Path):
    return make_app(fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")


@pytest.mark.tmux
async def test_appended_truncated_and_recreated_logs_show_new_lines(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("quiet", command="echo started-quiet; sleep 3600")
    log = fleet.layout.session_log("quiet")
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "started-quiet" in tile_text(app, "quiet"), message="first output")
        with log.open("ab") as handle:
            handle.write(b"\x1b[32mappended line\x1b[0m\n")
        await wait_for(pilot, lambda: "appended line" in tile_text(app, "quiet"), message="appended line")
        tile = tiles(app)["quiet"]
        assert any(span.style for line in tile.feed.lines for span in line.spans), "colours are kept"

        with log.open("wb") as handle:  # truncate in place
            handle.write(b"after truncation\n")
        await wait_for(pilot, lambda: "after truncation" in tile_text(app, "quiet"), message="after truncation")
        assert "appended line" not in tile_text(app, "quiet")
        with log.open("ab") as handle:
            handle.write(b"more after truncation\n")
        await wait_for(pilot, lambda: "more after truncation" in tile_text(app, "quiet"))

        os.remove(log)  # rotate: a new file (new inode) at the same path
        log.write_bytes(b"re-created file\n")
        await wait_for(pilot, lambda: "re-created file" in tile_text(app, "quiet"), message="re-created log")
        with log.open("ab") as handle:
            handle.write(b"progress 10%\rprogress 100%\n")
        await wait_for(pilot, lambda: "progress 100%" in tile_text(app, "quiet"))
        assert "progress 10%" not in tile_text(app, "quiet"), "\\r lines collapse"


def test_a_huge_log_opens_at_once_and_stays_bounded(tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    with log.open("wb") as handle:  # 1 GiB, sparse, then real lines at the end
        handle.truncate(1 << 30)
        handle.seek(1 << 30)
        handle.write(b"".join(b"line %d\n" % i for i in range(5000)))
    feed = LogFeed("big", log)
    started = time.monotonic()
    assert feed.pump()
    assert time.monotonic() - started < 3.0
    assert feed.lines[-1].plain == "line 4999"
    assert len(feed.lines) <= TILE_LINES
    with log.open("ab") as handle:
        handle.write(b"".join(b"more %d\n" % i for i in range(HISTORY * 2)))
    assert feed.pump()
    assert feed.lines[-1].plain == f"more {HISTORY * 2 - 1}"
    assert len(feed.all_lines()) <= HISTORY + 100  # the history plus one emulated screen


def test_an_unreadable_log_is_reported_in_the_tile_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "session.log"
    path.mkdir()
    feed = LogFeed("odd", path)
    assert feed.pump()
    assert feed.error and "not a regular file" in feed.error
