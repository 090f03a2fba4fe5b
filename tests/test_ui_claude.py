"""The TUI with a claude-code agent (the stand-in of tests/claude_support.py firing Claude Code's
hook inputs through cockpit's recorder): the tile says why the agent waits and what it costs, the
header counts who needs the user and sums the tokens, and the respawn dialog can keep the
worktree with a new conversation."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_support import SID, Claude, assistant_line, user_line
from cockpit.ui.app import FleetHeader, make_app
from cockpit.ui.dialogs import RespawnDialog
from conftest import wait_until
from ui_support import focus, tiles, wait_for

pytestmark = pytest.mark.tmux


async def test_the_tile_and_header_say_why_it_waits_and_what_it_costs(repo: Path, tmp_path: Path) -> None:
    claude = Claude(repo, tmp_path)
    claude.fleet.spawn("cc")
    wait_until(lambda: len(claude.starts()) == 1, message="claude started")
    claude.transcript.write_text(assistant_line("m1", 120_000, 4_000, cache_read=30_000, cache_creation=5_000))
    claude.fire("SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest")
    app = make_app(claude.fleet, include_user_themes=False, user_config=tmp_path / "none.toml")
    async with app.run_test(size=(160, 40)) as pilot:
        tile = await wait_for(pilot, lambda: tiles(app).get("cc"), message="the tile")
        await wait_for(pilot, lambda: "waiting: permission: Bash: touch" in str(tile.border_subtitle),
                       message="the reason on the tile")
        # (the usage comes from the transcript the hooks name, read in a poll of its own: it may follow)
        await wait_for(pilot, lambda: "129k tokens, context 155k" in str(tile.border_subtitle),
                       message="the tokens on the tile")
        assert "waiting: permission: Bash: touch" in str(tile.border_subtitle)
        header = app.query_one(FleetHeader)
        await wait_for(pilot, lambda: "1 waiting" in header._shown and "Σ 129k tokens" in header._shown,
                       message="the header's count and sum")


async def test_respawn_dialog_keeps_the_worktree_with_a_new_conversation(repo: Path, tmp_path: Path) -> None:
    claude = Claude(repo, tmp_path)
    claude.fleet.spawn("cc")
    wait_until(lambda: len(claude.starts()) == 1, message="claude started")
    claude.fire("SessionStart", "Stop")
    claude.transcript.write_text(user_line())
    settings = ["--settings", str(claude.settings)]
    app = make_app(claude.fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")
    async with app.run_test(size=(160, 40)) as pilot:
        tile = await focus(pilot, app, "cc")
        await wait_for(pilot, lambda: tile.agent.session_id == SID, message="the session known")
        await pilot.press("r")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, RespawnDialog) and app.screen)
        dialog.query_one("#keep-new").value = True
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: len(claude.starts()) == 2, message="restarted")
        assert claude.starts()[1] == ["fix it", *settings]  # a new conversation, in the same worktree
        await pilot.press("r")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, RespawnDialog) and app.screen)
        dialog.query_one("#keep").value = True
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: len(claude.starts()) == 3, message="restarted again")
        assert claude.starts()[2] == ["--resume", SID, *settings]
