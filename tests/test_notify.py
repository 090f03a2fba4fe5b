"""The pure half of notifications: which events notify, the rate limit (a fake clock), the
terminal sequences, and the config keys that drive them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core.errors import ConfigError
from cockpit.core.events import Event
from cockpit.core.notify import RateLimiter, notification, terminal_alert, tmux_passthrough
from cockpit.core.spec import load_config


def ev(type: str, agent: str | None = "a", **data: object) -> Event:
    return Event(1, "2026-01-01T00:00:00.000+00:00", type, agent, dict(data))


def test_changes_into_waiting_or_stalled_notify() -> None:
    assert notification(ev("activity", activity="waiting", previous="working")) == {
        "type": "activity", "agent": "a", "activity": "waiting", "previous": "working",
        "ts": "2026-01-01T00:00:00.000+00:00"}
    assert notification(ev("activity", activity="stalled", previous="idle"))["activity"] == "stalled"
    for quiet in ("working", "idle", "paused", None):
        assert notification(ev("activity", activity=quiet, previous="waiting")) is None


def test_state_changes_to_failed_or_halted_notify_whatever_caused_them() -> None:
    note = notification(ev("exited", exit_code=3), "running", "failed")
    assert note == {"type": "state", "agent": "a", "state": "failed", "previous": "running",
                    "ts": "2026-01-01T00:00:00.000+00:00", "exit_code": 3}
    assert notification(ev("failed.marked"), "running", "failed")["state"] == "failed"
    halted = notification(ev("halted", reason="failed 2 time(s)"), "failed", "halted")
    assert halted["state"] == "halted" and halted["previous"] == "failed" and halted["reason"]
    assert notification(ev("exited", exit_code=0), "running", "exited") is None
    assert notification(ev("archived"), "failed", "failed") is None  # no change, no notification
    assert notification(ev("killed"), "running", "killed") is None


def test_out_of_scope_and_merge_queue_events_notify() -> None:
    for kind in ("out_of_scope", "scope.violation", "merged", "conflict", "rejected"):
        note = notification(ev(kind, paths=["x"]))
        assert note is not None and note["type"] == kind and note["data"] == {"paths": ["x"]}
    assert notification(ev("activity", agent=None, activity="waiting")) is None


def waiting(agent: str = "a") -> dict:
    return {"type": "activity", "agent": agent, "activity": "waiting", "previous": "working", "ts": "t"}


def failed(agent: str = "a") -> dict:
    return {"type": "state", "agent": agent, "state": "failed", "previous": "running", "ts": "t"}


def test_rate_limit_one_per_agent_per_window_with_one_trailing_merge() -> None:
    limiter = RateLimiter(10)
    assert limiter.offer(waiting(), 0.0) == [waiting()]
    assert limiter.offer(waiting(), 1.0) == []  # held
    assert limiter.offer({**waiting(), "activity": "stalled"}, 2.0) == []  # merged into the held one
    assert limiter.offer(waiting("b"), 2.5) == [waiting("b")]  # per agent
    assert limiter.due(9.9) == []
    assert limiter.next_due() == 10.0
    trailing = limiter.due(10.0)
    assert len(trailing) == 1 and trailing[0]["activity"] == "stalled" and trailing[0]["merged"] == 2
    assert limiter.due(30.0) == []
    assert limiter.offer(waiting(), 30.0) == [waiting()]  # a quiet window: sent at once


def test_failed_and_halted_are_never_suppressed() -> None:
    limiter = RateLimiter(10)
    assert limiter.offer(waiting(), 0.0) == [waiting()]
    assert limiter.offer(failed(), 0.1) == [failed()]
    halted = {**failed(), "state": "halted"}
    assert limiter.offer(halted, 0.2) == [halted]


def test_drain_sends_what_is_held() -> None:
    limiter = RateLimiter(10)
    limiter.offer(waiting(), 0.0)
    limiter.offer(waiting(), 1.0)
    assert [n["merged"] for n in limiter.drain()] == [1]
    assert limiter.drain() == [] and limiter.next_due() is None


def test_terminal_alert_bell_osc9_osc777() -> None:
    text = terminal_alert(waiting("auth"), env={})
    assert text == ("\a\x1b]9;cockpit: auth: is waiting for you\x07"
                    "\x1b]777;notify;cockpit: auth;is waiting for you\x07")


def test_terminal_alert_inside_tmux_is_wrapped_for_passthrough() -> None:
    text = terminal_alert(waiting("auth"), env={"TMUX": "/tmp/tmux-0/default,1,0"})
    assert text.startswith("\a\x1bPtmux;\x1b\x1b]9;cockpit: auth")
    assert text.count("\x1bPtmux;") == 2 and text.endswith("\x07\x1b\\")
    assert tmux_passthrough("\x1b]9;x\x07") == "\x1bPtmux;\x1b\x1b]9;x\x07\x1b\\"


def test_terminal_alert_strips_control_characters() -> None:
    note = {"type": "state", "agent": "a", "state": "failed", "reason": "bad\x07\x1b]0;pwned\x07"}
    text = terminal_alert(note, env={})
    assert text.count("\x07") == 3 and text.count("\x1b") == 2  # the bell and two terminators; two ESCs


def test_config_keys(tmp_path: Path) -> None:
    path = tmp_path / "cockpit.toml"
    path.write_text("[cockpit]\nidle_after = 1\nstall_after = 2.5\nnotify_command = 'cat'\nnotify_interval = 0.5\n"
                    "[[agent]]\nname = 'a'\ncommand = 'x'\npreset = 'claude-code'\n")
    config = load_config(path)
    assert (config.idle_after, config.stall_after, config.notify_command, config.notify_interval) == (
        1.0, 2.5, "cat", 0.5)
    assert config.agents["a"].preset == "claude-code"
    defaults = load_config(tmp_path / "missing.toml")
    assert (defaults.idle_after, defaults.stall_after, defaults.notify_command, defaults.notify_interval) == (
        30.0, 900.0, None, 10.0)


@pytest.mark.parametrize("text, message", [
    ("[cockpit]\nidle_after = 0\n", "cockpit.idle_after: must be more than 0"),
    ("[cockpit]\nidle_after = 'soon'\n", "cockpit.idle_after: expected float, got str"),
    ("[cockpit]\nidle_after = true\n", "cockpit.idle_after: expected float, got bool"),
    ("[cockpit]\nidle_after = 60\nstall_after = 30\n", "cockpit.stall_after: must not be less than idle_after"),
    ("[cockpit]\nnotify_command = 3\n", "cockpit.notify_command: expected str"),
    ("[[agent]]\nname = 'a'\ncommand = 'x'\npreset = 'nope'\n", "unknown preset 'nope'"),
])
def test_bad_config_keys(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cockpit.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(path)
