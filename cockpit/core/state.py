"""Replay the event log into per-agent records.

A record is what the events say; :mod:`cockpit.core.roster` then reconciles it with what tmux and
git show right now (an agent that exited while nothing watched, a worktree deleted by hand).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cockpit.core.events import Event
from cockpit.core.spec import AgentSpec

# States as the event log knows them. "missing" is never recorded: it is derived from disk.
LIVE = ("running", "paused")
PENDING = "pending"  # waits for its ``after`` upstreams; no worktree, branch or process yet
STATES = ("pending", "running", "paused", "exited", "failed", "killed", "halted", "missing")
# Merge-queue states: from ``merge.queued`` until queued again, respawned or discarded they
# override the process state (see :mod:`cockpit.core.queue`).
MERGE_STATES = ("queued", "blocked", "merged", "conflict", "rejected")
MERGE_OUTCOMES = {"merge.merged": "merged", "merge.blocked": "blocked", "merge.conflict": "conflict",
                  "merge.rejected": "rejected"}
MERGE_DETAILS = ("reason", "paths", "gate", "tail", "commit")


@dataclass
class Record:
    """One agent as its events describe it."""

    name: str
    spec: AgentSpec
    attempt: int = 1
    failures: int = 0
    state: str = "running"
    exit_code: int | None = None
    branch: str = ""
    base: str = ""
    base_sha: str = ""
    state_since: str = ""
    blocked_by: str | None = None
    reason: str | None = None
    discarded: bool = False
    archives: list[str] = field(default_factory=list)
    reported_out_of_scope: set[str] = field(default_factory=set)
    reported_collisions: set[str] = field(default_factory=set)
    merge_state: str | None = None   # one of MERGE_STATES, or None when never queued since (re)spawn
    merge: dict | None = None        # the last outcome's {reason, paths, gate, tail, commit}
    queued_at: str = ""
    queued_seq: int = 0              # queue order: the seq of its merge.queued event
    merging: dict | None = None      # the candidate a queue runner is building, gating or landing
    upstreams: dict[str, str] = field(default_factory=dict)  # ``after`` agents' tips its base_sha merged
    ports: list[int] = field(default_factory=list)  # its block of TCP ports ([worktree] ports), held until discard
    released_ports: list[int] = field(default_factory=list)  # the block a discard gave back (restore prefers it)
    included: int | None = None  # files .worktreeinclude copied into its current worktree
    budget_paused: dict[str, int] = field(default_factory=dict)  # "agent"/"fleet" -> the limit it was paused at
    resumed_session: str | None = None  # the conversation its last (re)start continued (respawn --keep)


@dataclass
class RemoteQueued:
    """A remote agent's place in this repository's merge queue. The agent itself lives on
    ``host`` (its events are there); only its queue entry is recorded here, by ``remote.*`` events
    with no agent of their own (``agent_name`` and ``host`` in their data)."""

    name: str
    host: str
    merge_state: str | None = None   # one of MERGE_STATES, as for a local agent
    merge: dict | None = None
    queued_at: str = ""
    queued_seq: int = 0
    merging: dict | None = None


def _spec(data: dict, fallback: AgentSpec | None, name: str) -> AgentSpec:
    raw = data.get("spec")
    if isinstance(raw, dict):
        try:
            return AgentSpec.from_toml(raw)
        except (KeyError, TypeError):
            pass
    return fallback or AgentSpec(name=name, command="")


FINISHING = ("spawned", "spawn.failed", "respawned", "respawn.failed", "discarded",
             "discard.failed", "restored", "restore.failed", "recovery.failed", "pending")


@dataclass
class History:
    """Everything replaying the log gives: the agents, and operations started but not finished
    (either running in another process right now, or interrupted by a crash)."""

    records: dict[str, Record] = field(default_factory=dict)
    pending: dict[str, Event] = field(default_factory=dict)
    remote_queue: dict[tuple[str, str], RemoteQueued] = field(default_factory=dict)
    """(host, agent) -> its merge-queue entry (cockpit.core.queue)."""
    offset: int = 0


def apply(history: History, event: Event) -> None:
    """Fold one event in. Unknown event types are ignored (newer cockpits may add some)."""
    name = event.agent
    if not name:
        if event.type.startswith("remote."):
            _apply_remote(history, event)
        return
    records = history.records
    data = event.data
    record = records.get(name)
    kind = event.type

    if kind.endswith(".started"):
        history.pending[name] = event
        return
    if kind in FINISHING:
        history.pending.pop(name, None)
    if kind in ("spawned", "restored", "respawned"):
        spec = _spec(data, record.spec if record else None, name)
        if kind == "spawned" or record is None:
            # A spawn starts a fresh life for the name; only its archives (and the ports a
            # discard gave back, which a later block prefers) carry over.
            archives = list(record.archives) if record else []
            released = list(record.released_ports) if record else []
            record = Record(name=name, spec=spec, archives=archives, released_ports=released)
            records[name] = record
        assert record is not None
        record.spec = spec
        record.discarded = False
        if not data.get("keep"):  # a fresh worktree: its ownership findings start over
            record.reported_out_of_scope.clear()
            record.reported_collisions.clear()
        record.attempt = int(data.get("attempt", record.attempt))
        record.branch = data.get("branch", record.branch)
        record.base = data.get("base", record.base)
        record.base_sha = data.get("base_sha", record.base_sha)
        if not data.get("keep"):
            record.upstreams = dict(data.get("upstreams") or {})
        if "ports" in data:
            record.ports = [p for p in data.get("ports") or [] if isinstance(p, int)]
        if "included" in data:
            count = int(data.get("included") or 0)
            record.included = (record.included or 0) + count if data.get("keep") else count
        if data.get("reset_failures"):
            record.failures = 0
        record.state = "killed" if kind == "restored" else "running"
        record.exit_code = None
        record.blocked_by = None
        record.reason = None
        record.state_since = event.ts
        record.merge_state = record.merge = record.merging = None
        record.resumed_session = data.get("resumed_session") if isinstance(data.get("resumed_session"), str) else None
        return
    if kind == "pending":  # (re)planned: waits for its upstreams; a fresh life, like a spawn
        archives = list(record.archives) if record else []
        record = Record(name=name, spec=_spec(data, record.spec if record else None, name), archives=archives,
                        ports=list(record.ports) if record else [],
                        released_ports=list(record.released_ports) if record else [],
                        attempt=int(data.get("attempt", 1)), state=PENDING, base=data.get("base", ""),
                        blocked_by=data.get("blocked_by"), reason=data.get("reason"), state_since=event.ts,
                        failures=int(data.get("failures", 0)))
        records[name] = record
        return
    if kind == "pending.waiting" and record is not None and record.state == PENDING:
        record.blocked_by = data.get("blocked_by")
        record.reason = data.get("reason")
        return
    if record is None:
        return
    if kind.startswith("merge."):
        _apply_merge(record, kind, event)
        return
    if kind in ("spawn.failed", "respawn.failed", "restore.failed"):
        if data.get("removed_agent"):
            # The spawn of a new agent was rolled back: nothing of it remains.
            if record.archives or record.discarded:
                record.discarded = True
            else:
                del records[name]
        return
    if kind == "exited":
        code = data.get("exit_code")
        record.exit_code = code
        record.reason = data.get("reason")  # a failed setup says which command, and how
        record.state = "exited" if code == 0 else "failed"
        if code != 0:
            record.failures += 1
        record.state_since = event.ts
    elif kind == "failed.marked":
        record.failures += 1
        record.state = "failed"
        record.state_since = event.ts
    elif kind == "paused":
        record.state = "paused"
        record.reason = data.get("reason")  # None when paused by hand; the budget says why
        if data.get("budget") in ("agent", "fleet") and isinstance(data.get("limit"), int):
            record.budget_paused[data["budget"]] = data["limit"]
        record.state_since = event.ts
    elif kind == "resumed":
        record.state = "running"
        record.reason = None
        record.state_since = event.ts
    elif kind == "killed":
        record.state = "killed"
        record.blocked_by = None
        record.reason = data.get("reason")
        record.state_since = event.ts
    elif kind == "halted":
        record.state = "halted"
        record.reason = data.get("reason")
        record.blocked_by = data.get("blocked_by")
        record.state_since = event.ts
    elif kind == "archived":
        ref = data.get("ref")
        if ref and ref not in record.archives:
            record.archives.append(ref)
    elif kind == "out_of_scope":
        record.reported_out_of_scope.update(data.get("paths") or [])
    elif kind == "collision":
        record.reported_collisions.add(f"{data.get('path')}\0{','.join(data.get('agents') or [])}")
    elif kind == "discarded":
        record.discarded = True
        record.state_since = event.ts
    elif kind == "ports.allocated":
        record.ports = [p for p in data.get("ports") or [] if isinstance(p, int)]
    elif kind == "ports.released":
        record.released_ports = list(record.ports) or [p for p in data.get("ports") or [] if isinstance(p, int)]
        record.ports = []


REMOTE_QUEUE_EVENTS = {"remote.queued": "merge.queued", "remote.candidate": "merge.candidate",
                       "remote.gate": "merge.gate", "remote.landing": "merge.landing",
                       "remote.abandoned": "merge.abandoned"}
"""A remote entry's queue events and the local agent's event each stands for; its outcome is
``remote.merge`` (``state`` in its data), recorded before remote agents could be queued too."""


def _apply_remote(history: History, event: Event) -> None:
    """Fold one ``remote.*`` queue event in: the same steps as a local agent's ``merge.*``."""
    data = event.data
    name, host = data.get("agent_name"), data.get("host")
    if not isinstance(name, str) or not isinstance(host, str):
        return
    kind = REMOTE_QUEUE_EVENTS.get(event.type)
    if kind is None and event.type == "remote.merge" and data.get("state") in MERGE_STATES:
        kind = f"merge.{data['state']}"
    entry = history.remote_queue.get((host, name))
    if kind is None or (entry is None and kind != "merge.queued"):
        return  # (a merge landed at once, by a cockpit from before remote agents were queued)
    if entry is None:
        entry = history.remote_queue[(host, name)] = RemoteQueued(name=name, host=host)
    _apply_merge(entry, kind, event)


