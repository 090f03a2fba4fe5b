"""Write SVG screenshots of the real app on the demo fleet to ``screenshots/``.

    python scripts/screenshots.py [--out DIR] [--size 120x36]

Creates a throw-away demo repository (``cockpit.demo``) on a private tmux socket, lets the
agents run for a few seconds, then drives the app with Pilot through: the grid, a zoomed tile, the
discard dialog, the list layout, help, and the light theme. The demo's tmux server is killed afterwards. The app
comes from :func:`cockpit.ui.app.make_app`, the same factory the CLI uses.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's cockpit, not an installed one

from cockpit.core.fleet import Fleet  # noqa: E402
from cockpit.demo import create_demo  # noqa: E402
from cockpit.ui.app import CockpitApp, make_app  # noqa: E402
from cockpit.ui.dialogs import DiscardDialog  # noqa: E402
from cockpit.ui.tiles import TileGrid  # noqa: E402
from cockpit.ui.zoom import ZoomScreen  # noqa: E402


async def _until(pilot, condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the demo to show")
        await pilot.pause(0.05)


def _ready(app: CockpitApp) -> bool:
    tiles = app.query_one(TileGrid).tiles
    return len(tiles) == 4 and all(t.feed.lines for t in tiles)


async def _shoot(fleet: Fleet, out: Path, size: tuple[int, int], theme: str | None, shots: list[str]) -> None:
    app = make_app(fleet, theme, include_user_themes=False, user_config=out / ".no-user-config.toml")
    async with app.run_test(size=size) as pilot:
        await _until(pilot, lambda: _ready(app))
        await pilot.pause(0.5)
        for shot in shots:
            if shot == "grid" or shot == "light":
                app.save_screenshot(f"{shot}.svg", str(out))
            elif shot == "zoom":
                builder = next(t for t in app.query_one(TileGrid).tiles if t.agent.name == "builder")
                builder.focus()
                await pilot.press("z")
                await _until(pilot, lambda: isinstance(app.screen, ZoomScreen) and bool(app.screen.view.texts))
                await pilot.press("slash", *"linking", "enter")
                await _until(pilot, lambda: app.screen.search is not None and app.screen.search.done)
                await pilot.pause(0.3)
                app.save_screenshot("zoom.svg", str(out))
                await pilot.press("escape")
            elif shot == "discard":
                rogue = next(t for t in app.query_one(TileGrid).tiles if t.agent.name == "rogue")
                rogue.focus()
                await pilot.press("d")
                await _until(pilot, lambda: isinstance(app.screen, DiscardDialog))
                await pilot.pause(0.2)
                app.save_screenshot("discard.svg", str(out))
                await pilot.press("escape")
            elif shot == "list":
                await pilot.press("t")
                await _until(pilot, lambda: app.layout_mode == "list" and app.preview is not None)
                await pilot.press("w")  # the first agent needing the user
                await pilot.pause(0.5)
                app.save_screenshot("list.svg", str(out))
                await pilot.press("t")
            elif shot == "help":
                await pilot.press("question_mark")
                await pilot.pause(0.3)
                app.save_screenshot("help.svg", str(out))
                await pilot.press("escape")
            print(f"wrote {out / (shot + '.svg')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--size", default="120x36", help="terminal size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    if shutil.which("tmux") is None or shutil.which("git") is None:
        print("screenshots need git and tmux", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.pop("TMUX", None)
    with tempfile.TemporaryDirectory(prefix="cockpit-shots-") as tmp:
        fleet = None
        try:
            fleet = create_demo(Path(tmp) / "demo", spawn=True)
            time.sleep(6)  # let the scripted agents reach their interesting moments
            asyncio.run(_shoot(fleet, args.out, (width, height), None, ["grid", "zoom", "discard", "list", "help"]))
            asyncio.run(_shoot(fleet, args.out, (width, height), "cockpit-light", ["light"]))
        finally:
            if fleet is not None:
                fleet.tmux.stop_server()
    return 0


if __name__ == "__main__":
    sys.exit(main())
