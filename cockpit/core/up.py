"""``cockpit up``: bring the configured fleet back, deciding first what each agent needs.

Every configured agent (or every one named), dependencies first, gets one :class:`Step`, decided
from its state before anything starts:

* ``spawn`` — never spawned, or discarded: a fresh agent, attempt 1, cut from base (a discarded
  agent's archives stay where they are; ``cockpit restore`` needs the name free again);
* ``restart`` — killed (by ``down``, ``kill``, a crash, or released when its upstream was
  respawned): restarted in its own worktree and branch, the next attempt, as ``respawn --keep``;
* ``leave`` — running or paused (untouched); done (exited 0, or merged); queued for merge;
  failed or halted (they need ``cockpit respawn``); its worktree missing. ``detail`` says which,
  and what to run.

The agents to start go through the pre-spawn checklist together, checked the way they will be
started; if it refuses, nothing starts. An agent that then fails to start anyway is reported
(``error``), and so is every agent that runs ``after`` it (not started); the others start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cockpit.core import pending, roster
from cockpit.core.agent import Agent, halt_reason
from cockpit.core.checklist import Checklist, announce, run_checklist
from cockpit.core.errors import CockpitError
from cockpit.core.repository import Repository
from cockpit.core.spec import order_agents, validate_name
from cockpit.core.tmux_setup import check_tmux

SPAWN, RESTART, LEAVE, ERROR, PEND = "spawn", "restart", "leave", "error", "pending"


@dataclass(frozen=True)
class Step:
    """What ``up`` does (or did) with one agent. ``detail`` is the words after the name."""

    name: str
    action: str  # SPAWN, RESTART, LEAVE; ERROR when a start failed
    detail: str

    @property
    def starts(self) -> bool:
        return self.action in (SPAWN, RESTART)

    def describe(self) -> str:
        return f"{self.name}: {self.detail}"


def _decide(name: str, agent: Agent | None, discarded: bool) -> Step:
    """The step for one configured agent, from its reconciled state."""
    if agent is None:
        if discarded:
            return Step(name, SPAWN, "spawned afresh (it was discarded; its archives stay: "
                                     f"cockpit archives {name})")
        return Step(name, SPAWN, "spawned")
    process = agent.process_state or agent.state
    if process == "pending":
        return Step(name, PEND, f"already pending: {agent.reason}")
    if agent.worktree is None and process == "killed":  # stopped while it waited: it was never cut
        return Step(name, SPAWN, "planned again (it was stopped while pending)")
    if process in ("running", "paused"):
        return Step(name, LEAVE, f"already {process}")
    if agent.state == "merged":
        return Step(name, LEAVE, "left merged: its work is in base (done)")
    if agent.state == "queued":
        return Step(name, LEAVE, "left queued for merge ('cockpit merge' lands it)")
    if process == "missing":
        return Step(name, LEAVE, f"left missing: its worktree {agent.worktree} is gone "
                                 f"('cockpit respawn {name}' starts afresh, archiving its branch first)")
    if process == "exited":
        return Step(name, LEAVE, f"left exited: it finished with exit 0 (done; 'cockpit respawn {name}' "
                                 "runs it again)")
    if process == "failed":
        code = f"exit {agent.exit_code}, " if agent.exit_code is not None else ""
        return Step(name, LEAVE, f"left failed ({code}{agent.failures}/{agent.max_failures} failures): "
                                 f"'cockpit respawn {name}' starts the next attempt")
    if process == "halted":
        why = halt_reason(agent.failures, agent.max_failures, agent.blocked_by)
        if agent.blocked_by:
            return Step(name, LEAVE, f"left {why}: respawn {agent.blocked_by!r} (that releases it), "
                                     f"or 'cockpit respawn {name}' with a new --task or --command, or --force")
        return Step(name, LEAVE, f"left {why}: it needs 'cockpit respawn {name}' with a new --task or "
                                 "--command, or --force")
    if process == "unknown":  # (nothing may be concluded: see cockpit.core.sessions.ServerUnknown)
        return Step(name, LEAVE, f"left unknown: {agent.reason}")
    if process == "killed":
        return Step(name, RESTART, f"restart in its worktree on {agent.branch}")
    return Step(name, LEAVE, f"left {agent.state}")


Start = Callable[[str], Agent]
"""Starts one agent by name and returns it: the fleet's spawn, or its ``respawn --keep``."""


