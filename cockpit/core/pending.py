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
from typing import TYPE_CHECKING

from cockpit.core import worktrees
from cockpit.core.errors import CockpitError, LockBusy
from cockpit.core.spec import AgentSpec
from cockpit.core.state import PENDING, Record

if TYPE_CHECKING:
    from cockpit.core.fleet import Fleet


def finished(record: Record | None) -> bool:
    """Whether an upstream agent has finished successfully: exited 0, or merged."""
    return (record is not None and not record.discarded
            and (record.merge_state == "merged" or (record.state == "exited" and record.exit_code == 0)))


def waiting_for(fleet: "Fleet", spec: AgentSpec) -> list[str]:
    """The upstreams of ``spec`` that have not finished, in ``after`` order."""
    records = fleet.history().records
    return [name for name in spec.after if not finished(records.get(name))]


def describe(fleet: "Fleet", names: list[str]) -> str:
    """How each upstream ``names`` is doing, for the pending agent's ``reason``."""
    records = fleet.history().records
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
            parts.append(f"{name!r} (failed {record.failures}/{fleet.max_failures}: respawn it)")
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


def merge_base(fleet: "Fleet", spec: AgentSpec, base_sha: str) -> tuple[str, dict[str, str]]:
    """The commit a ready dependent is cut from — base's tip merged with each upstream's tip —
    and the upstreams' tips. Raises :class:`~cockpit.core.worktrees.MergeConflict`."""
    records = fleet.history().records
    tips: dict[str, str] = {}
    for name in spec.after:
        record = records[name]
        sha = worktrees.ref_sha(fleet.root, f"refs/heads/{record.branch}") if record.branch else None
        if sha is None:
            raise CockpitError(f"upstream {name!r} has no branch {record.branch!r} to start from")
        tips[name] = sha
    message = (f"cockpit: base for {spec.name}: {base_sha[:12]} with "
               + ", ".join(f"{name} ({sha[:12]})" for name, sha in tips.items()))
    return worktrees.merge_commit(fleet.root, [base_sha, *tips.values()], message), tips


# -- pass_env values, held in the tmux server's memory -------------------------------------------
def _buffer(name: str) -> str:
    return f"cockpit-pass-env-{name}"


def hold_environment(fleet: "Fleet", spec: AgentSpec) -> None:
    """Keep the values of ``spec.pass_env`` from this process's environment in the fleet's tmux
    server (a named buffer: not inherited by any session, not pasted by a bare paste-buffer)."""
    values = {key: os.environ[key] for key in spec.pass_env if key in os.environ}
    if values:
        fleet.tmux.hold(_buffer(spec.name), json.dumps(values))
    else:
        release_environment(fleet, spec.name)


def held_environment(fleet: "Fleet", name: str) -> dict[str, str]:
    raw = fleet.tmux.held(_buffer(name))
    try:
        values = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}


def release_environment(fleet: "Fleet", name: str) -> None:
    fleet.tmux.release(_buffer(name))


# -- the watcher's round ------------------------------------------------------------------------
def pending_names(fleet: "Fleet") -> list[str]:
    return sorted(name for name, record in fleet.history().records.items()
                  if not record.discarded and record.state == PENDING)


def advance(fleet: "Fleet") -> list[str]:
    """Start every pending agent whose upstreams have all finished; update the reason of those
    still waiting when it changed. Never waits for the lock (the next round retries). Returns the
    names started."""
    names = pending_names(fleet)
    if not names:
        return []
    started: list[str] = []
    try:
        with fleet.locked(timeout=0):
            for name in names:
                if fleet.start_pending(name):
                    started.append(name)
    except LockBusy:
        pass
    return started
