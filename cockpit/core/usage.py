"""What each agent costs in tokens, and the token budget that pauses it.

An agent's usage is the sum over every conversation its program reported (each transcript a
hook line named, :mod:`cockpit.core.hook_record`), read incrementally
(:class:`cockpit.core.transcript.Reader`). Where reading stopped is kept per agent in
``.cockpit/agents/<name>/usage.json``, written atomically by whichever process read further (the
watcher, a TUI, ``ls``), so a 100 MB transcript is read once, not on every look.

**Budget.** ``max_tokens`` (per agent, and ``[cockpit] max_tokens`` for the whole fleet) counts
input + output + cache-creation tokens; cache reads are shown but not counted. When an agent's
count exceeds its limit (or the fleet's sum exceeds the fleet's), the watcher pauses it — the
same whole-tree freeze as ``cockpit pause`` — records why, and a notification says so.
``cockpit resume`` continues it, and it is not paused again for the same limit: raise
``max_tokens`` to be stopped again at the new value.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.core.hook_state import hooks_file, read_regular
from cockpit.core.presets import PRESETS
from cockpit.core.repository import Repository
from cockpit.core.spec import FleetConfig
from cockpit.core.state import Record
from cockpit.core.transcript import Reader

CACHE_FILE = "usage.json"
MAX_TRANSCRIPTS = 1000


@dataclass(frozen=True)
class Usage:
    """Tokens of one agent (or a fleet, summed)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_creation: int = 0
    context: int = 0  # the conversation's size now: the last message's input + cache tokens
    sessions: int = 0

    @property
    def counted(self) -> int:
        """What a budget counts: input + output + cache creation (cache reads are cheap)."""
        return self.input + self.output + self.cache_creation

    def to_json(self) -> dict[str, int]:
        return {"input_tokens": self.input, "output_tokens": self.output, "cache_read_tokens": self.cache_read,
                "cache_creation_tokens": self.cache_creation, "context_tokens": self.context,
                "counted_tokens": self.counted, "sessions": self.sessions}

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input + other.input, self.output + other.output, self.cache_read + other.cache_read,
                     self.cache_creation + other.cache_creation, self.context + other.context,
                     self.sessions + other.sessions)


def cache_file(repo: Repository, name: str) -> Path:
    return repo.layout.agent_dir(name) / CACHE_FILE


@dataclass
class _Progress:
    hooks_inode: int
    hooks_offset: int
    readers: dict[str, Reader]  # by transcript path, in the order the hooks named them

    def to_json(self) -> dict[str, Any]:
        return {"hooks": {"inode": self.hooks_inode, "offset": self.hooks_offset},
                "transcripts": [reader.to_json() for reader in self.readers.values()]}

    @classmethod
    def load(cls, path: Path) -> _Progress:
        try:
            raw = json.loads(read_regular(path)[1])
            readers = [Reader.from_json(item) for item in raw.get("transcripts", [])]
            hooks = raw.get("hooks") or {}
            return cls(int(hooks.get("inode", 0)), int(hooks.get("offset", 0)), {r.path: r for r in readers})
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return cls(0, 0, {})


_memo: dict[str, tuple[int, _Progress]] = {}


def _transcripts_named(progress: _Progress, hooks: Path) -> bool:
    """Add the transcripts hook lines named since the last call. True when it read anything."""
    try:
        info = os.stat(hooks)
        if info.st_ino != progress.hooks_inode or info.st_size < progress.hooks_offset:
            progress.hooks_inode, progress.hooks_offset = info.st_ino, 0
        if info.st_size == progress.hooks_offset:
            return False
        _, data = read_regular(hooks, progress.hooks_offset)
    except OSError:
        return False
    end = data.rfind(b"\n") + 1
    for raw in data[:end].split(b"\n"):
        if b'"tp"' not in raw:
            continue
        try:
            path = json.loads(raw).get("tp")
        except (ValueError, AttributeError):
            continue
        if (isinstance(path, str) and os.path.isabs(path) and path.endswith(".jsonl")
                and path not in progress.readers and len(progress.readers) < MAX_TRANSCRIPTS):
            progress.readers[path] = Reader(path)
    progress.hooks_offset += end
    return end > 0


def of_agent(repo: Repository, record: Record) -> Usage | None:
    """The agent's usage now (reading only what was appended since the last look), or None when
    its program reports none (no preset with hooks, or no conversation yet)."""
    preset = PRESETS.get(record.spec.preset)
    if preset is None or not preset.hooks:
        return None
    directory = repo.layout.agent_dir(record.name)
    hooks = hooks_file(directory)
    if not hooks.exists():
        return None
    cache = directory / CACHE_FILE
    try:
        stamp = cache.stat().st_mtime_ns
    except OSError:
        stamp = -1
    memo = _memo.get(str(cache))
    progress = memo[1] if memo is not None and memo[0] == stamp else _Progress.load(cache)
    changed = _transcripts_named(progress, hooks)
    for reader in progress.readers.values():
        changed = reader.advance() or changed
    if changed:
        stamp = _save(cache, progress)
    _memo[str(cache)] = (stamp, progress)
    if not progress.readers:
        return None
    readers = list(progress.readers.values())
    totals = [sum(r.totals[i] for r in readers) for i in range(4)]
    return Usage(input=totals[0], output=totals[1], cache_read=totals[2], cache_creation=totals[3],
                 context=readers[-1].context, sessions=len(readers))


def _save(path: Path, progress: _Progress) -> int:
    """Write the progress atomically; its new mtime (-1 when it could not be written)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(progress.to_json(), separators=(",", ":")))
        os.replace(tmp, path)
        return path.stat().st_mtime_ns
    except OSError:
        tmp.unlink(missing_ok=True)
        return -1


# -- the budget -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Breach:
    """An agent to pause: which limit (``agent`` or ``fleet``), its value, and the words why."""

    kind: str
    limit: int
    tokens: int
    reason: str


def breach(record: Record, usage: Usage, config: FleetConfig, fleet_total: int) -> Breach | None:
    """The limit ``record``'s agent is over and was not paused for yet, or None. The agent's own
    ``max_tokens`` comes from cockpit.toml as it is now (else as it was spawned)."""
    spec = config.agents.get(record.name) or record.spec
    paused = record.budget_paused
    if spec.max_tokens is not None and usage.counted > spec.max_tokens and paused.get("agent", 0) < spec.max_tokens:
        return Breach("agent", spec.max_tokens, usage.counted,
                      f"token budget: {usage.counted:,} tokens used, max_tokens = {spec.max_tokens:,}")
    if config.max_tokens is not None and fleet_total > config.max_tokens and paused.get("fleet", 0) < config.max_tokens:
        return Breach("fleet", config.max_tokens, fleet_total,
                      f"fleet token budget: {fleet_total:,} tokens used by all agents, "
                      f"[cockpit] max_tokens = {config.max_tokens:,}")
    return None