def _apply_merge(record: Record | RemoteQueued, kind: str, event: Event) -> None:
    """Fold one merge-queue event in. Anything after the agent left the queue (respawned,
    restored) is stale and ignored: a runner's late outcome cannot override a fresh start."""
    data = event.data
    if kind == "merge.queued":
        record.merge_state, record.merge, record.merging = "queued", None, None
        record.queued_at, record.queued_seq = event.ts, event.seq
        return
    if record.merge_state != "queued" or data.get("queued_seq", record.queued_seq) != record.queued_seq:
        return
    if kind == "merge.candidate":
        record.merging = dict(data)
    elif kind == "merge.gate" and record.merging is not None:
        record.merging = {**record.merging, "gate_pgid": data.get("pgid")}
    elif kind == "merge.landing" and record.merging is not None:
        record.merging = {**record.merging, "landing": dict(data)}
    elif kind == "merge.abandoned":
        record.merging = None
    elif kind in MERGE_OUTCOMES:
        record.merge_state = MERGE_OUTCOMES[kind]
        record.merge = {key: data.get(key) for key in MERGE_DETAILS}
        record.merging = None


def replay(events: Iterable[Event], history: History | None = None) -> History:
    history = History() if history is None else history
    for event in events:
        apply(history, event)
    return history
