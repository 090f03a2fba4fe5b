"""Attach from a real terminal (an outer tmux pane), and the demo fleet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cockpit.demo import create_demo
from conftest import kill_tmux_server, wait_until

pytestmark = pytest.mark.tmux


def test_attach_and_detach_return_to_the_shell(repo: Path) -> None:
    env = {**os.environ}
    subprocess.run([sys.executable, "-m", "cockpit", "spawn", "att", "--command",
                    "echo attached-agent-output; cat"], cwd=repo, check=True, env=env)
    outer = f"outer-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-L", outer, "-f", "/dev/null"]
    try:
        subprocess.run(tmux + ["new-session", "-d", "-x", "120", "-y", "30", "-c", str(repo), "sh"], check=True)

        def screen() -> str:
            return subprocess.run(tmux + ["capture-pane", "-p"], capture_output=True, text=True).stdout

        subprocess.run(tmux + ["send-keys", f"{sys.executable} -m cockpit attach att; echo back-in-shell-$?", "Enter"],
                       check=True)
        wait_until(lambda: "attached-agent-output" in screen(), message="agent screen shown")
        subprocess.run(tmux + ["send-keys", "typed-through", "Enter"], check=True)
        wait_until(lambda: screen().count("typed-through") >= 2, message="keys reach the agent (cat echoes)")
        subprocess.run(tmux + ["send-keys", "C-b", "d"], check=True)
        wait_until(lambda: "back-in-shell-0" in screen(), message="detach returns to the shell")
    finally:
        kill_tmux_server(outer)


def test_demo_fleet_behaves_as_described(tmp_path: Path) -> None:
    fleet = create_demo(tmp_path / "demo")
    names = [a.name for a in fleet.agents()]
    assert names == ["asker", "builder", "rogue", "tester"]
    wait_until(lambda: fleet.agent("tester").state == "failed", timeout=60, message="tester fails")
    rogue_wt = Path(fleet.agent("rogue").worktree)
    wait_until(lambda: "outside its scope" in (rogue_wt / "README.md").read_text(), timeout=60, message="rogue edits")
    asker_log = Path(fleet.agent("asker").log)
    wait_until(lambda: b"[y/N]" in asker_log.read_bytes(), timeout=60, message="asker asks")
    fleet.tmux.send_keys("asker", "y", "Enter")
    wait_until(lambda: b"applying" in asker_log.read_bytes(), timeout=60, message="asker answered")
    builder_log = Path(fleet.agent("builder").log)
    wait_until(lambda: builder_log.stat().st_size > 200, message="builder chats")
    # the builder's worktree was set up: a .env copied by .worktreeinclude, a setup step, a port
    builder = fleet.agent("builder")
    assert (Path(builder.worktree) / ".env").is_file() and builder.included == 1 and len(builder.ports) == 1
    wait_until(lambda: b"preview on port" in builder_log.read_bytes(), timeout=30, message="builder after setup")
    log = builder_log.read_bytes()
    assert b"[cockpit] setup 1/1" in log and b".env copied from the main checkout" in log
    assert log.index(b"setup done") < log.index(b"preview on port")
    assert fleet.agent("asker").included == 1 and fleet.agent("asker").ports == []  # .env for all; setup, port: builder
    fleet.respawn("tester")
    wait_until(lambda: b"passed" in Path(fleet.agent("tester").log).read_bytes(), timeout=60,
               message="attempt 2 passes")
    assert fleet.agent("tester").state == "running" and fleet.agent("tester").attempt == 2


def test_demo_cli_without_tui(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "cockpit", "demo", "--dir", str(tmp_path / "d"), "--no-tui"],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "builder" in result.stdout and "demo repository:" in result.stdout
    listing = subprocess.run([sys.executable, "-m", "cockpit", "-C", str(tmp_path / "d"), "ls", "--json"],
                             capture_output=True, text=True, check=True).stdout
    assert len(json.loads(listing)) == 4
    again = subprocess.run([sys.executable, "-m", "cockpit", "demo", "--dir", str(tmp_path / "d"), "--no-tui"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert again.returncode == 1 and "not empty" in again.stderr


def test_attach_inside_the_users_tmux_detaches_the_agent_not_the_user(repo: Path) -> None:
    """cockpit run inside the user's own tmux: the agent opens in a popup of it, its title and
    status line say C-b d, and C-b d detaches the agent's client — the user's stays attached."""
    subprocess.run([sys.executable, "-m", "cockpit", "spawn", "docs",
                    "--command", "while :; do echo tick; sleep 0.3; done"], cwd=repo, check=True)
    fleet_socket = json.loads((repo / ".cockpit" / "fleet.json").read_text())["socket"]
    user = f"/tmp/cockpit-test-user-{uuid.uuid4().hex[:8]}"  # the user's own tmux server
    terminal = user + "-term"  # the terminal emulator the user's tmux client runs in
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}

    def clients(socket: str) -> list[str]:
        return subprocess.run(["tmux", "-S", socket, "list-clients", "-F", "#{session_name}"],
                              capture_output=True, text=True).stdout.split()

    def screen() -> str:
        return subprocess.run(["tmux", "-S", terminal, "capture-pane", "-p", "-t", "=term:"],
                              capture_output=True, text=True).stdout

    try:
        subprocess.run(["tmux", "-S", user, "-f", "/dev/null", "new-session", "-d", "-s", "work",
                        "-c", str(repo), "sh"], check=True, env=env)
        subprocess.run(["tmux", "-S", terminal, "-f", "/dev/null", "new-session", "-d", "-s", "term", "-x", "110",
                        "-y", "30", f"tmux -S {user} attach -t =work"], check=True, env=env)
        wait_until(lambda: clients(user) == ["work"], message="the user's client")
        subprocess.run(["tmux", "-S", user, "send-keys", "-t", "=work:",
                        f"{sys.executable} -m cockpit attach docs; echo ATTACH-EXIT-$?", "Enter"], check=True)
        wait_until(lambda: clients(fleet_socket) == ["docs"], message="the agent's client, in a popup")
        wait_until(lambda: "cockpit: docs · detach: C-b d" in screen() and "tick" in screen(), message="the popup")
        subprocess.run(["tmux", "-S", terminal, "send-keys", "-t", "=term:", "C-b", "d"], check=True)
        wait_until(lambda: clients(fleet_socket) == [], message="the agent's client detached")
        wait_until(lambda: "ATTACH-EXIT-0" in screen(), message="back at the user's shell")
        assert clients(user) == ["work"]  # the user's own session is still attached
    finally:
        for socket in (terminal, user):
            kill_tmux_server(socket)
