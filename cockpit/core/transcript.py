"""Token usage from an agent program's transcript, read incrementally.

Claude Code writes each conversation as JSONL (``<config>/projects/<project>/<session>.jsonl``);
every line of ``"type": "assistant"`` carries ``message.usage``: ``input_tokens``,
``output_tokens``, ``cache_read_input_tokens`` and ``cache_creation_input_tokens``. One API
response can be written as several lines (a text block, then each tool call) with the same
``message.id`` and the same usage: a message counts once, with the usage of its last line.
Lines of ``model: "<synthetic>"`` or ``isApiErrorMessage`` (errors, a usage limit) cost nothing.

:class:`Reader` keeps where it stopped (the file's inode and the byte after the last complete
line) and the totals, so each call reads only what was appended; a line being written is left
for the next call. The tail rule of the log readers applies: another inode, or a file shorter
than the offset (truncated, rewritten), starts over from the beginning. Memory stays bounded
whatever the file's size: it is read in chunks, only lines that mention ``usage`` are parsed,
and a single line longer than :data:`MAX_LINE` is skipped (counted in ``skipped``).

The context size is ``input + cache_creation + cache_read`` of the last main-chain assistant
message: what Claude Code's own status line reports as the context window in use.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from typing import Any

CHUNK = 1 << 20
MAX_LINE = 16 << 20
RECENT = 64
"""Message ids remembered for de-duplication: the lines of one response are written together."""
FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def _usage_of(line: dict[str, Any]) -> tuple[str, list[int], bool] | None:
    """(message id, the four counts, whether it is main-chain) of an assistant line, else None."""
    if line.get("type") != "assistant" or line.get("isApiErrorMessage"):
        return None
    message = line.get("message")
    if not isinstance(message, dict) or message.get("model") == "<synthetic>":
        return None
    usage = message.get("usage")
    if not isinstance(usage, dict):
        return None
    counts = []
    for key in FIELDS:
        value = usage.get(key, 0)
        counts.append(value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0)
    key = message.get("id") or line.get("requestId") or line.get("uuid") or ""
    return str(key), counts, not line.get("isSidechain")


@dataclass
class Reader:
    """Where reading one transcript stopped, and what it summed up to there."""

    path: str
    inode: int = 0
    offset: int = 0
    totals: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # in FIELDS order
    context: int = 0
    messages: int = 0
    skipped: int = 0  # lines too long to read
    long_line: bool = False  # the offset is inside such a line
    recent: dict[str, list[int]] = field(default_factory=dict)  # message id -> counts of its last line

    def reset(self, inode: int) -> None:
        self.inode, self.offset, self.context, self.messages, self.skipped = inode, 0, 0, 0, 0
        self.long_line = False
        self.totals = [0, 0, 0, 0]
        self.recent = {}

    def take(self, raw: bytes) -> None:
        """Fold one complete line in."""
        if b'"usage"' not in raw or b"assistant" not in raw:
            return
        try:
            line = json.loads(raw)
        except ValueError:
            return
        found = _usage_of(line) if isinstance(line, dict) else None
        if found is None:
            return
        key, counts, main = found
        previous = self.recent.pop(key, None) if key else None
        if previous is not None:
            self.totals = [t - p for t, p in zip(self.totals, previous, strict=True)]
        else:
            self.messages += 1
        self.totals = [t + c for t, c in zip(self.totals, counts, strict=True)]
        if key:
            self.recent[key] = counts
            while len(self.recent) > RECENT:
                del self.recent[next(iter(self.recent))]
        if main:
            self.context = counts[0] + counts[2] + counts[3]

    def advance(self) -> bool:
        """Read what was appended since the last call. True when anything changed. A file that
        cannot be read, or is not a regular file, changes nothing."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return False
            changed = False
            if info.st_ino != self.inode or info.st_size < self.offset:
                self.reset(info.st_ino)
                changed = True
            if info.st_size == self.offset:
                return changed
            return self._read(fd, info.st_size) or changed
        finally:
            os.close(fd)

    def _read(self, fd: int, size: int) -> bool:
        start = position = self.offset
        pending = b""
        while position < size:
            chunk = os.pread(fd, min(CHUNK, size - position), position)
            if not chunk:
                break
            position += len(chunk)
            if self.long_line:  # inside a line too long to read: drop up to its end
                end = chunk.find(b"\n")
                if end < 0:
                    self.offset = position
                    continue
                self.long_line = False
                chunk = chunk[end + 1:]
            data = pending + chunk
            lines = data.split(b"\n")
            pending = lines.pop()  # after the last newline: maybe a line still being written
            for raw in lines:
                if len(raw) > MAX_LINE:
                    self.skipped += 1
                else:
                    self.take(raw)
            self.offset = position - len(pending)
            if len(pending) > MAX_LINE:
                self.skipped += 1
                self.long_line, pending, self.offset = True, b"", position
        return self.offset != start

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "inode": self.inode, "offset": self.offset, "totals": self.totals,
                "context": self.context, "messages": self.messages, "skipped": self.skipped,
                "long_line": self.long_line, "recent": self.recent}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reader:
        totals = data.get("totals")
        recent = data.get("recent")
        return cls(path=str(data["path"]), inode=int(data.get("inode", 0)), offset=int(data.get("offset", 0)),
                   totals=[int(t) for t in totals] if isinstance(totals, list) and len(totals) == 4 else [0] * 4,
                   context=int(data.get("context", 0)), messages=int(data.get("messages", 0)),
                   skipped=int(data.get("skipped", 0)), long_line=bool(data.get("long_line", False)),
                   recent={str(k): [int(c) for c in v] for k, v in recent.items()} if isinstance(recent, dict) else {})
