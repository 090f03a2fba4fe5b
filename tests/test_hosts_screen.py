"""The screen view of a remote tile: its tmux screen captured on its host (op ``capture`` of
``cockpit _remote``), against a real sshd and a real Unix user (tests/hosts_support.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_until
from hosts_support import Lab
from test_hosts import cockpit, configure, ok

# red on a line of its own, then a counter rewritten in place (\r): what a capture shows is the
# screen, colours included, not the log's lines
SCREEN_COMMAND = ("sh -c 'printf \"\\033[31mscreen-marker\\033[0m\\n\"; i=0; "
                  "while :; do printf \"\\rtick %s \" $i; i=$((i+1)); sleep 0.3; done'")


@pytest.mark.tmux
def test_the_capture_request_answers_what_the_local_screen_view_captures(repo: Path) -> None:
    """Served here without ssh: the op is the host side, and it must capture exactly what
    Fleet.screen does; a missing or invalid agent is an error of its own, not of the request."""
    from cockpit import __version__
    from cockpit.core.fleet import Fleet
    from cockpit.core.transport import PROTOCOL
    fleet = Fleet(repo)
    fleet.spawn("here", command=SCREEN_COMMAND)
    wait_until(lambda: any("screen-marker" in line for line in fleet.screen("here")), message="the marker")

    def ask(names: list) -> subprocess.CompletedProcess[str]:
        body = json.dumps({"protocol": PROTOCOL, "version": __version__, "op": "capture", "repo": str(repo),
                           "names": names})
        return subprocess.run([sys.executable, "-m", "cockpit", "_remote"], input=body, capture_output=True,
                              text=True, timeout=60)
    answer = ask(["here", "nobody", "Bad Name"])
    assert answer.returncode == 0, answer.stderr
    data = json.loads(answer.stdout)
    assert set(data["screens"]) == {"here"} and set(data["errors"]) == {"nobody", "Bad Name"}
    assert "invalid agent name" in data["errors"]["Bad Name"]
    lines = data["screens"]["here"]
    assert lines[0] == "\x1b[31mscreen-marker", lines[:2]  # escapes kept, as capture-pane -e gives them
    assert "tick " in lines[1]
    local = fleet.screen("here")
    assert local[0] == lines[0] and len(local) == len(lines)
    bad = ask("here")  # type: ignore[arg-type]
    assert bad.returncode != 0 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == ["cockpit: capture: names must be a list of strings"]


@pytest.mark.ssh
@pytest.mark.tmux
async def test_a_remote_tiles_screen_view_follows_its_host_and_survives_the_host_dropping(
        hosts: Lab, repo: Path, tmp_path: Path) -> None:
    from cockpit.core import remote_screens
    from cockpit.core.fleet import Fleet
    from cockpit.ui.app import make_app
    from cockpit.ui.zoom import ZoomScreen
    from ui_support import focus, tile_text, wait_for
    (big,) = hosts.up("big")
    hosts.install_cockpit(big)
    configure(repo, hosts, big)
    ok(cockpit(repo, "spawn", "rb", "--command", SCREEN_COMMAND, "--host", "big"))
    app = make_app(Fleet(repo), clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")

    def ticks() -> list[int]:
        return [int(word) for line in tile_text(app, "rb").splitlines() if line.startswith("tick ")
                for word in line.split()[1:2]]
    async with app.run_test(size=(160, 48)) as pilot:
        tile = await focus(pilot, app, "rb")
        await wait_for(pilot, lambda: tile.agent.state == "running", timeout=30, message="rb running")
        await pilot.press("s")
        await wait_for(pilot, lambda: "screen-marker" in tile_text(app, "rb"), timeout=30,
                       message="rb's screen captured on big")
        assert tile.view == "screen" and not app.reported, app.reported
        # the same renderer as a local screen: the red is a style, not escape characters
        marker = next(line for line in tile.feed.screen or [] if "screen-marker" in line.plain)
        assert marker.plain == "screen-marker" and "red" in str(marker.spans[0].style)
        # the counter moves on: the screen as it is now, one line (the log would show the same)
        first = ticks()
        assert len(first) == 1, tile_text(app, "rb")
        await wait_for(pilot, lambda: ticks() and ticks()[0] > first[0], timeout=30, message="a later capture")
        # one request per host at most every INTERVAL_S, never more
        start, asked = time.monotonic(), app.remote_screens.requests
        await wait_for(pilot, lambda: app.remote_screens.requests >= asked + 2, timeout=30, message="two more")
        took = time.monotonic() - start
        assert app.remote_screens.requests - asked <= took / remote_screens.INTERVAL_S + 1
        # the zoomed view's screen view is the same capture
        await pilot.press("z")
        zoom = await wait_for(pilot, lambda: isinstance(app.screen, ZoomScreen) and app.screen, message="zoom")
        body = await wait_for(pilot, lambda: zoom.query("#zoom-body") and zoom.query_one("#zoom-body"),
                              message="the zoomed body")
        await wait_for(pilot, lambda: "screen-marker" in str(body.content) and "tick " in str(body.content),
                       message="the capture in the zoomed view")
        seen = str(body.content)
        await wait_for(pilot, lambda: str(body.content) != seen, timeout=30, message="the zoomed screen to move on")
        await pilot.press("z")
        await wait_for(pilot, lambda: not isinstance(app.screen, ZoomScreen), message="back to the grid")
        # the host drops: the tile keeps its last capture and says why
        big.stop_sshd()
        await wait_for(pilot, lambda: "unreachable" in (tile.feed.screen_note or ""), timeout=60,
                       message="the tile to say its host is unreachable")
        text = tile_text(app, "rb")
        assert "screen-marker" in text and "tick " in text, text
        assert text.splitlines()[-1].startswith("(host big unreachable: ") and "the last capture above" in text
        assert app.is_running and not any("Traceback" in r for r in app.reported)
        frozen = ticks()
        # back: captures resume, the note goes
        big.start_sshd()
        await wait_for(pilot, lambda: tile.feed.screen_note is None and ticks() and ticks()[0] > frozen[0],
                       timeout=90, message="captures again once big answers")
        assert "unreachable" not in tile_text(app, "rb")
        # back to the log view: no more captures of big
        await pilot.press("s")
        await wait_for(pilot, lambda: not app.remote_screens.asking, message="the last capture to end")
        asked = app.remote_screens.requests
        until = time.monotonic() + 2 * remote_screens.INTERVAL_S + 1
        await wait_for(pilot, lambda: time.monotonic() > until, message="two intervals")
        assert app.remote_screens.requests == asked


def test_the_keys_say_why_a_remote_screen_cannot_be_shown() -> None:
    """Pure rule (no host needed): a remote agent that runs may be shown; one whose host does not
    answer says so (not "r respawns it": it may well run on); one that ended has no terminal."""
    from dataclasses import replace

    from cockpit.core.hosts import unknown_agent
    from cockpit.ui.verbs import unavailable
    gone = unknown_agent("rb", "big", "2026-12-05T12:03:00+00:00")
    why = unavailable(gone, "toggle_screen")
    assert why is not None and why.startswith("rb cannot be reached now: host big unreachable since ")
    assert unavailable(gone, "attach") == why
    running = replace(gone, state="running", process_state="running", reason=None)
    assert unavailable(running, "toggle_screen") is None and unavailable(running, "attach") is None
    ended = replace(gone, state="killed", process_state="killed", reason=None)
    assert unavailable(ended, "toggle_screen") == "rb has no terminal any more (killed): r respawns it"
