"""A worktree an agent can work in: what the lifecycle does, beside git and tmux, to make a
checkout a working environment — and to take it down again.

* the ignored files ``.worktreeinclude`` names, copied from the main checkout
  (:mod:`cockpit.core.include`);
* a block of TCP ports held from spawn until discard (:mod:`cockpit.core.ports`), recorded in
  the event log (``ports.allocated``, ``ports.released``);
* the agent's variables (its ports, ``COMPOSE_PROJECT_NAME``);
* ``teardown`` before its worktree is removed and ``stop`` when it is killed or the fleet goes
  down (:mod:`cockpit.core.provision`), inside the write sandbox when the agent has one; a
  failure is recorded (``teardown.failed``, ``stop.failed``) and never stops what called it.

Setup itself runs in the agent's pane (:mod:`cockpit.core.provision`). Callers hold the
repository lock.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cockpit.core import include, ports, provision, sandbox
from cockpit.core.errors import CockpitError, one_line
from cockpit.core.include import Copied
from cockpit.core.repository import Repository
from cockpit.core.spec import AgentSpec, WorktreeSettings
from cockpit.core.state import Record
from cockpit.core.tmux_setup import base_environment

MAX_LISTED = 20
"""Paths listed at most in one event (the count is always exact)."""


def settings(repo: Repository, spec: AgentSpec) -> WorktreeSettings:
    """The agent's worktree settings: ``[worktree]`` with its ``[agent.worktree]`` in place
    (raises :class:`~cockpit.core.errors.ConfigError` when cockpit.toml is malformed)."""
    return repo.config.worktree_for(spec)


def compose_project(root: Path, name: str) -> str:
    """``cockpit-<repo>-<agent>``: a Docker Compose project of the agent's own (lower case,
    letters, digits, ``-`` and ``_``, as Compose wants them)."""
    base = re.sub(r"[^a-z0-9_-]+", "-", root.name.lower()).strip("-_") or "repo"
    return f"cockpit-{base}-{name}"


def variables(repo: Repository, spec: AgentSpec, attempt: int, branch: str, base_ref: str, held: list[int],
              pass_values: dict[str, str] | None = None) -> dict[str, str]:
    """The agent's own variables (see the configuration docs, *What an agent sees*), without
    those of its pane's wrapper. ``pass_values``: its ``pass_env`` values when they do not come
    from this process's environment (a pending agent started by the watcher)."""
    layout = repo.layout
    env = dict(pass_values) if pass_values is not None else \
        {key: os.environ[key] for key in spec.pass_env if key in os.environ}
    env["COMPOSE_PROJECT_NAME"] = compose_project(repo.root, spec.name)  # (its env table may name another)
    env.update(spec.env)
    env.update({
        "COCKPIT_AGENT": spec.name,
        "COCKPIT_TASK": spec.task,
        "COCKPIT_ATTEMPT": str(attempt),
        "COCKPIT_BRANCH": branch,
        "COCKPIT_BASE": base_ref,
        "COCKPIT_WORKTREE": str(layout.worktree(spec.name)),
        "COCKPIT_LOG": str(layout.session_log(spec.name)),
        "COCKPIT_REPO": str(repo.root),
        "TMPDIR": str(layout.tmp_dir(spec.name)),
    })
    if held:
        env["COCKPIT_PORT"] = str(held[0])
        env["COCKPIT_PORTS"] = " ".join(str(p) for p in held)
    return env


def check_ready(repo: Repository, spec: AgentSpec) -> None:
    """Refuse now, before an operation archives or removes anything, what would make the launch
    of a new worktree for ``spec`` fail: a ``.worktreeinclude`` pattern out of the repository,
    or no free block of ports of the size it needs (when it does not hold one already)."""
    include.patterns(repo.root)
    count = settings(repo, spec).ports
    record = repo.history().records.get(spec.name)
    holds = len(record.ports) if record is not None and not record.discarded else 0
    if count and count != holds and not ports.available([count]):
        first, last = ports.PORT_RANGE
        raise ports.PortsExhausted(f"no block of {count} free TCP port(s) left in {first}-{last} for agent "
                                   f"{spec.name!r} (see {ports.registry_path()}): lower [worktree] ports in "
                                   "cockpit.toml, or discard agents you no longer need; nothing was changed")


