"""What an agent's own hooks say it does: the lines :mod:`cockpit.core.hook_record` appended to
its ``hooks.jsonl``, folded into an activity and a reason, and reconciled with the status file
Claude Code keeps for each of its processes.

The fold (:func:`fold`, pure) maps each Claude Code hook event to what it means:

======================================  ===============================================
``UserPromptSubmit``, ``PostToolUse*``  ``working``
``PreToolUse``                          ``working`` with the tool (``Bash: pytest -q``)
``PermissionRequest``                   ``waiting``, ``permission: <tool>: <argument>``
``AskUserQuestion`` (Pre/Permission)    ``waiting``, ``question: <the question>``
``Notification``                        ``permission_prompt`` confirms a permission wait;
                                        ``elicitation_*`` is a question; ``idle_prompt``
                                        is ``done``; other types change nothing
``Stop``, ``SessionStart``              ``waiting``, ``done`` (at its prompt)
``StopFailure``                         ``rate-limited`` (``error: rate_limit``; the reason is
                                        the reset time when the message shows one), else
                                        ``error`` (``<error>: <message>``)
``PreCompact`` .. ``PostCompact``       ``compacting``; then ``done`` (manual) or ``working``
``SessionEnd``                          ``ended``: the hooks say no more
======================================  ===============================================

Hooks are silent in a few places (a permission answered "No", Esc, a message queued while busy,
slash commands); there Claude Code's own status file, ``<config>/sessions/<pid>.json``
(``status``: ``busy``, ``waiting`` or ``idle``), says more, and :func:`reconcile` lets it win when
it changed after the last hook event. Reading is cheap: the last :data:`TAIL` bytes of the file,
cached by size and mtime.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cockpit.core.hook_record import HOOKS_FILE
from cockpit.core.presets import rate_limit_reset

TAIL = 64 * 1024
STATUS_MARGIN = 0.0
"""Seconds by which Claude's status file must be newer than the last hook event to win. The two
agree at every transition a hook reports (the status changes as the hook fires), so only a status
changed after the last hook, with no hook of its own, says more: a refusal can come a tenth of a
second after the permission prompt (checked with the real CLI)."""

WORKING, WAITING, COMPACTING, RATE_LIMITED, ERROR, ENDED = (
    "working", "waiting", "compacting", "rate-limited", "error", "ended")
DONE = "done"


@dataclass(frozen=True)
class HookState:
    """What the hooks said last. ``activity`` None: they said nothing that tells."""

    activity: str | None = None
    reason: str | None = None
    at: float = 0.0  # epoch seconds of the event that decided it
    pid: int | None = None  # the agent program that fired the latest event
    session_id: str | None = None
    transcript: str | None = None
    tool: str | None = None  # ``Bash: pytest -q``: the latest tool call, for a late notification

    @property
    def config_dir(self) -> Path | None:
        """Claude's configuration directory (``~/.claude``), from the transcript's path
        (``<config>/projects/<project>/<session>.jsonl``)."""
        if not self.transcript:
            return None
        path = Path(self.transcript)
        return path.parents[2] if len(path.parents) > 2 and path.parents[1].name == "projects" else None


def _tool(line: dict[str, Any]) -> str | None:
    tool = line.get("tool")
    if not isinstance(tool, str) or not tool:
        return None
    arg = line.get("arg")
    return f"{tool}: {arg}" if isinstance(arg, str) and arg else tool


def _question(line: dict[str, Any]) -> str:
    arg = line.get("arg")
    return f"question: {arg}" if isinstance(arg, str) and arg else "question"


def fold(state: HookState, line: dict[str, Any]) -> HookState:
    """``state`` after one recorded hook line (see the module's table)."""
    event = line.get("e")
    at = line.get("t") if isinstance(line.get("t"), (int, float)) else state.at
    ids: dict[str, Any] = {"at": at}
    if isinstance(line.get("pid"), int):
        ids["pid"] = line["pid"]
    if isinstance(line.get("sid"), str):
        ids["session_id"] = line["sid"]
    if isinstance(line.get("tp"), str):
        ids["transcript"] = line["tp"]

    def to(activity: str | None, reason: str | None = None, **more: Any) -> HookState:
        return replace(state, activity=activity, reason=reason, **ids, **more)

    tool = _tool(line)
    if event == "SessionStart":
        if line.get("src") == "compact":  # inside a compaction: PostCompact ends it
            return replace(state, **ids)
        return to(WAITING, DONE, tool=None)
    if event == "UserPromptSubmit":
        return to(WORKING, None, tool=None)
    if event == "PreToolUse":
        if line.get("tool") == "AskUserQuestion":
            return to(WAITING, _question(line), tool=tool)
        return to(WORKING, tool, tool=tool)
    if event == "PermissionRequest":
        if line.get("tool") == "AskUserQuestion":
            return to(WAITING, _question(line), tool=tool)
        return to(WAITING, f"permission: {tool}" if tool else "permission", tool=tool)
    if event in ("PostToolUse", "PostToolUseFailure", "PermissionDenied"):
        return to(WORKING, None, tool=None)
    if event == "Notification":
        kind = line.get("ntype")
        if kind == "permission_prompt":
            if state.activity == WAITING and state.reason and state.reason.startswith(("permission", "question")):
                return replace(state, **ids)
            return to(WAITING, f"permission: {state.tool}" if state.tool else "permission", tool=state.tool)
        if kind in ("elicitation_dialog", "elicitation_url_dialog"):
            message = line.get("msg")
            return to(WAITING, f"question: {message}" if message else "question", tool=state.tool)
        if kind == "idle_prompt" and state.activity not in (ERROR, RATE_LIMITED):
            return to(WAITING, DONE, tool=None)
        return replace(state, **ids)
    if event == "Stop":
        return to(WAITING, DONE, tool=None)
    if event == "StopFailure":
        error = str(line.get("err") or "unknown")
        message = str(line["msg"]) if isinstance(line.get("msg"), str) else ""
        if error == "rate_limit":
            return to(RATE_LIMITED, rate_limit_reset(message) or message or None, tool=None)
        return to(ERROR, f"{error}: {message}" if message else error, tool=None)
    if event == "PreCompact":
        return to(COMPACTING, line.get("trig") if isinstance(line.get("trig"), str) else None)
    if event == "PostCompact":
        if line.get("trig") == "auto":
            return to(WORKING, None)
        return to(WAITING, DONE, tool=None)
    if event == "SessionEnd":
        return to(ENDED, line.get("why") if isinstance(line.get("why"), str) else None, tool=None)
    return replace(state, **ids) if event else state


def fold_lines(data: bytes, state: HookState | None = None) -> HookState:
    """Fold every complete, well-formed line of ``data`` (others are skipped)."""
    state = state or HookState()
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            state = fold(state, line)
    return state


def hooks_file(agent_dir: Path) -> Path:
    return agent_dir / HOOKS_FILE


def read_regular(path: Path | str, start: int = 0, limit: int | None = None) -> tuple[os.stat_result, bytes]:
    """``(stat, bytes from start on, at most limit)`` of a regular file. These files sit where
    the agent can write: a FIFO or a device put in their place must not block or flood cockpit
    (raises OSError for anything but a regular file)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        end = info.st_size if limit is None else min(info.st_size, start + limit)
        return info, os.pread(fd, max(0, end - start), start) if end > start else b""
    finally:
        os.close(fd)


_cache: dict[str, tuple[tuple[int, int, int], HookState]] = {}


def read(path: Path) -> HookState:
    """The state the last :data:`TAIL` bytes of ``path`` give (cached while the file is unchanged).
    A missing or unreadable file says nothing."""
    try:
        info = os.stat(path)
        key = (info.st_ino, info.st_size, info.st_mtime_ns)
        cached = _cache.get(str(path))
        if cached is not None and cached[0] == key:
            return cached[1]
        start = max(0, info.st_size - TAIL)
        info, data = read_regular(path, start, TAIL)
        key = (info.st_ino, info.st_size, info.st_mtime_ns)
    except OSError:
        return HookState()
    if start > 0:  # the first line is cut: from the next one on
        data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
    end = data.rfind(b"\n") + 1  # a line being written is not read yet
    state = fold_lines(data[:end])
    if len(_cache) > 512:
        _cache.clear()
    _cache[str(path)] = (key, state)
    return state


# -- Claude Code's own status file -----------------------------------------------------------------
@dataclass(frozen=True)
class ClaudeStatus:
    """``<config>/sessions/<pid>.json``, which an interactive Claude Code keeps while it runs."""

    status: str  # busy, waiting, idle
    waiting_for: str | None
    at: float  # epoch seconds of the status's last change


def claude_status(state: HookState) -> ClaudeStatus | None:
    """The status file of the process that fired the latest hook event, if it has one."""
    config = state.config_dir
    if config is None or not state.pid:
        return None
    try:
        raw = json.loads(read_regular(config / "sessions" / f"{state.pid}.json", 0, 1 << 16)[1])
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("status") not in ("busy", "waiting", "idle"):
        return None
    if state.session_id and raw.get("sessionId") not in (None, state.session_id):
        return None  # the process moved on to another conversation (/clear, /resume): not ours
    stamp = raw.get("statusUpdatedAt") or raw.get("updatedAt")
    at = stamp / 1000 if isinstance(stamp, (int, float)) else 0.0
    waiting_for = raw.get("waitingFor") if isinstance(raw.get("waitingFor"), str) else None
    return ClaudeStatus(raw["status"], waiting_for, at)


def reconcile(state: HookState, status: ClaudeStatus | None) -> tuple[str | None, str | None]:
    """The activity and reason, from the hooks corrected by Claude's status file where the status
    changed after the last hook event: idle after a refused
    permission or Esc (no hook fires), busy on a queued message or a slash command, waiting on a
    dialog no hook announced."""
    activity, reason = state.activity, state.reason
    if status is None or status.at <= state.at + STATUS_MARGIN or activity in (None, ENDED):
        return activity, reason
    if status.status == "idle" and activity in (WORKING, COMPACTING, WAITING) and reason != DONE:
        return WAITING, DONE
    if status.status == "busy" and activity in (WAITING, ERROR, RATE_LIMITED):
        return WORKING, None
    if status.status == "waiting" and activity not in (WAITING, RATE_LIMITED):
        # (a usage limit opens Claude's own "Stop and wait for limit to reset" dialog: still the limit)
        what = status.waiting_for or "input"
        if "permission" in what:
            return WAITING, f"permission: {state.tool}" if state.tool else "permission"
        return WAITING, f"question: {what}"
    return activity, reason
