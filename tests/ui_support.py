"""Helpers for the UI tests: polling waits inside Pilot, and a deterministic fleet."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from cockpit.core.fleet import Fleet
from cockpit.ui.app import CockpitApp
from cockpit.ui.tiles import AgentTile, TileGrid
from conftest import wait_until


async def wait_for(pilot: Pilot, condition: Callable[[], object], timeout: float = 60.0,
                   message: str = "condition") -> object:
    """Let the app run until ``condition()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await pilot.pause(0.05)


def tiles(app: CockpitApp) -> dict[str, AgentTile]:
    return {tile.agent.name: tile for tile in app.query_one(TileGrid).tiles}


def screen_rows(app: CockpitApp) -> list[str]:
    """The terminal as the user sees it now, one string per row: read back from the app's own
    screenshot (what the compositor last drew), not from widget state."""
    import html
    import re
    svg = app.export_screenshot()
    rows: dict[int, dict[int, str]] = {}
    for x, y, _length, text in re.findall(
            r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)" textLength="([\d.]+)"[^>]*>(.*?)</text>', svg, re.S):
        row = rows.setdefault(round((float(y) - 20) / 24.4), {})
        column = round(float(x) / 12.2)
        for i, char in enumerate(html.unescape(text).replace("\xa0", " ").rstrip("\n")):
            row[column + i] = char
    width, height = app.size
    return ["".join(rows.get(y, {}).get(x, " ") for x in range(width)) for y in range(height)]


def tile_text(app: CockpitApp, name: str) -> str:
    """What the tile's body shows right now (plain text)."""
    tile = tiles(app).get(name)
    return "\n".join(line.plain for line in tile.body_lines()) if tile else ""


async def focus(pilot: Pilot, app: CockpitApp, name: str) -> AgentTile:
    """Wait for ``name``'s tile and focus it."""
    tile = await wait_for(pilot, lambda: tiles(app).get(name), message=f"tile {name}")
    tile.focus()
    await wait_for(pilot, lambda: app.focused is tile, message=f"focus on {name}")
    return tile


def agent_state(app: CockpitApp, name: str) -> str | None:
    tile = tiles(app).get(name)
    return tile.agent.state if tile else None


FIXED = {
    "alpha": r"printf '\033[1malpha\033[0m: implementing the login form\n\033[32m✔\033[0m form renders\n"
             r"\033[32m✔\033[0m validation\n\033[33m…\033[0m waiting for the API\n'; sleep 3600",
    "beta": r"printf 'beta: refactoring the session store\nstep 1/3 \033[36mextract interface\033[0m\n"
            r"step 2/3 \033[36mmove callers\033[0m\n'; sleep 3600",
    "gamma": r"printf 'gamma: running the test-suite\n  test_login      \033[32mok\033[0m\n"
             r"  test_refresh    \033[31mFAIL\033[0m\n1 failed\n'; exit 1",
}
"""Agents whose logs never change after they start: for snapshots."""


def spawn_fixed(fleet: Fleet) -> None:
    """Spawn the deterministic agents and wait until each has written all it will write."""
    for name, command in FIXED.items():
        fleet.spawn(name, command=command, task=f"task of {name}")
    for name, end in (("alpha", "waiting for the API"), ("beta", "move callers"), ("gamma", "exited with status")):
        log = fleet.layout.session_log(name)
        wait_until(lambda: log.exists() and end in log.read_text(errors="replace"), message=f"{name}'s log")
    wait_until(lambda: {a.name: a.state for a in fleet.agents()}.get("gamma") == "failed", message="gamma failed")


def fixed_ready(app: CockpitApp) -> bool:
    """Every fixed agent has its tile, its log lines, its diff summary and its final state."""
    shown = tiles(app)
    return (set(shown) == set(FIXED) and all(t.feed.lines and t.diff is not None for t in shown.values())
            and shown["gamma"].agent.state == "failed" and "exited with status" in tile_text(app, "gamma"))


def log_path(fleet: Fleet, name: str) -> Path:
    return fleet.layout.session_log(name)


def tile_subtitle(app: CockpitApp, name: str) -> str:
    """The tile's status line (its border subtitle), its markup tags removed."""
    import re
    tile = tiles(app).get(name)
    return re.sub(r"(?<!\\)\[[^\]]*\]", "", str(tile.border_subtitle or "")) if tile else ""


WAITING = ("a7", "a30", "a52")
"""In a fleet of :func:`spawn_many`: agents that wait for an answer on their terminal."""
FAILING = ("a12", "a41")
"""... and agents that fail at once."""


def many_command(name: str) -> str:
    """A deterministic agent of :func:`spawn_many`: one or two lines, then it waits, fails or sleeps."""
    number = int(name[1:])
    if name in WAITING:
        return rf"printf '{name}: \033[1mshall I delete the fixtures?\033[0m [y/N] '; read answer; sleep 3600"
    if name in FAILING:
        return rf"printf '{name}: running the tests\n\033[31mFAIL\033[0m test_{number}\n'; exit 1"
    return rf"printf '{name}: step {number % 5 + 1}/5 \033[36mrefactoring module_{number}\033[0m\n'; sleep 3600"


def spawn_many(fleet: Fleet, count: int = 64) -> list[str]:
    """Spawn ``count`` deterministic agents ``a1`` … (see :func:`many_command`), with activity
    timings so long that the sleeping ones stay ``working`` for the length of a test; wait until
    each has written all it will write and the waiting and failing ones got there."""
    (fleet.root / "cockpit.toml").write_text("[cockpit]\nidle_after = 100000\nstall_after = 100000\n")
    names = [f"a{i}" for i in range(1, count + 1)]
    for name in names:
        fleet.spawn(name, command=many_command(name))
    for name in names:
        log = fleet.layout.session_log(name)
        end = "[y/N]" if name in WAITING else ("FAIL" if name in FAILING else "refactoring")
        wait_until(lambda: log.exists() and end in log.read_text(errors="replace"), message=f"{name}'s log")

    def settled() -> bool:
        agents = {a.name: a for a in fleet.agents()}
        return (all(agents[n].activity == "waiting" for n in WAITING if n in agents)
                and all(agents[n].state == "failed" for n in FAILING if n in agents))

    wait_until(settled, timeout=60, message="waiting and failing agents settled")
    return names


def many_fleet(base: Path, count: int = 64) -> Fleet:
    """A repository under ``base`` with :func:`spawn_many`'s fleet (for a module-scoped fixture:
    spawning 64 agents is the slow part; ``conftest.stop_fleets_under(base)`` ends it)."""
    from conftest import git
    root = base / "repo"
    root.mkdir()
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "config", "user.name", "test")
    git(root, "config", "user.email", "test@example.invalid")
    (root / "README.md").write_text("hello\n")
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "initial")
    fleet = Fleet(root)
    spawn_many(fleet, count)
    return fleet


def many_ready(app: CockpitApp, count: int = 64) -> bool:
    """Every agent of :func:`many_fleet` is shown with its diff summary and its log lines."""
    return (len(app.agents) == count and len(app.list_diffs) == count
            and all(d is not None for d in app.list_diffs.values())
            and len(app.live.feeds) == count and all(f.lines for f in app.live.feeds.values()))
