"""Attention in the TUI: activity on tiles and in the header, `w` focuses who needs the user,
and the watcher's notifications are shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core.fleet import Fleet
from cockpit.ui.app import make_app
from conftest import PY, sleeper
from ui_support import focus, tiles, wait_for

pytestmark = pytest.mark.tmux


def app_for(fleet: Fleet, tmp_path: Path, **kwargs):
    return make_app(fleet, include_user_themes=False, user_config=tmp_path / "none.toml", **kwargs)


async def test_waiting_agent_shows_and_w_focuses_it(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    (repo / "cockpit.toml").write_text("[cockpit]\nidle_after = 1\nstall_after = 600\nnotify_interval = 1\n")
    fleet.spawn("busy", command=sleeper("busy"))
    # The asker asks only once the app is up and its notifications are recorded: a watcher that
    # noticed the question before the app started following the event log would notify no one
    # here (seen once in CI: the notification recorded 150 ms after the spawn).
    ask = tmp_path / "ask-now"
    fleet.spawn("asker", command=f"while [ ! -e {ask} ]; do sleep 0.05; done; {PY} -c \"input('proceed? ')\"; "
                                 "sleep 3600")
    app = app_for(fleet, tmp_path, poll_interval=0.2)
    shown: list[tuple[str, str]] = []
    async with app.run_test(size=(160, 30)) as pilot:
        original = app.notify

        def record(message, *args, title="", **kwargs):
            shown.append((str(title), str(message)))
            return original(message, *args, title=title, **kwargs)

        app.notify = record  # type: ignore[method-assign]
        await wait_for(pilot, lambda: "asker" in tiles(app) and "busy" in tiles(app), message="tiles")
        ask.touch()
        await wait_for(pilot, lambda: "waiting" in str(tiles(app)["asker"].border_subtitle), timeout=20,
                       message="asker shown waiting")
        await wait_for(pilot, lambda: "1 waiting" in str(app.query_one("#header").content), message="header count")
        await focus(pilot, app, "busy")
        await pilot.press("w")
        await wait_for(pilot, lambda: app.focused is tiles(app)["asker"], message="w focuses the waiting agent")
        await wait_for(pilot, lambda: any("asker" in t + m and "waiting" in (t + m).lower() for t, m in shown),
                       timeout=60, message="the watcher's notification shown")
