"""``Agent``: one agent's reconciled state, as ``ls``, ``ls --json`` and the TUI show it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any


def name_order(name: str) -> tuple[tuple[int, int, str], ...]:
    """The sort key of an agent name: natural order, numbers by value (``a2`` before ``a10``).
    Every view lists agents in this order (``ls``, ``ls --json``, the TUI's tiles, ``w``)."""
    return tuple((0, int(part), part) if part.isdigit() else (1, 0, part)
                 for part in re.findall(r"\d+|\D+", name))


@dataclass(frozen=True)
class Agent:
    """A snapshot: the event log's story reconciled with what tmux and git show right now."""

    name: str
    state: str  # running, paused, exited, failed, killed, halted, missing; queued, blocked, merged, conflict, rejected
    attempt: int
    failures: int
    max_failures: int
    exit_code: int | None
    branch: str | None  # None while pending: not cut yet
    worktree: str | None
    log: str
    base: str
    base_sha: str
    task: str
    command: str
    scope: list[str]
    after: list[str]
    tmux_socket: str
    tmux_session: str
    last_activity: str | None  # ISO 8601, UTC: the newest of the log's mtime and tmux activity
    state_since: str
    blocked_by: str | None = None
    reason: str | None = None
    pid: int | None = None
    archives: list[str] = field(default_factory=list)
    out_of_scope: list[str] | None = None  # None: not computed for this snapshot
    collisions: list[dict] | None = None   # [{"path": ..., "agents": [...]}]
    # predicted merge conflicts [{"with": agent or ":base", "paths": [...], "lines": {...}}] from the
    # conflict radar's last round (cockpit.core.radar); None: unknown (not computed, or git < 2.38)
    conflicts: list[dict] | None = None
    merge: dict | None = None  # the merge queue's last outcome: {reason, paths, gate, tail, commit}
    process_state: str = ""    # what the process does (running .. missing) while ``state`` shows a merge state
    sandbox: str | None = None  # "bwrap" when the agent runs under the write sandbox
    # setup, waiting, working, compacting, rate-limited, error, idle, stalled, paused; None when
    # not running (cockpit.core.activity), and why: "permission: Bash: rm -rf build", "done", ...
    activity: str | None = None
    activity_reason: str | None = None
    session_id: str | None = None  # the agent program's conversation (claude-code: what respawn --keep resumes)
    usage: dict | None = None  # tokens from its transcripts (cockpit.core.usage); None when it reports none
    ports: list[int] = field(default_factory=list)  # its block of TCP ports ([worktree] ports)
    included: int | None = None  # files .worktreeinclude copied into its worktree (None: not recorded)
    host: str | None = None  # the [[host]] it runs on; None: this machine (cockpit.core.hosts)

    @property
    def tries(self) -> str:
        """``2 (0/2 fail)``: attempt 2, no failure counted of the 2 that halt it. The one
        notation of attempts and failures (``ls``'s TRY column, the tiles' ``try ...``)."""
        return f"{self.attempt} ({self.failures}/{self.max_failures} fail)"

    @property
    def process(self) -> str:
        """What its process does (running .. missing), even while ``state`` shows a merge state."""
        return self.process_state or self.state

    def doing(self, width: int = 60) -> str | None:
        """``waiting: permission: Bash: rm -rf build``: the activity and its reason, cut to
        ``width`` characters; None when not running."""
        if self.activity is None:
            return None
        text = f"{self.activity}: {self.activity_reason}" if self.activity_reason else self.activity
        return text if len(text) <= width else text[:width - 1] + "…"

    @property
    def tokens(self) -> str | None:
        """``190k tokens, context 21k``: what it costs, for a view; None when it reports nothing."""
        if not self.usage:
            return None
        return f"{short_count(self.usage.get('counted_tokens', 0))} tokens, " \
               f"context {short_count(self.usage.get('context_tokens', 0))}"

    @property
    def alive(self) -> bool:
        return self.process in ("running", "paused")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("pid")
        return data


def short_count(n: int) -> str:
    """``950``, ``12.3k``, ``4.1M``: a token count for a narrow column."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k" if n < 10_000 else f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M"


def halt_reason(failures: int, max_failures: int, blocked_by: str | None = None) -> str:
    """Why an agent is halted, in words: the upstream agent whose failures halted it (its own
    failure count is 0 then, and says nothing), or its own failures."""
    if blocked_by:
        return f"halted because {blocked_by!r} failed"
    return f"halted after {failures} failure(s) (max_failures = {max_failures})"
