"""``after``: an agent that waits for other agents, and starts by itself once they have finished.

An agent whose ``after`` names upstreams that have not all finished successfully — exited 0, or
merged — is recorded ``pending`` (event ``pending``: no worktree, no branch, no process;
``blocked_by`` names what it waits for, ``reason`` says how each is doing). The watcher, which
stays up while any agent is pending, starts it once they all have, with no cockpit open
(:func:`advance`). Its branch is then cut from a **merge commit whose parents are base's tip and
each upstream's tip** (:func:`cockpit.core.worktrees.merge_commit`, built without a worktree), and
that commit is its ``base_sha``: its diff, scope checks and collisions are measured from it, so
the upstreams' files are not counted as its own. If the upstreams conflict with each other it
stays pending with the conflicting paths as the reason; ``cockpit respawn NAME --force`` starts it
from base anyway.

The values of its ``pass_env`` come from the environment of the ``cockpit up`` (or ``spawn``)
that planned it — the watcher's own environment is minimal — and are held in the fleet's tmux
server's memory (a named paste buffer, loaded through stdin, so never on a command line or on
disk) until it starts.

The 2-failure rule halts pending dependents like running ones (:mod:`cockpit.core.recovery`).
"""

from __future__ import annotations

import json
import os
from typing import Any

from cockpit.core import lifecycle, watch, worktrees
from cockpit.core.errors import CockpitError, LockBusy
from cockpit.core.repository import Repository
from cockpit.core.spec import AgentSpec
from cockpit.core.state import PENDING, Record


def finished(record: Record | None) -> bool:
    """Whether an upstream agent has finished successfully: exited 0, or merged."""
    return (record is not None and not record.discarded
            and (record.merge_state == "merged" or (record.state == "exited" and record.exit_code == 0)))


def waiting_for(repo: Repository, spec: AgentSpec) -> list[str]:
    """The upstreams of ``spec`` that have not finished, in ``after`` order."""
    records = repo.history().records
    return [name for name in spec.after if not finished(records.get(name))]


def describe(repo: Repository, names: list[str]) -> str:
    """How each upstream ``names`` is doing, for the pending agent's ``reason``."""
    records = repo.history().records
    parts = []
    for name in names:
        record = records.get(name)
        if record is None:
            parts.append(f"{name!r} (not started yet)")
        elif record.discarded:
            parts.append(f"{name!r} (discarded: restore or respawn it, or 'cockpit respawn DEPENDENT --force')")
        elif record.state == "exited":
            parts.append(f"{name!r} (exited {record.exit_code})")
        elif record.state == "failed":
            parts.append(f"{name!r} (failed {record.failures}/{repo.max_failures}: respawn it)")
        else:
            parts.append(f"{name!r} ({record.state})")
    return "waits for " + ", ".join(parts)


def require_merge_tree() -> None:
    """``after`` cuts from a merge made by ``git merge-tree --write-tree``: git 2.38 or newer."""
    version = worktrees.git_version()
    if version is None or version < worktrees.MERGE_TREE_GIT:
        have = f"{version[0]}.{version[1]}" if version else "an unknown version"
        raise CockpitError(f"'after' needs git >= 2.38 (merge-tree --write-tree builds the commit a dependent "
                           f"starts from); this git is {have}: upgrade git, or remove 'after' from cockpit.toml")


def merge_base(repo: Repository, spec: AgentSpec, base_sha: str) -> tuple[str, dict[str, str]]:
    """The commit a ready dependent is cut from — base's tip merged with each upstream's tip —
    and the upstreams' tips. Raises :class:`~cockpit.core.worktrees.MergeConflict`."""
    records = repo.history().records
    tips: dict[str, str] = {}
    for name in spec.after:
        record = records[name]
        sha = worktrees.ref_sha(repo.root, f"refs/heads/{record.branch}") if record.branch else None
        if sha is None:
            raise CockpitError(f"upstream {name!r} has no branch {record.branch!r} to start from")
        tips[name] = sha
    message = (f"cockpit: base for {spec.name}: {base_sha[:12]} with "
               + ", ".join(f"{name} ({sha[:12]})" for name, sha in tips.items()))
    return worktrees.merge_commit(repo.root, [base_sha, *tips.values()], message), tips


# -- pass_env values, held in the tmux server's memory -------------------------------------------
def _buffer(name: str) -> str:
    return f"cockpit-pass-env-{name}"


