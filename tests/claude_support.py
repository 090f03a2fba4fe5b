"""Claude Code for the tests: the hook inputs it sends (as its hooks documentation gives them and as
Claude Code 2.1.197 sent them, recorded in the research for issue 16), a stand-in ``claude`` that
fires them through the settings file cockpit wrote, transcripts in its format, and the real CLI from
the npm registry (installed once per machine into a cache outside the repository)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cockpit.core.fleet import Fleet
from conftest import wait_until

SID = "419241e6-982b-4839-b9c5-d53f0932a10c"


def base(event: str, **fields: object) -> dict[str, object]:
    payload: dict[str, object] = {"session_id": SID, "transcript_path": f"/home/u/.claude/projects/-w/{SID}.jsonl",
                                  "cwd": "/w", "hook_event_name": event}
    payload.update(fields)
    return payload


BASH = {"command": "touch created_by_agent.txt", "description": "Create a marker file"}
QUESTION = {"questions": [{"question": "Which colour should the button be?", "header": "Colour",
                           "options": [{"label": "Red", "description": "warm"},
                                       {"label": "Blue", "description": "cool"}], "multiSelect": False}]}

# Every hook event cockpit registers, with the fields Claude Code sends (hooks reference; observed 2.1.197).
PAYLOADS: dict[str, dict[str, object]] = {
    "SessionStart": base("SessionStart", source="startup", model="claude-opus-4-8[1m]"),
    "SessionStart-resume": base("SessionStart", source="resume"),
    "SessionStart-compact": base("SessionStart", source="compact", prompt_id="d73b"),
    "UserPromptSubmit": base("UserPromptSubmit", prompt_id="2400", permission_mode="default", prompt="do a task"),
    "PreToolUse": base("PreToolUse", permission_mode="default", effort={"level": "high"}, tool_name="Bash",
                       tool_input=BASH, tool_use_id="toolu_fake_0001"),
    "PreToolUse-question": base("PreToolUse", tool_name="AskUserQuestion", tool_input=QUESTION,
                                tool_use_id="toolu_fake_0002"),
    "PreToolUse-edit": base("PreToolUse", tool_name="Edit", tool_input={
        "file_path": "/w/src/app.py", "old_string": "a", "new_string": "b", "replace_all": False},
        tool_use_id="toolu_fake_0003"),
    "PermissionRequest": base("PermissionRequest", permission_mode="default", tool_name="Bash", tool_input=BASH,
                              permission_suggestions=[{"type": "setMode", "mode": "acceptEdits",
                                                       "destination": "session"}]),
    "PermissionRequest-question": base("PermissionRequest", tool_name="AskUserQuestion", tool_input=QUESTION),
    "PermissionDenied": base("PermissionDenied", permission_mode="auto", tool_name="Bash",
                             tool_input={"command": "rm -rf /tmp/build", "description": "Clean build directory"},
                             tool_use_id="toolu_01ABC123", reason="Blocked by classifier"),
    "PostToolUse": base("PostToolUse", tool_name="Bash", tool_input=BASH, tool_use_id="toolu_fake_0005",
                        tool_response={"stdout": "", "stderr": "", "interrupted": False, "isImage": False},
                        duration_ms=221),
    "PostToolUseFailure": base("PostToolUseFailure", tool_name="Bash",
                               tool_input={"command": "cat missing_file.txt", "description": "Read"},
                               tool_use_id="toolu_fake_0002", is_interrupt=False, duration_ms=70,
                               error="Exit code 1\ncat: missing_file.txt: No such file or directory"),
    "Notification-permission": base("Notification", message="Claude needs your permission",
                                    notification_type="permission_prompt"),
    "Notification-idle": base("Notification", message="Claude is waiting for your input",
                              notification_type="idle_prompt"),
    "Notification-elicitation": base("Notification", message="MCP server asks for your token",
                                     notification_type="elicitation_dialog"),
    "Stop": base("Stop", permission_mode="default", stop_hook_active=False,
                 last_assistant_message="All done: created the file.", background_tasks=[], session_crons=[]),
    "StopFailure-auth": base("StopFailure", error="authentication_failed",
                             last_assistant_message="Not logged in · Please run /login"),
    "StopFailure-limit": base("StopFailure", error="rate_limit",
                              last_assistant_message="You've hit your session limit · resets 7:39pm (UTC)"),
    "StopFailure-429": base("StopFailure", error="rate_limit", last_assistant_message=(
        "API Error: Request rejected (429) · This request would exceed your account's rate limit. "
        "Please try again later.")),
    "StopFailure-server": base("StopFailure", error="server_error",
                               last_assistant_message="API Error: 529 Overloaded."),
    "PreCompact": base("PreCompact", trigger="manual", custom_instructions=None),
    "PostCompact": base("PostCompact", trigger="manual", compact_summary="Thanks for answering."),
    "SessionEnd": base("SessionEnd", reason="prompt_input_exit"),
}


# -- a stand-in for Claude Code ---------------------------------------------------------------------
FAKE_CLAUDE = r'''
import json, os, shlex, subprocess, sys, time
args = sys.argv[1:]
with open("claude-args.json", "a") as out:
    out.write(json.dumps(args) + "\n")
settings = json.load(open(args[args.index("--settings") + 1]))
script = os.environ["FAKE_CLAUDE_SCRIPT"]
done = 0
while True:  # fire the hook events the test appends to the script, each through cockpit's settings
    try:
        lines = open(script).read().splitlines()
    except OSError:
        lines = []
    for line in lines[done:]:
        if line == "exit":
            sys.exit(0)
        payload = json.loads(line)
        payload.setdefault("cwd", os.getcwd())
        for group in settings["hooks"].get(payload["hook_event_name"], []):
            for hook in group["hooks"]:
                if "hook_record" in hook["command"]:
                    subprocess.run(hook["command"], shell=True, input=json.dumps(payload).encode(), check=True)
        done += 1
    time.sleep(0.05)
'''


def install_fake_claude(bindir: Path) -> Path:
    """A ``claude`` on ``bindir`` that records its arguments (``claude-args.json`` in its cwd, one
    JSON list per start) and fires the hook events in ``$FAKE_CLAUDE_SCRIPT`` (one JSON payload per
    line, from its first line, then each line appended; ``exit`` ends it) through the recorder
    commands of its ``--settings`` file."""
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "fake_claude.py"
    script.write_text(FAKE_CLAUDE)
    claude = bindir / "claude"
    claude.write_text(f"#!/bin/sh\nexec {sys.executable} -u {script} \"$@\"\n")
    claude.chmod(0o755)
    return claude


class Claude:
    """One stand-in Claude Code agent ``cc`` of the fleet."""

    def __init__(self, repo: Path, tmp_path: Path, fleet_keys: str = "", agent_keys: str = "") -> None:
        self.repo = repo
        self.fleet = Fleet(repo)
        bindir = tmp_path / "bin"
        install_fake_claude(bindir)
        self.script = tmp_path / "script.jsonl"
        self.script.write_text("")
        self.transcript = tmp_path / "home" / ".claude" / "projects" / "-w" / f"{SID}.jsonl"
        self.transcript.parent.mkdir(parents=True)
        path = f"{bindir}:{os.environ['PATH']}"
        (repo / "cockpit.toml").write_text(
            f"[cockpit]\nidle_after = 1\n{fleet_keys}\n"
            f'[[agent]]\nname = "cc"\npreset = "claude-code"\ntask = "fix it"\n{agent_keys}\n'
            f'env = {{ PATH = "{path}", FAKE_CLAUDE_SCRIPT = "{self.script}" }}\n')
        self.worktree = repo / ".cockpit" / "worktrees" / "cc"
        self.settings = repo / ".cockpit" / "agents" / "cc" / "claude-settings.json"
        self.hooks = repo / ".cockpit" / "agents" / "cc" / "hooks.jsonl"

    def fire(self, *kinds: str) -> None:
        """Have the agent's program fire these hook events, and wait until each is recorded."""
        before = self.recorded()
        with self.script.open("a") as handle:
            for kind in kinds:
                payload = dict(PAYLOADS[kind], transcript_path=str(self.transcript))
                handle.write(json.dumps(payload) + "\n")
        wait_until(lambda: self.recorded() >= before + len(kinds), message=f"hooks {kinds} recorded")

    def recorded(self) -> int:
        return len(self.hooks.read_text().splitlines()) if self.hooks.exists() else 0

    def starts(self) -> list[list[str]]:
        """The argument lists ``claude`` was started with, oldest first."""
        path = self.worktree / "claude-args.json"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def activity(self) -> tuple[str | None, str | None]:
        agent = self.fleet.agent("cc")
        return agent.activity, agent.activity_reason


