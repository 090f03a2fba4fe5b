"""The event log, ``.cockpit/events.jsonl``: the fleet's append-only history.

Every operation appends events here; every view (``ls``, the TUI, a second login) replays them.
Each line is one JSON object ``{seq, ts, type, agent, data}``. Appends take an exclusive
``flock`` on the file, are flushed and fsynced. A torn line (a crash mid-write) is skipped on
read and never fatal; the next append starts on a fresh line.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Event:
    seq: int
    ts: str
    type: str
    agent: str | None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"seq": self.seq, "ts": self.ts, "type": self.type, "agent": self.agent, "data": self.data},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(self.ts)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _parse(line: bytes) -> Event | None:
    try:
        obj = json.loads(line)
        return Event(int(obj["seq"]), str(obj["ts"]), str(obj["type"]), obj.get("agent"), dict(obj.get("data") or {}))
    except (ValueError, KeyError, TypeError):
        return None


def parse(line: bytes) -> Event | None:
    """One line of an event log, or None for a torn or foreign one (a host's log, read over ssh)."""
    return _parse(line)


class EventLog:
    """Append to and read from one ``events.jsonl``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, type: str, agent: str | None = None, **data: Any) -> Event:
        """Append one event durably and return it (with its sequence number)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last_seq, ends_clean = self._tail_state(fd)
            event = Event(last_seq + 1, now_iso(), type, agent, data)
            payload = event.to_json().encode() + b"\n"
            if not ends_clean:
                payload = b"\n" + payload
            os.write(fd, payload)
            os.fsync(fd)
            return event
        finally:
            os.close(fd)

    @staticmethod
    def _tail_state(fd: int) -> tuple[int, bool]:
        size = os.fstat(fd).st_size
        if size == 0:
            return 0, True
        chunk = 65536
        start = max(0, size - chunk)
        data = os.pread(fd, size - start, start)
        ends_clean = data.endswith(b"\n")
        for line in reversed(data.splitlines()):
            event = _parse(line)
            if event is not None:
                return event.seq, ends_clean
        if start > 0:  # pathological: a huge torn tail; fall back to a full scan
            last = 0
            for event in _iter_file(fd):
                last = event.seq
            return last, ends_clean
        return 0, ends_clean

    def read(self, offset: int = 0) -> tuple[list[Event], int]:
        """Events from byte ``offset`` on, and the offset after the last complete line.

        An incomplete last line is not consumed (a writer may be finishing it); a complete line
        that is not valid JSON is skipped.
        """
        try:
            with self.path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return [], 0
        end = data.rfind(b"\n") + 1
        events = [e for e in (_parse(line) for line in data[:end].splitlines() if line.strip()) if e]
        return events, offset + end

    def all(self) -> list[Event]:
        return self.read(0)[0]


def _iter_file(fd: int) -> Iterator[Event]:
    with os.fdopen(os.dup(fd), "rb") as handle:
        handle.seek(0)
        for line in handle:
            event = _parse(line)
            if event is not None:
                yield event
