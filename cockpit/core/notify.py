"""Notifications: which events deserve the user's attention, how often, and how they reach them.

Pure parts (no I/O), shared by the watcher and any view:

- :func:`notification` turns an event into a notification (or None): a change into ``waiting``
  (or a new reason to wait: another permission asked), ``stalled``, ``rate-limited`` or
  ``error``; a state change to ``failed`` or ``halted``; a pause for a token budget; an
  out-of-scope edit; a merge queue outcome (``merged``, ``conflict``, ``rejected``); a merge
  conflict the conflict radar predicts (``conflict.predicted``).
- :class:`RateLimiter`: at most one notification per agent per interval (10 s by default);
  what arrives inside the window is merged into one trailing notification; ``failed`` and
  ``halted`` are never held back.
- :func:`terminal_alert`: the bell plus OSC 9 and OSC 777 desktop-notification sequences for a
  terminal (wrapped for tmux passthrough when running inside tmux), so a laptop running the SSH
  client shows the notification.

And :class:`CommandRunner`, which runs the user's ``notify_command`` once per notification
(``/bin/sh -c``, the notification as one JSON object on stdin, a 10 s timeout) in a thread of
its own, so nothing ever waits for it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cockpit.core.events import Event

NOTIFY_TIMEOUT = 10.0
DEFAULT_INTERVAL = 10.0
NOTIFY_ACTIVITIES = ("waiting", "stalled", "rate-limited", "error")
NOTIFY_STATES = ("failed", "halted")  # never suppressed by the rate limit
# Event types other engines may record that always deserve a notification.
NOTIFY_EVENT_TYPES = ("out_of_scope", "scope.violation", "merged", "conflict", "rejected", "conflict.predicted")

Note = dict[str, Any]


def notification(event: Event, previous_state: str | None = None, state: str | None = None) -> Note | None:
    """The notification ``event`` calls for, or None.

    ``previous_state`` and ``state`` are the agent's recorded state before and after the event
    (the caller replays the log); a change into ``failed`` or ``halted`` is a ``state``
    notification, whichever event caused it (an exit, ``cockpit fail``, the 2-failure rule).
    The shape is ``{type, agent, activity | state, previous, ts}`` plus a few details.
    """
    if not event.agent:
        return None
    data = event.data
    if event.type == "activity":
        if data.get("activity") in NOTIFY_ACTIVITIES:
            note: Note = {"type": "activity", "agent": event.agent, "activity": data["activity"],
                          "previous": data.get("previous"), "ts": event.ts}
            if data.get("reason"):
                note["reason"] = data["reason"]
            return note
        return None
    if event.type == "paused" and data.get("budget"):
        return {"type": "budget", "agent": event.agent, "reason": data.get("reason"), "ts": event.ts,
                "tokens": data.get("tokens"), "limit": data.get("limit")}
    if state in NOTIFY_STATES and state != previous_state:
        note = {"type": "state", "agent": event.agent, "state": state, "previous": previous_state,
                      "ts": event.ts}
        for key in ("exit_code", "reason", "blocked_by"):
            if data.get(key) is not None:
                note[key] = data[key]
        return note
    if event.type in NOTIFY_EVENT_TYPES:
        return {"type": event.type, "agent": event.agent, "ts": event.ts, "data": dict(data)}
    return None


def urgent(note: Note) -> bool:
    """Notifications the rate limit never holds back."""
    return (note.get("type") == "state" and note.get("state") in NOTIFY_STATES) or note.get("type") == "budget"


class RateLimiter:
    """At most one notification per agent per ``interval`` seconds; the rest of the window is
    merged into one trailing notification (the latest, with ``merged``: how many it stands for),
    sent when the window ends. Urgent notifications pass at once. Not thread-safe; pure (the
    caller passes the clock)."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._pending: dict[str, Note] = {}

    def offer(self, note: Note, now: float) -> list[Note]:
        """Notifications to send now because of ``note`` (it, or nothing: it was held)."""
        agent = str(note.get("agent"))
        last = self._last.get(agent)
        if urgent(note) or last is None or now - last >= self.interval:
            self._last[agent] = now
            if urgent(note):
                return [note]
            held = self._pending.pop(agent, None)
            if held is not None:  # the window ended but due() was not called yet
                note = {**note, "merged": held.get("merged", 1) + 1}
            return [note]
        held = self._pending.get(agent)
        self._pending[agent] = {**note, "merged": (held.get("merged", 1) + 1) if held else 1}
        return []

    def due(self, now: float) -> list[Note]:
        """Trailing notifications whose window has ended."""
        sent: list[Note] = []
        for agent, note in list(self._pending.items()):
            if now - self._last.get(agent, now - self.interval) >= self.interval:
                del self._pending[agent]
                self._last[agent] = now
                sent.append(note)
        return sent

    def drain(self) -> list[Note]:
        """Every held notification, now (the watcher is ending)."""
        notes = list(self._pending.values())
        self._pending.clear()
        return notes

    def next_due(self) -> float | None:
        """When the earliest held notification is due (clock of ``offer``), or None."""
        times = [self._last.get(agent, 0.0) + self.interval for agent in self._pending]
        return min(times) if times else None


