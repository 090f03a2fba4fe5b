"""The watcher in the fleet's tmux server (no cockpit open), notify_command, and `cockpit wait`."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest

from cockpit.core.fleet import Fleet
from cockpit.core.watch import SESSION
from conftest import PY, sleeper, tmux, wait_until
from test_cli import cockpit

pytestmark = pytest.mark.tmux


def py(code: str) -> str:
    return f"{shlex.quote(PY)} -u -c {shlex.quote(code)}"


def write_config(repo: Path, *lines: str) -> None:
    (repo / "cockpit.toml").write_text("[cockpit]\n" + "\n".join(lines) + "\n")


def sessions(repo: Path) -> list[str]:
    return tmux(repo, "list-sessions", "-F", "#{session_name}").stdout.split()


def events(fleet: Fleet, type: str, agent: str | None = None) -> list:
    return [e for e in fleet.events.all() if e.type == type and (agent is None or e.agent == agent)]


def notes(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- lifecycle ----------------------------------------------------------------------------------
def test_watcher_starts_with_the_first_agent_hides_and_ends_with_the_last(repo: Path) -> None:
    assert cockpit(repo, "spawn", "one", "--command", "sleep 120").returncode == 0
    # The CLI that started it has exited: the watcher lives on in the fleet's tmux server.
    assert SESSION in sessions(repo)
    assert cockpit(repo, "spawn", "two", "--command", "sleep 120").returncode == 0
    assert sessions(repo).count(SESSION) == 1
    listing = json.loads(cockpit(repo, "ls", "--json").stdout)
    assert [a["name"] for a in listing] == ["one", "two"]
    assert all(a["activity"] in ("working", "idle") for a in listing)
    for args in (["kill", SESSION], ["discard", SESSION, "--yes"], ["attach", SESSION]):
        result = cockpit(repo, *args)
        assert result.returncode == 1 and "invalid agent name" in result.stderr
    assert SESSION in sessions(repo)
    assert cockpit(repo, "kill", "one").returncode == 0
    assert SESSION in sessions(repo)  # "two" is still live
    assert cockpit(repo, "kill", "two").returncode == 0
    wait_until(lambda: SESSION not in sessions(repo), timeout=15, message="the watcher ends")
    log = repo / ".cockpit" / "watcher.log"
    wait_until(lambda: "ended" in log.read_text(), message="the watcher's last words")
    assert "started" in log.read_text() and "Traceback" not in log.read_text()
    assert cockpit(repo, "respawn", "one", "--keep").returncode == 0
    assert SESSION in sessions(repo)  # back with the next live agent


def test_watcher_records_activity_changes_as_events(fleet: Fleet, repo: Path) -> None:
    # idle_after spans several watcher ticks, so "working" after the answer is seen even on a
    # loaded machine (a 1 s window could fall between two ticks: waiting -> idle directly).
    write_config(repo, "idle_after = 4")
    fleet.spawn("q", command=py("print('name?'); input(); print('thanks')\nimport time; time.sleep(120)"))
    wait_until(lambda: any(e.data["activity"] == "waiting" for e in events(fleet, "activity", "q")),
               timeout=10, message="waiting recorded")
    fleet.tmux.send_keys("q", "bob", "Enter")
    wait_until(lambda: any(e.data["activity"] == "idle" for e in events(fleet, "activity", "q")),
               timeout=30, message="idle recorded")
    changes = [(e.data["previous"], e.data["activity"]) for e in events(fleet, "activity", "q")]
    for previous, current in changes:
        assert previous != current
    assert changes[-1] == ("working", "idle") and ("waiting", "working") in changes
    assert [c for _, c in changes].count("waiting") == 1  # no flapping


def test_watcher_records_an_exit_when_nothing_else_looks(fleet: Fleet) -> None:
    fleet.spawn("short", command="sleep 1; exit 4")
    fleet.tmux.cmd("set-hook", "-gu", "pane-died")  # no pane-died hook: only the watcher can notice
    # Read the log directly: fleet.agents() would record the exit itself.
    wait_until(lambda: events(fleet, "exited", "short"), timeout=15, message="exit recorded by the watcher")
    assert events(fleet, "exited", "short")[0].data["exit_code"] == 4


# -- notify_command ---------------------------------------------------------------------------------
def test_notify_command_gets_one_json_event_per_change_with_no_tui(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    write_config(repo, f"notify_command = 'cat >> {out}'")
    command = py("print('deploy?'); input(); print('no'); raise SystemExit(3)")
    assert cockpit(repo, "spawn", "ask", "--command", command).returncode == 0
    wait_until(lambda: notes(out), timeout=15, message="waiting notification")
    first = notes(out)[0]
    assert {k: first[k] for k in ("type", "agent", "activity")} == {
        "type": "activity", "agent": "ask", "activity": "waiting"}
    assert first["previous"] in (None, "working")  # None: it asked before the watcher's first look
    datetime.fromisoformat(first["ts"])
    tmux(repo, "send-keys", "-t", "=ask:", "y", "Enter", check=True)
    # failed comes within the 10 s window of the first notification: never suppressed.
    wait_until(lambda: len(notes(out)) >= 2, timeout=15, message="failed notification")
    wait_until(lambda: SESSION not in sessions(repo), timeout=15, message="the watcher ends")
    got = notes(out)
    assert len(got) == 2, got
    assert {k: got[1][k] for k in ("type", "agent", "state", "previous", "exit_code")} == {
        "type": "state", "agent": "ask", "state": "failed", "previous": "running", "exit_code": 3}


def test_flapping_agent_is_rate_limited(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    interval = 3.0
    write_config(repo, f"notify_command = 'cat >> {out}'", f"notify_interval = {interval}")
    rounds = 4
    # Waits for input, then works (prints) for a while, then waits again: a flapping agent.
    code = (f"import time\nfor r in range({rounds}):\n    print('again?', flush=True)\n    input()\n"
            "    end = time.time() + 1.5\n    while time.time() < end: print('busy', flush=True); time.sleep(0.1)\n"
            "time.sleep(120)")
    fleet.spawn("flap", command=py(code))
    for number in range(1, rounds + 1):
        wait_until(lambda: [e.data["activity"] for e in events(fleet, "activity", "flap")].count("waiting") >= number,
                   timeout=15, message=f"waiting #{number} recorded by the watcher")
        fleet.tmux.send_keys("flap", "y", "Enter")
    waits = [e for e in events(fleet, "activity", "flap") if e.data["activity"] == "waiting"]
    assert len(waits) == rounds
    # Every change is accounted for: sent at once, or merged into a trailing notification.
    wait_until(lambda: sum(n.get("merged", 1) for n in notes(out)) == rounds, timeout=20,
               message="the trailing notification")
    sent = events(fleet, "notification", "flap")
    assert 1 < len(sent) < rounds
    assert any(e.data["note"].get("merged") for e in sent)
    times = [datetime.fromisoformat(e.ts).timestamp() for e in sent]
    gaps = [b - a for a, b in pairwise(times)]
    assert all(gap >= interval - 0.05 for gap in gaps), gaps
    assert notes(out) == [e.data["note"] for e in sent]


# -- cockpit wait -------------------------------------------------------------------------------
def test_wait_returns_on_a_later_transition(repo: Path) -> None:
    assert cockpit(repo, "spawn", "later", "--command", py("import time; time.sleep(2); input()")).returncode == 0
    started = time.monotonic()
    result = cockpit(repo, "wait", "later", "--for", "waiting", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 1.0
    assert json.loads(cockpit(repo, "ls", "--json").stdout)[0]["activity"] == "waiting"


def test_wait_returns_at_once_when_already_there(fleet: Fleet, repo: Path) -> None:
    write_config(repo, "idle_after = 1")
    fleet.spawn("asking", command=py("input()"))
    fleet.spawn("napping", command="sleep 120")
    wait_until(lambda: fleet.agent("asking").activity == "waiting", message="waiting")
    wait_until(lambda: fleet.agent("napping").activity == "idle", message="idle")
    for name, target in (("asking", "waiting"), ("napping", "idle")):
        started = time.monotonic()
        result = cockpit(repo, "wait", name, "--for", target, "--timeout", "20")
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 10  # no polling wait beyond the first look


def test_wait_times_out_with_exit_1(fleet: Fleet, repo: Path) -> None:
    fleet.spawn("busy", command=sleeper("busy"))
    started = time.monotonic()
    result = cockpit(repo, "wait", "busy", "--for", "idle", "--timeout", "1.5")
    assert result.returncode == 1 and "timed out after 1.5s" in result.stderr
    assert time.monotonic() - started >= 1.5
    assert "(it is working)" in result.stderr  # what it does instead
    fleet.pause("busy")
    paused = cockpit(repo, "wait", "busy", "--for", "idle", "--timeout", "0.5")
    assert paused.returncode == 1 and "(it is paused: 'cockpit resume' it first)" in paused.stderr


def test_wait_for_exited_and_unreachable_targets(fleet: Fleet, repo: Path) -> None:
    fleet.spawn("ends", command="sleep 1; exit 2")
    result = cockpit(repo, "wait", "ends", "--for", "exited", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert fleet.agent("ends").state == "failed"
    # It will never read its terminal again: 1 at once, even without a timeout.
    result = cockpit(repo, "wait", "ends", "--for", "waiting")
    assert result.returncode == 1 and "has ended" in result.stderr
    fleet.spawn("gone", command="sleep 120")
    waiter = subprocess.Popen([sys.executable, "-m", "cockpit", "wait", "gone", "--for", "waiting"], cwd=repo,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    fleet.discard("gone")
    _, err = waiter.communicate(timeout=30)
    # Discarded while it waited ("no longer exists") or before its first look ("no agent named").
    assert waiter.returncode == 1 and ("no longer exists" in err or "no agent named" in err), err
    result = cockpit(repo, "wait", "nobody", "--for", "exited")
    assert result.returncode == 1 and "no agent named" in result.stderr
    result = cockpit(repo, "wait", "ends", "--for", "sleeping")
    assert result.returncode == 2


def test_ls_table_shows_activity(fleet: Fleet, repo: Path) -> None:
    fleet.spawn("asking", command=py("input()"))
    wait_until(lambda: fleet.agent("asking").activity == "waiting", message="waiting")
    table = cockpit(repo, "ls").stdout
    assert "ACTIVITY" in table.splitlines()[0]
    assert "waiting" in table.splitlines()[1]


# -- an idle fleet --------------------------------------------------------------------------------
def test_an_idle_fleet_costs_the_watcher_no_tmux_git_or_proc_until_something_changes(
        fleet: Fleet, repo: Path, monkeypatch) -> None:
    from cockpit.core import activity, worktrees
    from cockpit.core.watcher import Watcher
    write_config(repo, "radar_interval = 0")  # (the radar's own gating is the next test's)
    fleet.spawn("a", command="echo ready; sleep 600")
    log = fleet.layout.session_log("a")
    wait_until(lambda: log.exists() and b"ready" in log.read_bytes(), timeout=10, message="ready")
    watcher = Watcher(fleet, fleet.events.read(0)[1])
    assert watcher.tick() and watcher.full_ticks == 1
    calls: list[str] = []
    real_panes, real_run, real_probe = fleet.tmux.panes, worktrees.run, activity.probe
    monkeypatch.setattr(fleet.tmux, "panes", lambda *a, **k: calls.append("tmux") or real_panes(*a, **k))
    monkeypatch.setattr(worktrees, "run", lambda *a, **k: calls.append("git") or real_run(*a, **k))
    monkeypatch.setattr(activity, "probe", lambda *a, **k: calls.append("proc") or real_probe(*a, **k))
    for _ in range(3):
        assert watcher.tick()
    assert (watcher.full_ticks, calls) == (1, []), "nothing changed: nothing looked at"
    with log.open("a") as out:
        out.write("more output\n")
    assert watcher.tick() and watcher.full_ticks == 2 and "tmux" in calls and "proc" in calls
    fleet.record_event("note", "a")  # any event from elsewhere is news too
    assert watcher.tick() and watcher.full_ticks == 3


def test_the_radar_starts_a_round_only_after_a_change(fleet: Fleet, repo: Path) -> None:
    from cockpit.core import watcher as watching
    write_config(repo, "radar_interval = 0.01")
    fleet.spawn("a", command="echo ready; sleep 600")
    log = fleet.layout.session_log("a")
    wait_until(lambda: log.exists() and b"ready" in log.read_bytes(), timeout=10, message="ready")
    watcher = watching.Watcher(fleet, fleet.events.read(0)[1])
    assert watcher.radar is not None

    def still() -> bool:
        watcher.tick()
        return not watcher.radar.busy and not watcher._worktree_news

    def rounds_until_still() -> int:
        started = watcher.radar.merge_trees + len(watcher.radar.snapshots)
        wait_until(still, timeout=30, interval=0.02, message="the radar's round done")
        return watcher.radar.merge_trees + len(watcher.radar.snapshots) - started

    rounds_until_still()
    finished = watcher._last_radar
    for _ in range(5):
        watcher.tick()
        time.sleep(0.02)
    assert watcher._last_radar == finished and not watcher.radar.busy, "nothing changed: no round"
    (fleet.layout.worktree("a") / "work.txt").write_text("work\n")
    with log.open("a") as out:
        out.write("wrote work.txt\n")
    rounds_until_still()
    assert watcher._last_radar > finished
    assert watching.RADAR_IDLE_S >= 60  # the fallback for edits that leave no trace is rare
