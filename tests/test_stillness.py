"""What the TUI's poll and the watcher's tick look at to decide that nothing changed."""

from __future__ import annotations

import os
from pathlib import Path

from cockpit.core import stillness
from cockpit.core.layout import Layout


def test_a_look_changes_with_any_file_of_the_agent_and_nothing_else(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    agent = layout.agent_dir("a")
    agent.mkdir(parents=True)
    (agent / "session.log").write_bytes(b"one\n")
    first = stillness.look(layout, ["a", "gone"])
    assert first["gone"] == () and stillness.changed(first, stillness.look(layout, ["a", "gone"])) == set()
    (layout.worktree("a")).mkdir(parents=True)
    (layout.worktree("a") / "file.txt").write_text("the worktree is not looked at\n")
    assert stillness.changed(first, stillness.look(layout, ["a", "gone"])) == set()
    with (agent / "session.log").open("ab") as out:
        out.write(b"two\n")
    assert stillness.changed(first, stillness.look(layout, ["a", "gone"])) == {"a"}
    second = stillness.look(layout, ["a"])
    (agent / "hooks.json").write_text("{}")
    assert stillness.changed(second, stillness.look(layout, ["a"])) == {"a"}
    assert stillness.changed(second, {}) == {"a"}


def test_the_next_threshold_is_the_first_silence_limit_ahead(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    for name in ("a", "b"):
        layout.agent_dir(name).mkdir(parents=True)
        (layout.agent_dir(name) / "session.log").write_text("x\n")
    os.utime(layout.session_log("a"), (1000.0, 1000.0))
    os.utime(layout.session_log("b"), (1010.0, 1010.0))
    looks = stillness.look(layout, ["a", "b"])
    at = stillness.next_threshold(looks, {}, (30, 900), now=1005.0)
    assert at is not None and 1030.0 < at < 1030.2  # a turns idle first
    at = stillness.next_threshold(looks, {}, (30, 900), now=1035.0)
    assert at is not None and 1040.0 < at < 1040.2  # then b
    at = stillness.next_threshold(looks, {}, (30, 900), now=1045.0)
    assert at is not None and 1900.0 < at < 1900.2  # then a stalls
    # a (re)start later than the last output starts the silence clock again
    at = stillness.next_threshold(looks, {"a": "1970-01-01T00:17:00+00:00"}, (30, 900), now=1042.0)
    assert at is not None and 1050.0 < at < 1050.2  # a restarted at 1020: idle at 1050, before b stalls
    assert stillness.next_threshold(looks, {}, (30, 900), now=5000.0) is None
