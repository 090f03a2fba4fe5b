"""The hook recorder: what an agent program's own hooks run to tell cockpit what it does.

Claude Code runs one command per hook event (``SessionStart``, ``PreToolUse``, ``Stop``, ...)
with the event as JSON on stdin, and waits for it. This module is that command, so it is built
to be cheap and harmless:

* it imports only the standard library (this package's ``__init__`` modules are docstrings), and
  runs as ``python -I -S -c BOOT <package parent> <agent dir>`` (:func:`argv`): no site-packages,
  no ``$PYTHONPATH``, no current directory on the path; the whole process takes a few tens of
  milliseconds (``make bench``, figure ``hook``);
* it appends ONE short JSON line to ``<agent dir>/hooks.jsonl`` (``O_APPEND``, a single
  ``write``, no lock, no fsync): the event, the session id and transcript, Claude's pid, and a
  few words of detail (the tool and its argument, the notification type, the error), every
  field cut to a bounded length;
* it prints nothing (the stdout of ``SessionStart`` and ``UserPromptSubmit`` hooks goes into the
  model's context), and exits 0 whatever its input (Claude Code reads exit 2 as "block");
  malformed, truncated or huge input is recorded nowhere but as one line in the fleet's hook log
  (``.cockpit/hook.log``).

:mod:`cockpit.core.hook_state` folds these lines into an activity and a reason.
"""

from __future__ import annotations

import json
import os
import re
import select
import sys
import time

HOOKS_FILE = "hooks.jsonl"
"""The per-agent file the recorder appends to, in the agent's directory (outside its worktree)."""

EVENTS = ("SessionStart", "UserPromptSubmit", "Notification", "PermissionRequest", "PermissionDenied",
          "PreToolUse", "PostToolUse", "PostToolUseFailure", "Stop", "StopFailure", "SessionEnd",
          "PreCompact", "PostCompact")
"""The Claude Code hook events cockpit registers (all present in Claude Code 2.1.197)."""

BOOT = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
        "from cockpit.core.hook_record import main; main()")
"""What ``python -I -S -c BOOT PACKAGE_PARENT AGENT_DIR`` runs. No quote of either kind."""

READ_LIMIT = 4 * 1024 * 1024
"""Bytes of input parsed as JSON; a longer input (a huge ``tool_response``) is drained and its
leading fields are read from its first bytes instead (they come before the tool's data)."""
HEAD = 64 * 1024
READ_TIMEOUT = 10.0
"""Seconds the recorder waits for its input to end before it gives up (it never hangs Claude)."""

SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "busybox"})
_TEXT = {"sid": 100, "tp": 1024, "tool": 100, "arg": 200, "msg": 300, "err": 100, "ntype": 60,
         "src": 40, "why": 200, "trig": 40, "e": 60}
_HEAD_KEYS = ("hook_event_name", "session_id", "transcript_path", "tool_name", "notification_type",
              "source", "error", "reason", "trigger", "message")
_STRING = r'"{key}"\s*:\s*"((?:[^"\\]|\\.)*)"'


def argv(python: str, package_parent: str, agent_dir: str) -> list[str]:
    """The command that records one hook event of the agent whose directory is ``agent_dir``."""
    return [python, "-I", "-S", "-c", BOOT, package_parent, agent_dir]


# -- reading the input ------------------------------------------------------------------------------
def read_input(fd: int = 0, limit: int = READ_LIMIT, timeout: float = READ_TIMEOUT) -> tuple[bytes, int]:
    """The first ``limit`` bytes of the input and its whole size (the rest is drained)."""
    kept: list[bytes] = []
    size = 0
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"input not finished after {timeout:g} s ({size} bytes read)")
        try:
            ready, _, _ = select.select([fd], [], [], left)
        except (OSError, ValueError):  # not selectable (a regular file): plain reads end anyway
            ready = [fd]
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(kept), size
        if size < limit:
            kept.append(chunk[:limit - size])
        size += len(chunk)


def _from_head(head: bytes) -> dict[str, object]:
    """The leading string fields of a JSON object too big to parse (first match of each key)."""
    text = head.decode("utf-8", errors="replace")
    found: dict[str, object] = {}
    for key in _HEAD_KEYS:
        match = re.search(_STRING.format(key=key), text)
        if match:
            try:
                found[key] = json.loads(f'"{match.group(1)}"')
            except ValueError:
                continue
    return found


def parse(data: bytes, size: int) -> dict[str, object]:
    """The hook's JSON object. Raises ValueError when it is not one."""
    if size > len(data):
        found = _from_head(data[:HEAD])
        if "hook_event_name" not in found:
            raise ValueError(f"input of {size} bytes is too big and names no hook_event_name")
        found["_truncated"] = size
        return found
    payload = json.loads(data)
    if not isinstance(payload, dict):
        raise ValueError(f"input is a JSON {type(payload).__name__}, not an object")
    return payload


# -- what is worth keeping ----------------------------------------------------------------------------
def _one_line(value: object, limit: int, first_line: bool = False) -> str:
    text = str(value).strip()
    if first_line and "\n" in text:  # a script: its first line says what it is
        text = text.split("\n", 1)[0].rstrip() + " …"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _short_path(path: str, cwd: object) -> str:
    if isinstance(cwd, str) and cwd and path.startswith(cwd.rstrip("/") + "/"):
        return path[len(cwd.rstrip("/")) + 1:]
    return path