# -- transcripts in Claude Code's format -------------------------------------------------------------
def assistant_line(message_id: str, input_tokens: int, output_tokens: int, cache_read: int = 0,
                   cache_creation: int = 0, content: str = "ok", synthetic: bool = False,
                   sidechain: bool = False) -> str:
    usage = {"input_tokens": input_tokens, "cache_creation_input_tokens": cache_creation,
             "cache_read_input_tokens": cache_read, "output_tokens": output_tokens,
             "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0}, "service_tier": "standard"}
    line = {"parentUuid": "59c81116", "isSidechain": sidechain, "type": "assistant", "uuid": f"u-{message_id}",
            "message": {"id": message_id, "type": "message", "role": "assistant",
                        "model": "<synthetic>" if synthetic else "claude-opus-4-8",
                        "content": [{"type": "text", "text": content}], "stop_reason": "end_turn", "usage": usage},
            "requestId": f"req-{message_id}", "sessionId": SID, "version": "2.1.197"}
    if synthetic:
        line["isApiErrorMessage"] = True
        line["error"] = "rate_limit"
    return json.dumps(line, separators=(",", ":")) + "\n"


def user_line(text: str = "do a task") -> str:
    return json.dumps({"type": "user", "message": {"role": "user", "content": text}, "uuid": "x",
                       "sessionId": SID}) + "\n"


# -- the real Claude Code CLI ---------------------------------------------------------------------------
CLAUDE_VERSION = "2.1.197"
"""The version whose offline behaviour the tests rely on (docs/presets.md)."""
CACHE = Path(os.environ.get("COCKPIT_TEST_NPM_CACHE") or Path(__file__).resolve().parents[1] / ".venv" / "npm")


def real_claude() -> Path | None:
    """The real ``claude`` binary, installed with npm into :data:`CACHE` on first use (under a lock:
    tests run in parallel). None when npm is not available; an install that fails raises."""
    binary = CACHE / "node_modules" / ".bin" / "claude"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            result = subprocess.run([npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund",
                                     f"@anthropic-ai/claude-code@{CLAUDE_VERSION}"],
                                    capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
            if result.returncode != 0 or not binary.exists():
                raise RuntimeError(f"npm install @anthropic-ai/claude-code@{CLAUDE_VERSION} failed: "
                                   f"{result.stderr[-2000:]}")
    return binary


def claude_home(home: Path, trusted: Path) -> dict[str, str]:
    """A throw-away HOME in which Claude Code's onboarding is done and ``trusted`` (a repository:
    its worktrees are subdirectories) is trusted, so it starts its REPL offline; the environment
    an agent needs for it."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True, "theme": "dark",
        "projects": {str(trusted): {"hasTrustDialogAccepted": True}}}))
    return {"HOME": str(home), "DISABLE_AUTOUPDATER": "1", "LANG": "C.UTF-8"}
