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
    # setup, waiting, working, idle, stalled, paused; None when not running (cockpit.core.activity)
    activity: str | None = None
    ports: list[int] = field(default_factory=list)  # its block of TCP ports ([worktree] ports)
    included: int | None = None  # files .worktreeinclude copied into its worktree (None: not recorded)

    @property
    def tries(self) -> str:
        """``2 (0/2 fail)``: attempt 2, no failure counted of the 2 that halt it. The one
        notation of attempts and failures (``ls``'s TRY column, the tiles' ``try ...``)."""
        return f"{self.attempt} ({self.failures}/{self.max_failures} fail)"

    @property
    def process(self) -> str:
        """What its process does (running .. missing), even while ``state`` shows a merge state."""
        return self.process_state or self.state

    @property
    def alive(self) -> bool:
        return self.process in ("running", "paused")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("pid")
        return data


def halt_reason(failures: int, max_failures: int, blocked_by: str | None = None) -> str:
    """Why an agent is halted, in words: the upstream agent whose failures halted it (its own
    failure count is 0 then, and says nothing), or its own failures."""
    if blocked_by:
        return f"halted because {blocked_by!r} failed"
    return f"halted after {failures} failure(s) (max_failures = {max_failures})"