def tool_argument(tool: str, tool_input: object, cwd: object = None) -> str:
    """A few words saying what a tool call does: the command, the file, the pattern, the question."""
    if not isinstance(tool_input, dict):
        return ""
    if tool == "AskUserQuestion":
        questions = tool_input.get("questions")
        if isinstance(questions, list) and questions and isinstance(questions[0], dict):
            return str(questions[0].get("question") or "")
        return ""
    for key in ("command", "file_path", "notebook_path", "url", "query", "pattern", "description", "prompt"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return _short_path(value, cwd) if key.endswith("_path") else value
    for value in tool_input.values():  # an MCP tool: its first short string argument
        if isinstance(value, str) and value:
            return value
    return ""


def record(payload: dict[str, object], pid: int | None, now: float) -> dict[str, object]:
    """The line kept for one hook event: short keys, bounded values, nothing else."""
    line: dict[str, object] = {"t": round(now, 3)}
    fields = {"e": "hook_event_name", "sid": "session_id", "tp": "transcript_path", "tool": "tool_name",
              "ntype": "notification_type", "src": "source", "err": "error", "trig": "trigger"}
    for short, key in fields.items():
        value = payload.get(key)
        if isinstance(value, str) and value:
            line[short] = _one_line(value, _TEXT[short]) if short != "tp" else value[:_TEXT["tp"]]
    event = line.get("e")
    if "tool" in line:
        argument = tool_argument(str(line["tool"]), payload.get("tool_input"), payload.get("cwd"))
        if argument:
            line["arg"] = _one_line(argument, _TEXT["arg"], first_line=True)
    message = payload.get("last_assistant_message") if event in ("Stop", "StopFailure") else payload.get("message")
    if isinstance(message, str) and message:
        line["msg"] = _one_line(message, _TEXT["msg"])
    reason = payload.get("reason")
    if isinstance(reason, str) and reason:
        line["why"] = _one_line(reason, _TEXT["why"])
    if pid:
        line["pid"] = pid
    if "_truncated" in payload:
        line["big"] = payload["_truncated"]
    return line


# -- the process ----------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[str, int] | None:
    """(command name, parent pid) of ``pid``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    try:
        name = raw[raw.index(b"(") + 1:raw.rindex(b")")].decode(errors="replace")
        return name, int(raw[raw.rindex(b")") + 2:].split()[1])
    except (ValueError, IndexError):
        return None


def agent_pid() -> int | None:
    """The agent program's pid: this process's parent, or the shell's parent when a shell ran us."""
    pid = os.getppid()
    for _ in range(3):
        info = _stat(pid)
        if info is None:
            return None
        name, parent = info
        if name not in SHELLS:
            return pid
        pid = parent
    return None


def log(agent_dir: str, message: str) -> None:
    """One line in the fleet's hook log (``<repo>/.cockpit/hook.log``); never raises."""
    try:
        path = os.path.join(os.path.dirname(os.path.dirname(agent_dir.rstrip("/"))), "hook.log")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        name = os.path.basename(agent_dir.rstrip("/"))
        text = f"{stamp} hook {name}: {_one_line(message, 500)}\n".encode(errors="replace")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text)
        finally:
            os.close(fd)
    except Exception:  # noqa: BLE001 - the hook log is the last resort: nothing else to tell
        pass


def run(args: list[str], fd: int = 0) -> None:
    """Record the event on ``fd`` for the agent directory ``args[0]``; every error is logged."""
    if len(args) != 1 or not os.path.isabs(args[0]):
        raise ValueError(f"usage: hook_record AGENT_DIR (absolute), got {args!r}")
    agent_dir = args[0]
    try:
        data, size = read_input(fd)
        payload = parse(data, size)
        line = record(payload, agent_pid(), time.time())
        if "e" not in line:
            raise ValueError("input has no hook_event_name")
        text = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        out = os.open(os.path.join(agent_dir, HOOKS_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(out, text)
        finally:
            os.close(out)
        if "big" in line:
            log(agent_dir, f"{line['e']}: input of {size} bytes; recorded from its first {HEAD} bytes")
    except Exception as exc:  # noqa: BLE001 - a hook must never fail the agent: the log says why
        log(agent_dir, f"not recorded: {type(exc).__name__}: {exc}")


def main() -> None:
    """The entry point of :data:`BOOT`: always exit 0, print nothing."""
    try:
        args = sys.argv[1:]
        if len(args) == 1 and os.path.isabs(args[0]):
            run(args)
        else:  # no agent directory: nowhere to log but stderr (Claude Code's debug log on exit 0)
            os.write(2, f"cockpit hook: not recorded: expected one absolute agent directory, got {args!r}\n".encode())
    except BaseException:  # noqa: BLE001 - not even Ctrl-C or a signal's exception may fail the agent
        pass
    sys.stdout = sys.stderr = None  # nothing to flush at exit, so nothing that could fail there
    raise SystemExit(0)