# -- words and terminal sequences -------------------------------------------------------------------
def describe(note: Note) -> tuple[str, str]:
    """``(title, body)``: short human text for a notification."""
    agent = note.get("agent") or "?"
    title = f"cockpit: {agent}"
    kind = note.get("type")
    if kind == "activity":
        body = {"waiting": "is waiting for you",
                "stalled": "has printed nothing for a long time (stalled)",
                "rate-limited": "hit its usage limit",
                "error": "stopped on an error"}.get(str(note.get("activity")), str(note.get("activity")))
        if note.get("reason"):
            body += f": {note['reason']}"
    elif kind == "budget":
        body = f"paused: {note.get('reason') or 'over its token budget'}"
    elif kind == "state":
        body = str(note.get("state"))
        if note.get("exit_code") is not None:
            body += f" (exit {note['exit_code']})"
        if note.get("reason"):
            body += f": {note['reason']}"
    elif kind in ("out_of_scope", "scope.violation"):
        body = "edited files outside its scope"
    elif kind == "conflict.predicted":
        data = note.get("data") or {}
        other = data.get("with")
        paths = ", ".join(data.get("paths") or []) or "?"
        body = (f"would conflict with {data.get('base') or 'base'} in {paths}" if other == ":base"
                else f"would conflict with {other} in {paths}")
    else:
        body = str(kind)
    if note.get("merged", 1) > 1:
        body += f" (+{note['merged'] - 1} more)"
    return title, body


def _clean(text: str) -> str:
    """No control characters: they would end or corrupt the escape sequence."""
    return "".join(ch for ch in text if ch.isprintable())


def tmux_passthrough(sequence: str) -> str:
    """Wrap an escape sequence so tmux hands it to the outer terminal (``allow-passthrough``)."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def terminal_alert(note: Note, env: Mapping[str, str] | None = None) -> str:
    """The bell, then OSC 9 (iTerm2, WezTerm, kitty, Windows Terminal...) and OSC 777 (rxvt,
    foot, Ghostty, VTE...) desktop notifications for ``note``, as one string to write to the
    terminal. Inside tmux (``$TMUX`` set in ``env``) the OSC sequences are wrapped for
    passthrough; the bell is not (tmux forwards bells itself). Pure."""
    env = os.environ if env is None else env
    title, body = describe(note)
    title, body = _clean(title), _clean(body)
    sequences = [f"\x1b]9;{title}: {body}\x07",
                 f"\x1b]777;notify;{title.replace(';', ',')};{body}\x07"]
    if env.get("TMUX"):
        sequences = [tmux_passthrough(s) for s in sequences]
    return "\a" + "".join(sequences)


# -- notify_command -------------------------------------------------------------------------------
class CommandRunner:
    """Runs ``notify_command`` once per notification, each in its own thread, never waited for
    by the caller. A run that takes longer than ``timeout`` is killed with its process group."""

    def __init__(self, command: str, cwd: Path, timeout: float = NOTIFY_TIMEOUT) -> None:
        self.command = command
        self.cwd = cwd
        self.timeout = timeout
        self._threads: list[threading.Thread] = []

    def run(self, note: Note) -> None:
        thread = threading.Thread(target=self._run, args=(note,), name="notify", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _run(self, note: Note) -> None:
        payload = (json.dumps(note, ensure_ascii=False) + "\n").encode()
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", self.command], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, cwd=self.cwd, start_new_session=True)
        except OSError as exc:
            print(f"notify_command could not start: {exc}", file=sys.stderr, flush=True)
            return
        try:
            proc.communicate(payload, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            print(f"notify_command timed out after {self.timeout:g}s and was killed", file=sys.stderr, flush=True)
            return
        if proc.returncode != 0:
            print(f"notify_command exited with status {proc.returncode}", file=sys.stderr, flush=True)

    def join(self, timeout: float | None = None) -> None:
        """Wait for runs in flight (the watcher is ending; each run is bounded by its timeout)."""
        for thread in self._threads:
            thread.join(timeout)
