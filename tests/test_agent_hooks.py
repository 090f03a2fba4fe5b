"""The hook recorder as Claude Code runs it (a real process per event, JSON on stdin), and what its
lines mean: the fold into an activity with a reason, reconciled with Claude Code's status file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from claude_support import PAYLOADS, SID
from cockpit.core import hook_record, hook_state
from cockpit.core.hook_state import ClaudeStatus, HookState, fold, reconcile
from cockpit.core.presets import rate_limit_reset

PACKAGE_PARENT = str(Path(__file__).resolve().parents[1])


@pytest.fixture
def agent_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "repo" / ".cockpit" / "agents" / "a"
    directory.mkdir(parents=True)
    return directory


def record(agent_dir: Path, stdin: bytes | str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    """Run the recorder exactly as the settings file has Claude Code run it."""
    argv = hook_record.argv(sys.executable, PACKAGE_PARENT, str(agent_dir))
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run(argv + list(extra), input=data, capture_output=True, timeout=60)


def lines(agent_dir: Path) -> list[dict]:
    path = agent_dir / hook_record.HOOKS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def hook_log(agent_dir: Path) -> str:
    path = agent_dir.parent.parent / "hook.log"
    return path.read_text() if path.exists() else ""


# -- the recorder -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_every_documented_hook_input_is_recorded_as_one_short_line(agent_dir: Path, kind: str) -> None:
    payload = PAYLOADS[kind]
    result = record(agent_dir, json.dumps(payload))
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")  # stdout would reach the model
    [line] = lines(agent_dir)
    assert line["e"] == payload["hook_event_name"] and line["sid"] == SID
    assert line["tp"] == payload["transcript_path"]
    assert isinstance(line["t"], float) and abs(line["t"] - time.time()) < 60
    assert line["pid"] == os.getpid()  # the program that ran the hook (here: this test)
    assert len(json.dumps(line)) < 2000 and hook_log(agent_dir) == ""
    if "tool_name" in payload:
        assert line["tool"] == payload["tool_name"]


def test_the_recorded_details_are_what_the_views_show(agent_dir: Path) -> None:
    for kind in ("PreToolUse", "PermissionRequest-question", "PreToolUse-edit", "StopFailure-limit",
                 "Notification-permission", "SessionEnd", "PreCompact", "SessionStart"):
        assert record(agent_dir, json.dumps(PAYLOADS[kind])).returncode == 0
    bash, question, edit, limit, note, end, compact, start = lines(agent_dir)
    assert bash["arg"] == "touch created_by_agent.txt"
    assert question["arg"] == "Which colour should the button be?"
    assert edit["arg"] == "src/app.py"  # relative to the session's cwd
    assert limit["err"] == "rate_limit" and limit["msg"] == "You've hit your session limit · resets 7:39pm (UTC)"
    assert note["ntype"] == "permission_prompt"
    assert end["why"] == "prompt_input_exit" and compact["trig"] == "manual" and start["src"] == "startup"


def test_a_long_script_is_cut_to_its_first_line_and_a_bounded_length(agent_dir: Path) -> None:
    payload = dict(PAYLOADS["PreToolUse"], tool_input={"command": "for f in *; do\n  echo $f\ndone"})
    record(agent_dir, json.dumps(payload))
    payload = dict(PAYLOADS["PreToolUse"], tool_input={"command": "x" * 10_000})
    record(agent_dir, json.dumps(payload))
    script, long = lines(agent_dir)
    assert script["arg"] == "for f in *; do …"
    assert len(long["arg"]) == 200 and long["arg"].endswith("…")


@pytest.mark.parametrize("stdin", [b"", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe\x00garbage",
                                   b"[" * 100_000, b'{"session_id": "s"}', b'{"hook_event_name": 3}'],
                         ids=["empty", "text", "array", "string", "binary", "deep", "no-event", "event-not-text"])
def test_malformed_input_exits_0_records_nothing_and_says_why_in_the_hook_log(agent_dir: Path, stdin: bytes) -> None:
    result = record(agent_dir, stdin)
    assert (result.returncode, result.stdout) == (0, b"")  # exit 2 would block the agent's tool or prompt
    assert lines(agent_dir) == []
    assert "hook a: not recorded:" in hook_log(agent_dir)


def test_a_huge_input_is_recorded_from_its_first_bytes(agent_dir: Path) -> None:
    payload = dict(PAYLOADS["PostToolUse"], tool_response={"stdout": "y" * (20 * 1024 * 1024)})
    result = record(agent_dir, json.dumps(payload))
    assert (result.returncode, result.stdout) == (0, b"")
    [line] = lines(agent_dir)
    assert line["e"] == "PostToolUse" and line["sid"] == SID and line["tool"] == "Bash"
    assert line["big"] > 20 * 1024 * 1024
    assert "input of" in hook_log(agent_dir)


def test_a_huge_input_that_names_no_event_records_nothing(agent_dir: Path) -> None:
    result = record(agent_dir, b'{"x": "' + b"z" * (6 * 1024 * 1024) + b'"}')
    assert result.returncode == 0 and lines(agent_dir) == []
    assert "names no hook_event_name" in hook_log(agent_dir)


def test_concurrent_hooks_each_append_one_whole_line(agent_dir: Path) -> None:
    kinds = sorted(PAYLOADS) * 3
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda kind: record(agent_dir, json.dumps(PAYLOADS[kind])), kinds))
    assert all(r.returncode == 0 and r.stdout == b"" for r in results)
    recorded = lines(agent_dir)  # every line parses: no two writes interleaved
    assert sorted(line["e"] for line in recorded) == sorted(PAYLOADS[k]["hook_event_name"] for k in kinds)


def test_an_agent_directory_that_cannot_be_written_fails_nothing(tmp_path: Path) -> None:
    gone = tmp_path / "repo" / ".cockpit" / "agents" / "gone"
    (tmp_path / "repo" / ".cockpit").mkdir(parents=True)
    result = record(gone, json.dumps(PAYLOADS["Stop"]))
    assert (result.returncode, result.stdout) == (0, b"")
    assert "hook gone: not recorded: FileNotFoundError" in (tmp_path / "repo" / ".cockpit" / "hook.log").read_text()


def test_bad_arguments_exit_0_and_print_nothing_on_stdout(agent_dir: Path) -> None:
    for extra in (["second"], []):
        argv = hook_record.argv(sys.executable, PACKAGE_PARENT, str(agent_dir))
        result = subprocess.run(argv[:-1] + extra if not extra else argv + extra, input=b"{}",
                                capture_output=True, timeout=60)
        assert (result.returncode, result.stdout) == (0, b"")
        assert b"not recorded" in result.stderr
    relative = subprocess.run(hook_record.argv(sys.executable, PACKAGE_PARENT, "relative/dir"), input=b"{}",
                              capture_output=True, timeout=60)
    assert (relative.returncode, relative.stdout) == (0, b"")


def test_the_recorder_imports_only_the_standard_library_without_site_packages() -> None:
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import cockpit.core.hook_record; "
            "print(sorted(m for m in sys.modules\n"
            "             if m.split('.')[0] not in sys.stdlib_module_names and m != '__main__')); "
            "print('site' in sys.modules)")
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code, PACKAGE_PARENT], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    modules, site = result.stdout.splitlines()
    assert modules == "['cockpit', 'cockpit.core', 'cockpit.core.hook_record']" and site == "False"


# -- what the lines mean --------------------------------------------------------------------------------
def after(*kinds: str, state: HookState | None = None) -> HookState:
    """The state after the recorded lines of ``kinds`` (recorded in-process, with times 1 s apart)."""
    state = state or HookState()
    for i, kind in enumerate(kinds):
        state = fold(state, hook_record.record(PAYLOADS[kind], 4242, 1000.0 + i))
    return state


def test_a_turn_with_a_permission_prompt() -> None:
    assert (after("SessionStart").activity, after("SessionStart").reason) == ("waiting", "done")
    assert after("SessionStart", "UserPromptSubmit").activity == "working"
    tool = after("SessionStart", "UserPromptSubmit", "PreToolUse")
    assert (tool.activity, tool.reason) == ("working", "Bash: touch created_by_agent.txt")
    asking = after("SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest")
    assert (asking.activity, asking.reason) == ("waiting", "permission: Bash: touch created_by_agent.txt")
    late = after("SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest", "Notification-permission")
    assert (late.activity, late.reason) == ("waiting", "permission: Bash: touch created_by_agent.txt")
    answered = after("UserPromptSubmit", "PreToolUse", "PermissionRequest", "PostToolUse")
    assert (answered.activity, answered.reason) == ("working", None)
    done = after("UserPromptSubmit", "PreToolUse", "PostToolUseFailure", "Stop")
    assert (done.activity, done.reason, done.session_id, done.pid) == ("waiting", "done", SID, 4242)


def test_questions_usage_limits_errors_and_compaction() -> None:
    question = after("UserPromptSubmit", "PreToolUse-question", "PermissionRequest-question")
    assert (question.activity, question.reason) == ("waiting", "question: Which colour should the button be?")
    elicit = after("UserPromptSubmit", "Notification-elicitation")
    assert (elicit.activity, elicit.reason) == ("waiting", "question: MCP server asks for your token")
    limit = after("UserPromptSubmit", "StopFailure-limit")
    assert (limit.activity, limit.reason) == ("rate-limited", "resets 7:39pm (UTC)")
    api_429 = after("UserPromptSubmit", "StopFailure-429")
    assert api_429.activity == "rate-limited" and "429" in str(api_429.reason)
    error = after("UserPromptSubmit", "StopFailure-auth", "Notification-idle")  # 60 s later: still the error
    assert (error.activity, error.reason) == ("error", "authentication_failed: Not logged in · Please run /login")
    assert after("UserPromptSubmit", "StopFailure-server").reason == "server_error: API Error: 529 Overloaded."
    compacting = after("Stop", "PreCompact", "SessionStart-compact")
    assert (compacting.activity, compacting.reason) == ("compacting", "manual")
    assert (after("Stop", "PreCompact", "SessionStart-compact", "PostCompact").reason) == "done"
    assert after("Stop", "Notification-idle").reason == "done"
    assert after("UserPromptSubmit", "PermissionDenied").activity == "working"  # auto mode goes on
    assert after("Stop", "SessionEnd").activity == "ended"


def test_the_status_file_corrects_silent_hooks_only_when_newer() -> None:
    asking = after("UserPromptSubmit", "PreToolUse", "PermissionRequest")  # then "No": no hook fires
    assert reconcile(asking, ClaudeStatus("idle", None, asking.at + 5)) == ("waiting", "done")
    assert reconcile(asking, ClaudeStatus("idle", None, asking.at + 0.1)) == ("waiting", "done")  # a quick Esc
    assert reconcile(asking, ClaudeStatus("idle", None, asking.at - 0.5)) == asking_pair(asking)  # older
    done = after("UserPromptSubmit", "Stop")  # then a slash command or a queued message: busy, no hook
    assert reconcile(done, ClaudeStatus("busy", None, done.at + 5)) == ("working", None)
    working = after("UserPromptSubmit", "PreToolUse")
    assert reconcile(working, ClaudeStatus("waiting", "permission prompt", working.at + 5)) == (
        "waiting", "permission: Bash: touch created_by_agent.txt")
    assert reconcile(working, ClaudeStatus("waiting", "input needed", working.at + 5)) == (
        "waiting", "question: input needed")
    limited = after("UserPromptSubmit", "StopFailure-429")  # then Claude's "what do you want to do?" dialog
    assert reconcile(limited, ClaudeStatus("waiting", "dialog open", limited.at + 5)) == asking_pair(limited)
    error = after("UserPromptSubmit", "StopFailure-auth")
    assert reconcile(error, ClaudeStatus("idle", None, error.at + 5))[0] == "error"  # idle says less
    assert reconcile(error, None) == ("error", error.reason)


def asking_pair(state: HookState) -> tuple[str | None, str | None]:
    return state.activity, state.reason


def test_claude_status_file_is_found_from_the_transcript_path(tmp_path: Path) -> None:
    config = tmp_path / ".claude"
    (config / "sessions").mkdir(parents=True)
    transcript = config / "projects" / "-w" / f"{SID}.jsonl"
    state = HookState("working", None, 10.0, pid=777, session_id=SID, transcript=str(transcript))
    assert state.config_dir == config and hook_state.claude_status(state) is None
    (config / "sessions" / "777.json").write_text(json.dumps({
        "pid": 777, "sessionId": SID, "status": "waiting", "waitingFor": "permission prompt",
        "statusUpdatedAt": 12_500}))
    assert hook_state.claude_status(state) == ClaudeStatus("waiting", "permission prompt", 12.5)
    (config / "sessions" / "777.json").write_text(json.dumps({"sessionId": "other", "status": "idle"}))
    assert hook_state.claude_status(state) is None  # another conversation of that process
    (config / "sessions" / "777.json").write_text("{torn")
    assert hook_state.claude_status(state) is None


def test_reading_the_file_takes_the_tail_and_skips_a_line_being_written(tmp_path: Path) -> None:
    path = tmp_path / "hooks.jsonl"
    filler = [hook_record.record(PAYLOADS["PostToolUse"], 1, 1.0) for _ in range(2000)]  # > TAIL bytes
    text = "".join(json.dumps(line) + "\n" for line in filler)
    text += json.dumps(hook_record.record(PAYLOADS["PermissionRequest"], 9, 2.0)) + "\n"
    path.write_text(text + '{"t": 3.0, "e": "Stop", "si')  # a hook still writing its line
    assert path.stat().st_size > hook_state.TAIL
    state = hook_state.read(path)
    assert (state.activity, state.pid) == ("waiting", 9)
    with path.open("a") as handle:
        handle.write('d": "x"}\n')
    assert hook_state.read(path).reason == "done"  # the cache follows the file
    assert hook_state.read(tmp_path / "none.jsonl") == HookState()


def test_reset_times_from_every_known_wording() -> None:
    assert rate_limit_reset("You've hit your session limit · resets 7:39pm (UTC)") == "resets 7:39pm (UTC)"
    assert rate_limit_reset("You've hit your weekly limit · resets Mon 12:00am") == "resets Mon 12:00am"
    assert rate_limit_reset("Claude usage limit reached. Your limit will reset at 5pm (America/Chicago).") == \
        "resets 5pm (America/Chicago)"
    epoch = rate_limit_reset("Claude AI usage limit reached|1762952400")
    assert epoch is not None and epoch.startswith("resets 2025-11-")
    assert rate_limit_reset("API Error: Request rejected (429) · Please try again later.") is None


def test_a_fifo_in_place_of_the_files_the_agent_can_write_blocks_nothing(tmp_path: Path) -> None:
    """hooks.jsonl and Claude's status file lie where the agent can write: a FIFO there must not
    hang `cockpit ls` (opening one for reading blocks until a writer comes)."""
    os.mkfifo(tmp_path / "hooks.jsonl")
    assert hook_state.read(tmp_path / "hooks.jsonl") == HookState()
    config = tmp_path / ".claude"
    (config / "sessions").mkdir(parents=True)
    os.mkfifo(config / "sessions" / "777.json")
    state = HookState("working", None, 1.0, pid=777, transcript=str(config / "projects" / "-w" / "s.jsonl"))
    assert hook_state.claude_status(state) is None
