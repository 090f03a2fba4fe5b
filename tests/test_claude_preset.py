"""The claude-code preset end to end with a stand-in ``claude`` (tests/claude_support.py) that fires
Claude Code's documented hook inputs through the very settings file cockpit wrote, so the real
recorder, the real watcher and the real CLI see them: activity with a reason, stale hook state
against a dead or restarted process, resuming the conversation, usage and the token budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from claude_support import SID, Claude, assistant_line, user_line
from cockpit.core.watcher import Watcher
from conftest import wait_until

pytestmark = pytest.mark.tmux


def cockpit(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=repo, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


@pytest.fixture
def claude(repo: Path, tmp_path: Path) -> Claude:
    return Claude(repo, tmp_path)


def test_hooks_say_what_the_agent_does_and_why_it_waits(repo: Path, tmp_path: Path) -> None:
    claude = Claude(repo, tmp_path, fleet_keys="notify_interval = 0.001")  # every wait notified, none merged
    fleet = claude.fleet
    fleet.spawn("cc")
    wait_until(lambda: claude.starts() == [["fix it", "--settings", str(claude.settings)]], message="claude started")
    claude.fire("SessionStart", "UserPromptSubmit", "PreToolUse")
    wait_until(lambda: claude.activity() == ("working", "Bash: touch created_by_agent.txt"), message="working")
    claude.fire("PermissionRequest")
    wait_until(lambda: claude.activity() == ("waiting", "permission: Bash: touch created_by_agent.txt"),
               message="waiting for a permission")
    listed = {a["name"]: a for a in json.loads(cockpit(claude.repo, "ls", "--json").stdout)}["cc"]
    assert (listed["activity"], listed["activity_reason"]) == ("waiting",
                                                               "permission: Bash: touch created_by_agent.txt")
    assert listed["session_id"] == SID
    assert cockpit(claude.repo, "wait", "cc", "--for", "waiting", "--timeout", "5").returncode == 0
    table = cockpit(claude.repo, "ls").stdout
    assert "waiting: permission: Bash: touch" in table

    def watched() -> list[tuple[str, str | None]]:  # what the watcher recorded, with the reason
        return [(e.data.get("activity"), e.data.get("reason")) for e in fleet.events.all()
                if e.type == "activity" and e.agent == "cc"]
    wait_until(lambda: ("waiting", "permission: Bash: touch created_by_agent.txt") in watched(),
               message="the watcher recorded the wait")
    claude.fire("Notification-permission", "PostToolUse")
    wait_until(lambda: claude.activity() == ("working", None), message="working again once answered")
    claude.fire("Stop")
    wait_until(lambda: claude.activity() == ("waiting", "done"), message="done: at its prompt")

    wait_until(lambda: ("waiting", "done") in watched(), message="the watcher saw the turn end")
    notes = [e.data["note"] for e in fleet.events.all() if e.type == "notification"]
    assert any(n.get("reason") == "permission: Bash: touch created_by_agent.txt" for n in notes)

    # the program ends: the last hook said "waiting", the dead process wins
    claude.script.write_text(claude.script.read_text() + "exit\n")
    wait_until(lambda: fleet.agent("cc").state == "exited", message="exited")
    assert claude.activity() == (None, None)


def test_a_killed_program_and_a_restarted_one_do_not_inherit_the_hooks_word(claude: Claude) -> None:
    fleet = claude.fleet
    fleet.spawn("cc")
    wait_until(lambda: len(claude.starts()) == 1, message="claude started")
    claude.fire("SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest")
    wait_until(lambda: claude.activity()[0] == "waiting", message="waiting")
    program = json.loads(claude.hooks.read_text().splitlines()[-1])["pid"]
    os.kill(program, 9)  # a crash while waiting
    wait_until(lambda: fleet.agent("cc").state == "failed", message="the crash recorded")
    assert claude.activity() == (None, None)
    claude.script.write_text("")  # the next program fires nothing
    fleet.respawn("cc", keep=True)  # a new process; the file still ends with the old "waiting"
    wait_until(lambda: len(claude.starts()) == 2, message="claude restarted")
    wait_until(lambda: claude.activity() == ("idle", None), message="the silence clock, not the stale hook")


def test_respawn_keep_resumes_the_conversation_and_fresh_starts_a_new_one(claude: Claude) -> None:
    fleet, repo = claude.fleet, claude.repo
    fleet.spawn("cc")
    wait_until(lambda: len(claude.starts()) == 1, message="claude started")
    settings = ["--settings", str(claude.settings)]
    claude.fire("SessionStart", "UserPromptSubmit", "Stop")
    claude.transcript.write_text(user_line())  # Claude Code writes its transcript
    result = cockpit(repo, "respawn", "cc", "--keep")
    assert result.returncode == 0, result.stderr
    assert f"resumed its conversation {SID}" in result.stdout
    wait_until(lambda: len(claude.starts()) == 2, message="restarted")
    assert claude.starts()[1] == ["--resume", SID, *settings]  # no task: it is in the conversation
    assert cockpit(repo, "respawn", "cc", "--keep", "--fresh").returncode == 0
    wait_until(lambda: len(claude.starts()) == 3, message="restarted afresh")
    assert claude.starts()[2] == ["fix it", *settings]
    refused = cockpit(repo, "respawn", "cc", "--fresh")
    assert refused.returncode == 2 and "--fresh goes with --keep" in refused.stderr

    # a crash, a reboot, `cockpit down`: `up` and `respawn --keep` continue where it was
    assert cockpit(repo, "down").returncode == 0
    assert cockpit(repo, "up", "--no-tui").returncode == 0
    wait_until(lambda: len(claude.starts()) == 4, message="up restarted it")
    assert claude.starts()[3] == ["--resume", SID, *settings]

    # the same after discard and restore
    assert cockpit(repo, "discard", "cc", "--yes").returncode == 0
    assert cockpit(repo, "restore", "cc").returncode == 0
    assert cockpit(repo, "respawn", "cc", "--keep").returncode == 0
    wait_until(lambda: len(claude.starts()) == 5, message="restarted after restore")
    assert claude.starts()[4] == ["--resume", SID, *settings]

    # a conversation whose transcript is gone cannot be resumed (claude would exit at once): a new one
    claude.transcript.unlink()
    assert cockpit(repo, "respawn", "cc", "--keep").returncode == 0
    wait_until(lambda: len(claude.starts()) == 6, message="restarted without its transcript")
    assert claude.starts()[5] == ["fix it", *settings]

    # a replan (a new task) starts a new conversation with it
    claude.transcript.write_text(user_line())
    assert cockpit(repo, "respawn", "cc", "--keep", "--task", "now this").returncode == 0
    wait_until(lambda: len(claude.starts()) == 7, message="restarted with a new task")
    assert claude.starts()[6] == ["now this", *settings]


def test_a_hook_line_cannot_put_anything_but_a_session_id_on_the_command_line(claude: Claude) -> None:
    fleet = claude.fleet
    fleet.spawn("cc")
    wait_until(lambda: len(claude.starts()) == 1, message="claude started")
    claude.transcript.write_text(user_line())
    with claude.hooks.open("a") as handle:  # the agent can write its own hooks file
        handle.write(json.dumps({"t": 1.0, "e": "SessionStart", "sid": "x; touch /tmp/pwned",
                                 "tp": str(claude.transcript), "pid": 1}) + "\n")
    fleet.respawn("cc", keep=True)
    wait_until(lambda: len(claude.starts()) == 2, message="restarted")
    assert claude.starts()[1][0] == "fix it"  # not resumed: that is no session id


def test_usage_from_the_transcripts_and_the_budget_pause(repo: Path, tmp_path: Path) -> None:
    claude = Claude(repo, tmp_path, agent_keys="max_tokens = 1000")
    fleet = claude.fleet
    fleet.spawn("cc")
    wait_until(lambda: len(claude.starts()) == 1, message="claude started")
    claude.transcript.write_text(user_line() + assistant_line("msg_1", 100, 40, cache_read=2000, cache_creation=50)
                                 + assistant_line("msg_1", 100, 40, cache_read=2000, cache_creation=50))
    claude.fire("SessionStart", "UserPromptSubmit")
    usage = fleet.agent("cc").usage
    assert usage == {"input_tokens": 100, "output_tokens": 40, "cache_read_tokens": 2000,
                     "cache_creation_tokens": 50, "context_tokens": 2150, "counted_tokens": 190, "sessions": 1}
    assert fleet.agent("cc").state == "running"
    with claude.transcript.open("a") as handle:  # the next response goes over max_tokens = 1000
        handle.write(assistant_line("msg_2", 300, 700, cache_read=2150))
    # (its processes stop a moment before the watcher records why: wait for the record)
    agent = wait_until(lambda: (a := fleet.agent("cc")).state == "paused" and a.activity_reason and a,
                       message="the watcher paused it")
    assert agent.activity == "paused" and "max_tokens = 1,000" in str(agent.activity_reason)
    assert agent.usage is not None and agent.usage["counted_tokens"] == 1190
    events = fleet.events.all()
    assert any(e.type == "paused" and e.data.get("budget") == "agent" and e.data.get("tokens") == 1190
               for e in events)
    wait_until(lambda: any(e.type == "notification" and e.data["note"]["type"] == "budget"
                           for e in fleet.events.all()), message="a notification says why")
    assert cockpit(repo, "resume", "cc").returncode == 0
    assert fleet.agent("cc").state == "running"
    watcher = Watcher(fleet, 0)
    assert watcher.enforce_budgets(fleet.tmux.panes()) == []  # not paused again for the same limit
    (repo / "cockpit.toml").write_text((repo / "cockpit.toml").read_text().replace("max_tokens = 1000",
                                                                                   "max_tokens = 1100"))
    assert watcher.enforce_budgets(fleet.tmux.panes()) == ["cc"]  # a raised limit, exceeded too


def test_the_fleet_budget_counts_every_agent_together(repo: Path, tmp_path: Path) -> None:
    claude = Claude(repo, tmp_path, fleet_keys="max_tokens = 500")
    fleet = claude.fleet
    fleet.spawn("cc")
    wait_until(lambda: len(claude.starts()) == 1, message="claude started")
    claude.transcript.write_text(assistant_line("m", 400, 200))
    claude.fire("SessionStart")
    agent = wait_until(lambda: (a := fleet.agent("cc")).state == "paused" and a.activity_reason and a,
                       message="paused by the fleet's budget")
    assert "fleet token budget: 600 tokens" in str(agent.activity_reason)
