"""The agents as they are now: the event log's story reconciled with tmux, git and the kernel.

Nothing here is stored. Every read replays the log (incrementally), asks tmux for every pane in
one call, and derives each agent's state: a live agent whose pane died has exited, one whose
worktree is gone is ``missing``, one whose processes are all stopped is ``paused``, and while
the tmux server cannot be reached a live agent is ``unknown`` — never taken for gone. A read
that observes (the default) also records the exits it notices and finishes what a crash
interrupted (:mod:`cockpit.core.recovery`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from cockpit.core import activity, processes, recovery, sandbox, usage
from cockpit.core.agent import Agent, halt_reason, name_order
from cockpit.core.repository import Repository
from cockpit.core.sessions import PaneState, ServerUnknown
from cockpit.core.state import LIVE, Record


def agents(repo: Repository, observe: bool = True, wait: float = 0) -> list[Agent]:
    """Every agent (not discarded), in name order. With ``observe``, exits noticed now are
    recorded (and the 2-failure rule applied) and interrupted operations are recovered;
    ``wait`` is how long to wait for the lock to do so."""
    panes: dict[str, PaneState]
    unknown: str | None = None
    try:
        panes = repo.tmux.panes()
        if observe and recovery.observe(repo, panes, wait):
            panes = repo.tmux.panes()
    except ServerUnknown as exc:  # nothing is concluded, nothing recorded
        panes, unknown = {}, str(exc)
    history = repo.history()
    sandbox.on_read(repo, list(history.records.values()))
    for record in history.records.values():
        pane = panes.get(record.name)
        if (not record.discarded and record.state in LIVE and pane is not None and not pane.dead
                and repo.layout.agent_dir(record.name).is_dir()
                and not repo.layout.session_log(record.name).exists()):
            repo.tmux.repipe(record.name, repo.layout.session_log(record.name))  # log deleted by hand
    tree = processes.children_map() if any(r.state in LIVE for r in history.records.values()) else {}
    return [snapshot(repo, r, panes.get(r.name), tree, unknown)
            for r in sorted(history.records.values(), key=lambda r: name_order(r.name)) if not r.discarded]


def state_of(repo: Repository, name: str) -> str:
    """``name``'s reconciled state, for a message (``unknown`` when it is not found)."""
    for agent in agents(repo, observe=False):
        if agent.name == name:
            return agent.state
    return "unknown"


def snapshot(repo: Repository, record: Record, pane: PaneState | None, tree: dict[int, list[int]],
             unknown: str | None = None) -> Agent:
    """One agent from its record and its pane (``tree``: :func:`processes.children_map`).
    ``unknown``: why the tmux server cannot be reached (its live agents are then ``unknown``,
    never taken for gone)."""
    layout = repo.layout
    worktree = layout.worktree(record.name)
    log = layout.session_log(record.name)
    state = record.state
    reason = record.reason
    if state == "halted" and record.blocked_by:  # (older logs said "depends on halted agent 'x'")
        reason = halt_reason(record.failures, repo.max_failures, record.blocked_by)
    if state in LIVE and unknown is not None:
        state, reason = "unknown", unknown
    elif state in LIVE and pane is not None and pane.pid and not pane.dead:
        state = "paused" if processes.is_stopped(pane.pid, tree) else "running"
    cut = bool(record.branch)  # a pending agent (or one stopped while pending) has no worktree yet
    if cut and not worktree.is_dir():
        state = "missing"
    process_state = state
    if record.merge_state:  # queued .. merged: the merge queue's word wins until re-queued or respawned
        state = record.merge_state
    seen: list[float] = []
    try:
        seen.append(log.stat().st_mtime)
    except OSError:
        pass
    if pane is not None and pane.activity:
        seen.append(pane.activity)
    last = datetime.fromtimestamp(max(seen), UTC).isoformat(timespec="seconds") if seen else None
    # from the process, never the merge state: a queued or blocked agent still waits, works...
    doing = activity.of_agent(repo, record, pane, process_state)
    spent = usage.of_agent(repo, record)
    return Agent(
        name=record.name,
        state=state,
        attempt=record.attempt,
        failures=record.failures,
        max_failures=repo.max_failures,
        exit_code=record.exit_code,
        branch=record.branch if cut else None,
        worktree=str(worktree) if cut else None,
        log=str(log),
        base=record.base,
        base_sha=record.base_sha,
        task=record.spec.task,
        command=record.spec.command,
        scope=list(record.spec.scope),
        after=list(record.spec.after),
        tmux_socket=repo.tmux.socket,
        tmux_session=record.name,
        last_activity=last,
        state_since=record.state_since,
        blocked_by=record.blocked_by,
        reason=reason,
        pid=pane.pid if pane else None,
        archives=list(record.archives),
        merge=dict(record.merge) if record.merge else None,
        process_state=process_state,
        sandbox=record.spec.sandbox if sandbox.enabled(record.spec) else None,
        activity=doing.name if doing else None,
        activity_reason=doing.reason if doing else None,
        session_id=activity.hooks_of(repo, record).session_id,
        usage=spent.to_json() if spent else None,
        ports=list(record.ports),
        included=record.included if cut else None,
    )