# -- ports ------------------------------------------------------------------------------------------
def open_ports(repo: Repository, name: str, count: int, prefer: list[int] | None = None) -> list[int]:
    """The agent's block of ``count`` ports (the one it holds when the size is right), recorded
    as ``ports.allocated`` when it is new. Raises :class:`~cockpit.core.ports.PortsExhausted`."""
    record = repo.history().records.get(name)
    if count <= 0 and not (record is not None and not record.discarded and record.ports):
        return []  # no block wanted, none held: the machine-wide registry is not touched
    before = ports.held(repo.root, name)
    block = ports.allocate(repo.root, name, count, prefer or before)
    if block != before:
        if before:
            repo.events.append("ports.released", name, ports=before)
        if block:
            repo.events.append("ports.allocated", name, ports=block)
    return block


def close_ports(repo: Repository, name: str) -> None:
    """Give the agent's block back (discard, or a launch rolled back), recorded as ``ports.released``."""
    released = ports.release(repo.root, name)
    if released:
        repo.events.append("ports.released", name, ports=released)


# -- .worktreeinclude -----------------------------------------------------------------------------------
def copy_included(repo: Repository, name: str) -> Copied:
    """Copy the main checkout's included files into the agent's worktree (never over a file it
    has). What could not be copied is recorded (``include.skipped``) and copying goes on."""
    copied = include.copy_into(repo.root, repo.layout.worktree(name))
    if copied.skipped:
        repo.events.append("include.skipped", name, count=len(copied.skipped),
                           paths=[f"{path}: {why}" for path, why in copied.skipped[:MAX_LISTED]])
    return copied


# -- teardown and stop ------------------------------------------------------------------------------------
def _run(repo: Repository, record: Record, kind: str) -> None:
    """Run the agent's ``teardown`` or ``stop`` commands in its worktree; a failure is recorded
    as ``<kind>.failed``, never raised."""
    name = record.name
    worktree = repo.layout.worktree(name)
    if record.discarded or not record.branch or not worktree.is_dir():
        return
    try:
        wanted = settings(repo, record.spec)
    except CockpitError as exc:
        repo.events.append(f"{kind}.failed", name, reason=f"{kind}: not run: {one_line(exc)}")
        return
    commands = wanted.teardown if kind == "teardown" else wanted.stop
    timeout = wanted.teardown_timeout if kind == "teardown" else wanted.stop_timeout
    if not commands:
        return
    try:
        prefix = sandbox.command_prefix(repo, record.spec)
        env = {**base_environment(), **variables(repo, record.spec, record.attempt, record.branch, record.base,
                                                 ports.held(repo.root, name))}
        outcome = provision.run(kind, commands, timeout, worktree, repo.layout.session_log(name), env, prefix or ())
    except (CockpitError, OSError) as exc:
        repo.events.append(f"{kind}.failed", name, reason=f"{kind}: not run: {one_line(exc)}")
        return
    if outcome.ok:
        repo.events.append(f"{kind}.done", name, commands=len(commands))
    else:
        repo.events.append(f"{kind}.failed", name, reason=outcome.reason, command=outcome.command,
                           exit_code=outcome.code)


def teardown(repo: Repository, name: str) -> None:
    """The agent's ``teardown`` commands, before its worktree is removed (after its archive)."""
    record = repo.history().records.get(name)
    if record is not None:
        _run(repo, record, "teardown")


def stop(repo: Repository, name: str) -> None:
    """The agent's ``stop`` commands, after it was killed or the fleet went down."""
    record = repo.history().records.get(name)
    if record is not None:
        _run(repo, record, "stop")