def plan(repo: Repository, names: list[str] | None = None) -> list[Step]:
    """The steps, dependencies first, without starting anything. Caller holds the lock."""
    config = repo.config
    current = {a.name: a for a in roster.agents(repo)}
    records = repo.history().records
    steps = [_decide(name, current.get(name), name in records and records[name].discarded)
             for name in order_agents(config.agents, names)]
    if names is None:  # agents started by hand that 'down' stopped: say how to get them back
        steps += [Step(a.name, LEAVE, f"left killed: not in {repo.layout.config.name} "
                                      f"('cockpit respawn {a.name} --keep' restarts it)")
                  for a in current.values() if a.name not in config.agents and a.process_state == "killed"]
    return steps


def run(repo: Repository, names: list[str] | None, spawn: Start, restart: Start,
        hosts: Checklist | None = None) -> tuple[Checklist, list[Step]]:
    """Plan, check the agents to start as one batch, start them: a new one through ``spawn``,
    a killed one through ``restart`` (the fleet's commands, which do the starting). ``hosts``:
    the items of the batch's agents on hosts (:mod:`cockpit.core.host_checklist`), checked with
    this machine's as one batch; they are started by the caller, after this returns. Raises
    :class:`~cockpit.core.checklist.ChecklistFailed` (nothing started) when the checklist refuses."""
    config = repo.config
    for name in names or []:
        validate_name(name)
        if name not in config.agents:
            raise CockpitError(f"agent {name!r} is not in {repo.layout.config.name}")
    if not config.agents:
        raise CockpitError(f"no agents configured: add [[agent]] entries to {repo.layout.config} "
                           "('cockpit init' writes a starter file)")
    check_tmux()
    if any(config.agents[name].after for name in (names or config.agents)):
        pending.require_merge_tree()
    with repo.locked():
        steps = plan(repo, names)
        starting = [s for s in steps if s.starts]
        remote = hosts or Checklist(n=0)
        checklist = Checklist(n=len(starting) + remote.n, remote=remote.remote)
        if checklist.applies:
            if starting:
                records = repo.history().records
                here = run_checklist(repo, [config.agents[s.name] for s in starting],
                                     kept={s.name: records[s.name] for s in starting if s.action == RESTART})
                checklist.items += here.items
                checklist.warnings += here.warnings
            if remote.remote:
                checklist.items += remote.items
                checklist.notes += remote.notes
                checklist.warnings += remote.warnings
            announce(repo, checklist)
        done: list[Step] = []
        unstarted: set[str] = set()  # failed to start, or waiting on one that did
        for step in steps:
            if step.action == PEND:  # its pass_env values: from this up's environment, the freshest
                pending.hold_environment(repo, config.agents[step.name])
            if not step.starts:
                done.append(step)
                continue
            blocker = next((dep for dep in config.agents[step.name].after if dep in unstarted), None)
            if blocker is not None:
                unstarted.add(step.name)
                done.append(Step(step.name, ERROR, f"not started: it runs after {blocker!r}, which did not start"))
                continue
            try:
                if step.action == SPAWN:
                    agent = spawn(step.name)
                    detail = step.detail if agent.state != PEND else f"pending: {agent.reason}"
                else:
                    agent = restart(step.name)
                    detail = f"restarted (attempt {agent.attempt}, same worktree and branch {agent.branch})"
            except (CockpitError, OSError) as exc:  # (each start rolls its own steps back)
                unstarted.add(step.name)
                done.append(Step(step.name, ERROR, f"not started: {exc}"))
                continue
            done.append(Step(step.name, step.action, detail))
        return checklist, done
