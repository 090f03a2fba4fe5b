"""The real TUI in a real terminal: ``cockpit`` runs in a tmux pane (its own tmux server, not the
agents'), driven with send-keys. Enter attaches to an agent (the TUI suspends), the keys typed go
to the agent, detaching returns to the TUI, and q quits leaving the agent running."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import cockpit
from cockpit.core.fleet import Fleet
from conftest import PY, kill_tmux_server, wait_until

pytestmark = [pytest.mark.tmux, pytest.mark.slow]
PROJECT = Path(cockpit.__file__).resolve().parent.parent


@pytest.fixture
def terminal() -> Iterator[str]:
    """A tmux server standing in for the user's terminal."""
    socket = f"cockpit-term-{uuid.uuid4().hex[:8]}"
    yield socket
    kill_tmux_server(socket)


def screen(socket: str) -> str:
    return subprocess.run(["tmux", "-L", socket, "capture-pane", "-p", "-t", "=tui:"],
                          capture_output=True, text=True).stdout


def keys(socket: str, *names: str) -> None:
    subprocess.run(["tmux", "-L", socket, "send-keys", "-t", "=tui:", *names], check=True)


def test_attach_from_the_tui_and_detach_back(fleet: Fleet, repo: Path, terminal: str) -> None:
    fleet.spawn("asker", command="echo ready-to-ask; read answer; echo got:$answer; sleep 3600")
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "TERM": "xterm-256color"}
    env.pop("TMUX", None)
    command = f"cd {repo} && {PY} -m cockpit; echo TUI-EXITED; sleep 3600"
    subprocess.run(["tmux", "-L", terminal, "new-session", "-d", "-s", "tui", "-x", "100", "-y", "30", command],
                   check=True, env=env)
    wait_until(lambda: "asker" in screen(terminal) and "ready-to-ask" in screen(terminal), message="the TUI")
    keys(terminal, "Enter")
    wait_until(lambda: "cockpit ·" not in screen(terminal) and "ready-to-ask" in screen(terminal),
               message="attached to the agent")
    attached = screen(terminal)
    keys(terminal, "yes", "Enter")
    log = fleet.layout.session_log("asker")
    wait_until(lambda: "got:yes" in log.read_text(errors="replace"), message="the agent got the answer")
    keys(terminal, "C-b", "d")  # detach the inner client: back to the TUI
    wait_until(lambda: "cockpit ·" in screen(terminal) and "got:yes" in screen(terminal), message="back in the TUI")
    keys(terminal, "q")
    wait_until(lambda: "TUI-EXITED" in screen(terminal), message="the TUI quit")
    assert fleet.agent("asker").state == "running"
    assert "Traceback" not in screen(terminal)
    assert "[asker]" in attached or "asker" in attached.splitlines()[-1], attached  # tmux status line


def test_keys_typed_fast_act_on_the_tile_just_focused(fleet: Fleet, repo: Path, terminal: str) -> None:
    """``tab d`` typed in one go must discard the tile tab moved to, never the one before it."""
    fleet.spawn("alpha", command="echo alpha-up; sleep 3600")
    fleet.spawn("beta", command="echo beta-up; sleep 3600")
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "TERM": "xterm-256color"}
    env.pop("TMUX", None)
    command = f"cd {repo} && {PY} -m cockpit; echo TUI-EXITED; sleep 3600"
    subprocess.run(["tmux", "-L", terminal, "new-session", "-d", "-s", "tui", "-x", "120", "-y", "30", command],
                   check=True, env=env)
    wait_until(lambda: "alpha-up" in screen(terminal) and "beta-up" in screen(terminal), message="the TUI")
    keys(terminal, "Tab", "d")  # one write: both keys arrive together
    wait_until(lambda: "Discard" in screen(terminal) and "?" in screen(terminal), message="the discard dialog")
    assert "Discard beta?" in screen(terminal), screen(terminal)
    keys(terminal, "Tab", "Enter")  # focus starts on Cancel: move to Discard and confirm
    wait_until(lambda: [a.name for a in fleet.agents()] == ["alpha"], message="beta discarded")
    assert fleet.agent("alpha").state == "running"
    keys(terminal, "q")
    wait_until(lambda: "TUI-EXITED" in screen(terminal), message="the TUI quit")


@pytest.mark.parametrize("term, colorterm, extra", [
    ("xterm-256color", None, []), ("xterm-256color", "truecolor", ["--no-mouse"]),
    ("screen-256color", None, []), ("tmux-256color", "truecolor", []),
    ("tmux-256color", None, ["--theme", "cockpit-light"]),
])
def test_runs_under_common_terminals(fleet: Fleet, repo: Path, terminal: str, term: str, colorterm: str | None,
                                     extra: list[str]) -> None:
    """The app inside tmux (as over SSH), under the TERM values users have, with and without
    truecolor: it draws the grid, shows the agent's log and quits cleanly."""
    fleet.spawn("shown", command="echo hello-from-shown; sleep 3600")
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    env.pop("TMUX", None)
    env.pop("COLORTERM", None)
    inner = f"TERM={term} " + (f"COLORTERM={colorterm} " if colorterm else "")
    command = f"cd {repo} && {inner}{PY} -m cockpit {' '.join(extra)}; echo TUI-EXITED-$?; sleep 3600"
    subprocess.run(["tmux", "-L", terminal, "new-session", "-d", "-s", "tui", "-x", "100", "-y", "30", command],
                   check=True, env=env)
    wait_until(lambda: "cockpit ·" in screen(terminal) and "hello-from-shown" in screen(terminal), message="the grid")
    keys(terminal, "q")
    wait_until(lambda: "TUI-EXITED-0" in screen(terminal), message="a clean quit")
    assert "Traceback" not in screen(terminal)
    assert fleet.agent("shown").state == "running"


def test_demo_opens_the_cockpit_with_the_checklist_shown(tmp_path: Path, terminal: str) -> None:
    """`cockpit demo` as a new user types it: four agents, the isolation checklist in the TUI."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "TERM": "xterm-256color"}
    env.pop("TMUX", None)
    demo = tmp_path / "demo"
    command = f"{PY} -m cockpit demo --dir {demo}; echo TUI-EXITED-$?; sleep 3600"
    subprocess.run(["tmux", "-L", terminal, "new-session", "-d", "-s", "tui", "-x", "160", "-y", "40", command],
                   check=True, env=env)
    try:
        wait_until(lambda: all(word in screen(terminal) for word in ("verified", "builder", "rogue")),
                   timeout=60, message="the demo grid with the checklist notice")
        assert "All 4 dispatches use isolation" in screen(terminal).replace("\n", " ") or "All 4" in screen(terminal)
        keys(terminal, "q")
        wait_until(lambda: "TUI-EXITED-0" in screen(terminal), message="a clean quit")
    finally:
        demo_fleet = Fleet(demo)
        demo_fleet.tmux.stop_server()