def hold_environment(repo: Repository, spec: AgentSpec) -> None:
    """Keep the values of ``spec.pass_env`` from this process's environment in the fleet's tmux
    server (a named buffer: not inherited by any session, not pasted by a bare paste-buffer)."""
    values = {key: os.environ[key] for key in spec.pass_env if key in os.environ}
    if values:
        repo.tmux.hold(_buffer(spec.name), json.dumps(values))
    else:
        release_environment(repo, spec.name)


def held_environment(repo: Repository, name: str) -> dict[str, str]:
    raw = repo.tmux.held(_buffer(name))
    try:
        values = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}


def release_environment(repo: Repository, name: str) -> None:
    repo.tmux.release(_buffer(name))


# -- starting ------------------------------------------------------------------------------------
def cut_after_upstreams(repo: Repository, spec: AgentSpec, attempt: int, base_ref: str, base_sha: str, op: str,
                        event_type: str = "spawned", extra: dict[str, Any] | None = None, failures: int = 0,
                        pass_values: dict[str, str] | None = None, announce: bool = True) -> bool:
    """Start ``spec`` (which has ``after``) from the merge of base's tip and its upstreams'
    tips if they have all finished; else record it ``pending``, holding its ``pass_env``
    values in the tmux server, and make sure the watcher runs to start it later. True when
    it started. Caller holds the lock."""
    name = spec.name
    waits = waiting_for(repo, spec)
    reason = describe(repo, waits) if waits else ""
    if not waits:
        try:
            cut, tips = merge_base(repo, spec, base_sha)
        except worktrees.MergeConflict as exc:
            waits, reason = list(spec.after), (f"its upstreams conflict: {', '.join(exc.paths)} "
                                               f"('cockpit respawn {name} --force' starts it from {base_ref})")
        else:
            lifecycle.launch(repo, spec, attempt, base_ref, cut, op, event_type=event_type,
                             extra={**(extra or {}), "upstreams": tips, "base_tip": base_sha},
                             pass_values=pass_values, announce=announce)
            release_environment(repo, name)
            return True
    record = repo.history().records.get(name)
    if record is None or record.state != PENDING or record.reason != reason:
        repo.events.append("pending", name, attempt=attempt, base=base_ref, blocked_by=", ".join(waits),
                           reason=reason, spec=spec.to_toml(), failures=failures)
    watch.ensure(repo)
    if pass_values is None:
        hold_environment(repo, spec)
    return False


def start(repo: Repository, name: str) -> bool:
    """Start the pending agent ``name`` if its upstreams have all finished (the watcher calls
    this each round; an up-to-date reason is recorded otherwise). Caller holds the lock."""
    record = repo.history().records.get(name)
    if record is None or record.discarded or record.state != PENDING:
        return False
    try:
        base_ref, base_sha = repo.resolve_base(record.base or None)
    except CockpitError as exc:
        if record.reason != str(exc):
            repo.events.append("pending.waiting", name, blocked_by=record.blocked_by, reason=str(exc))
        return False
    values = held_environment(repo, name)
    first = record.attempt <= 1
    try:
        return cut_after_upstreams(
            repo, record.spec, record.attempt, base_ref, base_sha, "spawn" if first else "respawn",
            event_type="spawned" if first else "respawned", failures=record.failures, pass_values=values,
            extra=None if first else {"keep": False, "previous_attempt": record.attempt - 1})
    except CockpitError as exc:  # the launch rolled itself back: say why, wait for the next round
        repo.events.append("pending.waiting", name, blocked_by=record.blocked_by, reason=f"could not start: {exc}")
        return False


# -- the watcher's round ------------------------------------------------------------------------
def pending_names(repo: Repository) -> list[str]:
    return sorted(name for name, record in repo.history().records.items()
                  if not record.discarded and record.state == PENDING)


def advance(repo: Repository) -> list[str]:
    """Start every pending agent whose upstreams have all finished; update the reason of those
    still waiting when it changed. Never waits for the lock (the next round retries). Returns the
    names started."""
    names = pending_names(repo)
    if not names:
        return []
    started: list[str] = []
    try:
        with repo.locked(timeout=0):
            for name in names:
                if start(repo, name):
                    started.append(name)
    except LockBusy:
        pass
    return started
