"""Activity against real agents in a real tmux server: waiting is read from the kernel (a
foreground process asleep reading the pane's tty), working/idle/stalled from the silence clock,
paused agents are never stalled. Plus the pure pieces: classify and the ``w`` key's order."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest

from cockpit.core.activity import classify, next_needing_attention, probe
from cockpit.core.agent import Agent
from cockpit.core.fleet import Fleet
from conftest import PY, sleeper, wait_until

pytestmark = pytest.mark.tmux


def configure(repo: Path, body: str = "", **fleet_keys: object) -> None:
    lines = ["[cockpit]"] + [f"{k} = {v!r}" if not isinstance(v, str) else f"{k} = '{v}'"
                             for k, v in fleet_keys.items()]
    (repo / "cockpit.toml").write_text("\n".join(lines) + "\n" + body)


def activity(fleet: Fleet, name: str) -> str | None:
    return fleet.agent(name).activity


def log_text(fleet: Fleet, name: str) -> str:
    path = fleet.layout.session_log(name)
    return path.read_bytes().decode(errors="replace") if path.exists() else ""


def py(code: str) -> str:
    """A shell command running ``code`` with this Python, unbuffered."""
    return f"{shlex.quote(PY)} -u -c {shlex.quote(code)}"


# After the answer the agent prints steadily, so "working" is not a matter of timing.
ASK_THEN_PRINT = ("import time, itertools\nprint('question?', flush=True)\nanswer = input()\n"
                  "for i in itertools.count(): print('working on', answer, i, flush=True); time.sleep(0.2)")


def assert_waiting_then_working(fleet: Fleet, name: str) -> None:
    wait_until(lambda: "question?" in log_text(fleet, name), message="the question")
    start = time.monotonic()
    wait_until(lambda: activity(fleet, name) == "waiting", timeout=2.0, message="waiting within 2 s")
    assert time.monotonic() - start <= 2.0
    assert fleet.agent(name).state == "running"
    fleet.tmux.send_keys(name, "yes", "Enter")
    wait_until(lambda: activity(fleet, name) == "working", timeout=2.0, message="working within 2 s of the answer")


def test_agent_reading_its_terminal_is_waiting_then_working_when_answered(fleet: Fleet) -> None:
    fleet.spawn("asker", command=py(ASK_THEN_PRINT))
    assert_waiting_then_working(fleet, "asker")


def test_waiting_is_seen_under_a_shell_wrapper(fleet: Fleet) -> None:
    # sh -c 'sh -c "python ..."; ...': the reader is a grandchild of a grandchild of the pane.
    inner = f"sh -c {shlex.quote(py(ASK_THEN_PRINT))}"
    fleet.spawn("wrapped", command=f"sh -c {shlex.quote(inner + '; echo after')}")
    assert_waiting_then_working(fleet, "wrapped")


def test_steady_printer_is_working_and_never_waiting(fleet: Fleet, repo: Path) -> None:
    configure(repo, idle_after=1)
    fleet.spawn("busy", command=sleeper("busy"))
    wait_until(lambda: "busy 2" in log_text(fleet, "busy"), message="output")
    seen: list[str | None] = []

    def three_seconds_of_working() -> bool:
        seen.append(activity(fleet, "busy"))
        return len(seen) >= 10 and seen.count("working") == len(seen)

    wait_until(three_seconds_of_working, interval=0.3, message="working throughout")
    assert set(seen) == {"working"}


def test_silent_sleeper_is_idle_then_stalled_never_waiting(fleet: Fleet, repo: Path) -> None:
    configure(repo, idle_after=1, stall_after=2.5)
    started = time.monotonic()
    fleet.spawn("nap", command="sleep 120")
    seen: list[str | None] = []

    def record(target: str):
        def check() -> bool:
            seen.append(activity(fleet, "nap"))
            return seen[-1] == target
        return check

    wait_until(record("idle"), timeout=20, message="idle after idle_after")
    assert time.monotonic() - started >= 1.0
    wait_until(record("stalled"), timeout=20, message="stalled after stall_after")
    assert time.monotonic() - started >= 2.5
    assert "waiting" not in seen
    assert seen.index("idle") < seen.index("stalled")


def test_paused_agent_is_never_stalled_and_its_clock_restarts_on_resume(fleet: Fleet, repo: Path) -> None:
    configure(repo, idle_after=1, stall_after=2)
    fleet.spawn("frozen", command="sleep 120")
    fleet.pause("frozen")
    paused_at = time.monotonic()
    seen: list[str | None] = []

    def paused_past_stall_after() -> bool:
        seen.append(activity(fleet, "frozen"))
        return time.monotonic() - paused_at > 3.5

    wait_until(paused_past_stall_after, interval=0.2, message="well past stall_after")
    assert set(seen) == {"paused"}
    # The watcher recorded the pause, and nothing else, while it lasted.
    wait_until(lambda: any(e.type == "activity" and e.agent == "frozen" and e.data["activity"] == "paused"
                           for e in fleet.events.all()), timeout=10, message="paused activity event")
    fleet.resume("frozen")
    assert activity(fleet, "frozen") == "working"  # the silence clock restarted
    events = [e for e in fleet.events.all() if e.type == "activity" and e.agent == "frozen"]
    after_pause = events[[e.data["activity"] for e in events].index("paused"):]
    assert "stalled" not in [e.data["activity"] for e in after_pause]


def test_activity_in_ls_json_and_null_when_not_running(fleet: Fleet) -> None:
    fleet.spawn("done", command="exit 0")
    wait_until(lambda: fleet.agent("done").state == "exited", message="exit")
    agent = fleet.agent("done")
    assert agent.activity is None and agent.to_json()["activity"] is None


def test_poll_based_agent_is_waiting_only_with_a_preset(fleet: Fleet, repo: Path) -> None:
    # Full-screen programs watch the terminal with select/poll: only their screen tells.
    code = ("import select, sys\nprint('Edit src/app.py')\nprint('Do you want to proceed?')\n"
            "print('> 1. Yes')\nprint('  3. No, and tell Claude what to do differently (esc)', flush=True)\n"
            "select.select([sys.stdin], [], [])\nline = sys.stdin.readline()\n"
            "print('\\x1b[2J\\x1b[H', end='')\nprint('answered:', line, flush=True)\n"
            "import time\ntime.sleep(120)")
    lit = "'" * 3
    configure(repo, f"[[agent]]\nname = 'cc'\ncommand = {lit}{py(code)}{lit}\npreset = 'claude-code'\n"
                    f"[[agent]]\nname = 'plain'\ncommand = {lit}{py(code)}{lit}\n", idle_after=1)
    fleet.up()
    wait_until(lambda: "proceed?" in log_text(fleet, "cc") and "proceed?" in log_text(fleet, "plain"),
               message="both prompts")
    assert probe(fleet.agent("cc").pid).reading_tty is False  # select(), not read(): the kernel can't tell
    wait_until(lambda: activity(fleet, "cc") == "waiting", timeout=5, message="preset prompt recognised")
    wait_until(lambda: activity(fleet, "plain") == "idle", timeout=10, message="no preset: idle, not waiting")
    fleet.tmux.send_keys("cc", "1", "Enter")
    wait_until(lambda: "answered" in log_text(fleet, "cc"), message="answered")  # and the screen was cleared
    wait_until(lambda: activity(fleet, "cc") == "working", timeout=5, message="prompt gone: working")


# -- pure ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("state, waiting, silence, expected", [
    ("running", True, 5000, "waiting"),      # waiting wins over silence ...
    ("running", True, 0, "waiting"),         # ... and over recent output
    ("running", False, 0, "working"),
    ("running", False, 30, "idle"),
    ("running", False, 899, "idle"),
    ("running", False, 900, "stalled"),
    ("paused", True, 5000, "paused"),
    ("exited", False, 0, None), ("failed", True, 0, None), ("killed", False, 0, None),
    ("halted", False, 0, None), ("missing", False, 0, None),
])
def test_classify(state: str, waiting: bool, silence: float, expected: str | None) -> None:
    assert classify(state, waiting, silence, 30, 900) == expected


def make_agent(name: str, state: str = "running", act: str | None = "working") -> Agent:
    return Agent(name=name, state=state, attempt=1, failures=0, max_failures=2, exit_code=None, branch="",
                 worktree="", log="", base="", base_sha="", task="", command="", scope=[], after=[],
                 tmux_socket="", tmux_session=name, last_activity=None, state_since="", activity=act)


def test_next_needing_attention_waiting_then_stalled_then_failed() -> None:
    agents = [make_agent("a", act="working"), make_agent("b", act="stalled"), make_agent("c", "failed", None),
              make_agent("d", act="waiting"), make_agent("e", act="waiting"), make_agent("f", "halted", None),
              make_agent("g", "paused", "paused")]
    assert next_needing_attention(agents) == "d"
    order = []
    current = None
    for _ in range(6):
        current = next_needing_attention(agents, current)
        order.append(current)
    assert order == ["d", "e", "b", "c", "f", "d"]
    assert next_needing_attention(agents, "a") == "d"  # focus elsewhere: the first waiting one
    assert next_needing_attention([make_agent("x"), make_agent("y", "exited", None)]) is None
