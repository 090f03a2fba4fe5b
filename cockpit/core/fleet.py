"""``Fleet``: the operations users name — spawn, up, pause, resume, kill, down, discard, restore,
respawn — over one repository.

Each operation runs under the repository lock as a list of small steps, recorded in the event
log before and after, so a crash between any two steps is found (an operation ``*.started`` with
no end) and finished or rolled back by the next cockpit to look (:mod:`cockpit.core.recovery`).
State is derived: the log's story, reconciled with tmux and git on every read
(:mod:`cockpit.core.roster`).

This is the engine's top layer and the only module that imports the others: the steps live in
:mod:`~cockpit.core.lifecycle` (launch, restart, stop, teardown, rollback) and
:mod:`~cockpit.core.archive`, and every part takes the :class:`~cockpit.core.repository.Repository`
this class extends, never a ``Fleet``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from cockpit.core import archive as archiving
from cockpit.core import (
    attach,
    hosts,
    include,
    lifecycle,
    pending,
    permissions,
    processes,
    provision,
    radar,
    recovery,
    roster,
    sandbox,
    watch,
    workspace,
    worktrees,
)
from cockpit.core.agent import Agent, halt_reason
from cockpit.core.archive import DiscardPreview
from cockpit.core.attach import AttachPlan
from cockpit.core.checklist import Checklist
from cockpit.core.crash import crash_point
from cockpit.core.diff import AgentDiff, agent_diff
from cockpit.core.diff import base_moved as diff_base_moved
from cockpit.core.errors import CockpitError, NotFound
from cockpit.core.layout import archive_ref, branch_for
from cockpit.core.ownership import OwnershipTracker, record_new
from cockpit.core.repository import Repository
from cockpit.core.sessions import PaneState, ServerUnknown
from cockpit.core.spec import AgentSpec, validate_name
from cockpit.core.state import LIVE
from cockpit.core.tmux_setup import check_tmux
from cockpit.core.up import Step
from cockpit.core.up import run as run_up

__all__ = ["DiscardPreview", "Fleet"]


class Fleet(Repository):
    """All agents of one repository. Safe to use from several threads and several processes."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.ownership_tracker = OwnershipTracker()

    @classmethod
    def discover(cls, start: Path | None = None) -> Fleet:
        """The fleet of the repository containing ``start`` (default: the current directory),
        also from a subdirectory or from inside one of its worktrees (an agent's included)."""
        return cls(worktrees.repo_root(Path(start or Path.cwd())))

    # -- reading -------------------------------------------------------------------------------------
    def agents(self, observe: bool = True, wait: float = 0, ownership: bool = False) -> list[Agent]:
        """Every agent, reconciled with tmux and git. With ``observe``, exits noticed now are
        recorded (and the 2-failure rule applied) and interrupted operations are recovered;
        ``wait`` is how long to wait for the lock to do so. With ``ownership``, each agent's
        ``out_of_scope`` and ``collisions`` are filled in (from :attr:`ownership_tracker`'s cache
        where fresh) and new findings are recorded as events, and ``conflicts`` comes from the
        conflict radar's last round (read, never computed here: :mod:`cockpit.core.radar`)."""
        agents = roster.agents(self, observe, wait)
        if not ownership:
            return agents
        found = self.ownership_tracker.compute(agents)
        record_new(self, found)
        last_round = radar.read(self)
        records = self.history().records
        candidates = [name for name, record in records.items() if radar.covered(self, record)]
        return [replace(a, out_of_scope=found[a.name].out_of_scope if a.name in found else a.out_of_scope,
                        collisions=found[a.name].collisions if a.name in found else a.collisions,
                        conflicts=radar.conflicts_of(last_round, a.name, a.branch, candidates)) for a in agents]

    def agent(self, name: str) -> Agent:
        validate_name(name)
        for agent in self.agents():
            if agent.name == name:
                return agent
        raise NotFound(f"no agent named {name!r} (see 'cockpit ls')")

    # -- agents on other hosts (cockpit.core.hosts) ---------------------------------------------------
    def host_of(self, name: str) -> str | None:
        """The [[host]] agent ``name`` runs on; None for this machine (and with no hosts configured).
        A cockpit.toml that cannot be read says nothing about an agent running here: its record
        does (a typo made while agents run must not take pause, kill or discard away)."""
        return hosts.host_of(self, name) if hosts.configured(self) else None

    # -- spawn, up ------------------------------------------------------------------------------------
    def resolve_spec(self, name: str, command: str | None = None, task: str | None = None,
                     scope: list[str] | None = None) -> AgentSpec:
        """The spec to run: from the command line when ``command`` is given, else cockpit.toml."""
        validate_name(name)
        configured = self.config.agents.get(name)
        if command is None:
            if configured is None:
                raise CockpitError(
                    f"agent {name!r} is not in {self.layout.config.name}: give --command, or add an [[agent]] entry")
            spec = configured
        else:
            if not command.strip():
                raise CockpitError("--command must not be empty")
            spec = replace(configured, command=command) if configured else AgentSpec(name=name, command=command)
        if task is not None:
            spec = replace(spec, task=task)
        if scope:
            spec = replace(spec, scope=tuple(scope))
        return sandbox.with_default(spec, self.config.sandbox)

    def spawn(self, name: str, command: str | None = None, task: str | None = None,
              scope: list[str] | None = None, base: str | None = None, spec: AgentSpec | None = None) -> Agent:
        """Branch + worktree + tmux session + log pipe. On any failure nothing is left behind.
        ``spec``: run this spec instead of cockpit.toml's (a spawn another cockpit asked for over
        ssh: :mod:`cockpit.cli_remote`)."""
        validate_name(name)
        check_tmux()
        if spec is not None:
            spec = sandbox.with_default(replace(spec, name=name, host=None), self.config.sandbox)
        else:
            spec = self.resolve_spec(name, command, task, scope)
        if sandbox.enabled(spec):
            sandbox.require()  # never silently unsandboxed, and before anything is created
        with self.locked():
            existing = self.history().records.get(name)
            # (an agent stopped while pending was never cut: spawning it again plans it again)
            replan = existing is not None and not existing.branch and existing.state == "killed"
            if existing is not None and not existing.discarded and not replan:
                raise CockpitError(
                    f"agent {name!r} already exists ({roster.state_of(self, name)}): use 'cockpit respawn {name}' "
                    f"or 'cockpit discard {name}' first")
            base_ref, base_sha = self.resolve_base(base)
            if spec.after:
                pending.require_merge_tree()
                if not pending.cut_after_upstreams(self, spec, 1, base_ref, base_sha, "spawn"):
                    return roster.snapshot(self, self.history().records[name], None, {})
                panes = self.tmux.panes()
            else:
                panes = lifecycle.launch(self, spec, attempt=1, base_ref=base_ref, base_sha=base_sha, op="spawn")
            watch.ensure(self, panes)  # the fleet's watcher: activity and notifications with no cockpit open
            return roster.snapshot(self, self.history().records[name], panes.get(name), processes.children_map())

    def start_pending(self, name: str) -> bool:
        """Start the pending agent ``name`` if its upstreams have all finished (see
        :func:`cockpit.core.pending.start`). Caller holds the lock."""
        return pending.start(self, name)

    def up(self, names: list[str] | None = None, hosts: Checklist | None = None) -> tuple[Checklist, list[Step]]:
        """Bring every configured agent (or those named) back, ``after`` first: spawn the ones
        never spawned (or discarded), restart killed ones in place (``respawn --keep``), leave
        the rest and say why (:mod:`cockpit.core.up`). The agents to start pass the pre-spawn
        checklist as one batch, with ``hosts`` (the items of the agents on hosts, which the
        caller starts afterwards), or nothing starts (:class:`ChecklistFailed`)."""
        return run_up(self, names, spawn=self.spawn, restart=lambda name: self.respawn(name, keep=True), hosts=hosts)

    # -- pause, resume, kill, down, fail --------------------------------------------------------------
    def _live_pane(self, name: str) -> PaneState:
        record = self.record(name)
        try:
            pane = self.tmux.pane(name)
        except ServerUnknown as exc:
            raise ServerUnknown(f"agent {name!r} is in an unknown state: {exc}") from None
        if pane is None or pane.dead or not pane.pid or record.state not in LIVE:
            raise CockpitError(f"agent {name!r} is not running ({roster.state_of(self, name)})")
        return pane

    def pause(self, name: str) -> None:
        """Freeze every process of the agent in place (SIGSTOP to the whole tree)."""
        validate_name(name)
        if (host := self.host_of(name)) is not None:
            hosts.run_checked(self, host, ["pause", name])
            return
        with self.locked():
            pid = self._live_pane(name).pid
            assert pid is not None  # (checked by _live_pane)
            tree = processes.children_map()  # (one read of /proc for the check and the first walk)
            if processes.is_stopped(pid, tree):
                raise CockpitError(f"agent {name!r} is already paused")
            stopped = processes.signal_tree(pid, signal.SIGSTOP, tree=tree)
            if not stopped:
                raise CockpitError(f"agent {name!r} has no process to pause")
            self.events.append("paused", name, pids=stopped)

    def resume(self, name: str) -> None:
        """Thaw the agent; keys typed while it was paused are delivered now."""
        validate_name(name)
        if (host := self.host_of(name)) is not None:
            hosts.run_checked(self, host, ["resume", name])
            return
        with self.locked():
            pid = self._live_pane(name).pid
            assert pid is not None  # (checked by _live_pane)
            tree = processes.children_map()
            if not processes.is_stopped(pid, tree) and self.record(name).state != "paused":
                raise CockpitError(f"agent {name!r} is not paused")
            processes.signal_tree(pid, signal.SIGCONT, tree=tree)
            self.events.append("resumed", name)

    def end_session(self, name: str, grace: float = 3.0) -> None:
        """End the agent's processes and its tmux session (:func:`cockpit.core.lifecycle.end_session`,
        the one way every operation stops an agent)."""
        lifecycle.end_session(self, name, grace)

    def kill(self, name: str) -> None:
        """End the agent's processes and tmux session; keep its worktree, branch and log. A
        pending agent is cancelled: it will not start by itself ('cockpit up' plans it again)."""
        validate_name(name)
        if (host := self.host_of(name)) is not None:
            hosts.run_checked(self, host, ["kill", name])
            return
        with self.locked():
            record = self.record(name)
            if record.state == pending.PENDING:
                self.events.append("killed", name, reason=f"cancelled while pending ({record.reason})")
                pending.release_environment(self, name)
                return
            self._live_pane(name)
            lifecycle.end_session(self, name)
            self.events.append("killed", name, reason="killed by the user")
            workspace.stop(self, name)  # its services ([worktree] stop): a failure is recorded, never raised

    def down(self) -> list[str]:
        """Stop the whole fleet and leave nothing running: every live agent is ended (recorded
        ``killed``; worktree, branch and log kept), then the watcher, the panes kept by
        ``remain-on-exit``, the log pipes and the tmux server itself, whose socket is removed.
        Returns the names of the agents it stopped. Refuses (:class:`ServerUnknown`, nothing
        changed) when the server cannot be reached: it cannot tell what runs."""
        with self.locked():
            self.tmux.panes()  # raises ServerUnknown before anything is touched
            agents = self.agents()
            stopped = [agent.name for agent in agents if agent.alive or agent.state == pending.PENDING]
            for agent in agents:
                if agent.alive:
                    lifecycle.end_session(self, agent.name)
                    self.events.append("killed", agent.name, reason="stopped by cockpit down")
                elif agent.state == pending.PENDING:  # nothing would start it: the watcher goes too
                    self.events.append("killed", agent.name, reason=f"cancelled by cockpit down while pending "
                                                                    f"({agent.reason}); 'cockpit up' plans it again")
            panes = self.tmux.panes()
            watcher = panes.get(watch.SESSION)
            if watcher is not None and watcher.pid and not watcher.dead:
                watch.stop(watcher.pid)
            for name in panes:  # exited agents' dead panes; anything else on our server
                if name != watch.SESSION:
                    lifecycle.end_session(self, name)
            self.tmux.stop_server()
            for agent in agents:  # every worktree's services ([worktree] stop), the exited agents' too
                if agent.worktree is not None:
                    workspace.stop(self, agent.name)
            return stopped

    def mark_failed(self, name: str) -> None:
        """Count a failure the user saw (the 2-failure rule), stopping the agent if it runs."""
        validate_name(name)
        if (host := self.host_of(name)) is not None:
            hosts.run_checked(self, host, ["fail", name])
            return
        with self.locked():
            record = self.record(name)
            lifecycle.end_session(self, name)
            self.events.append("failed.marked", name, previous=record.state)
            recovery.apply_failure_rule(self, name)

    # -- discard, restore ------------------------------------------------------------------------------
    def discard_preview(self, name: str) -> DiscardPreview:
        """What a discard would archive (:func:`cockpit.core.archive.preview`; read without the lock)."""
        if (host := self.host_of(name)) is not None:
            return DiscardPreview(**hosts.discard_preview(self, host, validate_name(name)))
        return archiving.preview(self, name)

    def archives(self, name: str) -> list[tuple[str, str]]:
        """``(ref, sha)`` of every archive of ``name``, oldest first."""
        return archiving.refs(self, name)

    def discard(self, name: str) -> str | None:
        """Archive, then kill the session and remove worktree and branch. Nothing is lost: the
        archive ref holds every file and commit. Returns the archive ref."""
        validate_name(name)
        if (host := self.host_of(name)) is not None:
            return hosts.discard(self, host, name)
        with self.locked():
            record = self.record(name)
            self.events.append("discard.started", name, branch=record.branch)
            crash_point("discard", "before-archive")
            ref = archiving.write(self, name, record, "discard")
            crash_point("discard", "after-archive")
            lifecycle.teardown(self, name, record.branch)
            pending.release_environment(self, name)  # (also one left by a start that crashed before releasing it)
            workspace.close_ports(self, name)
            crash_point("discard", "after-teardown")
            self.events.append("discarded", name, ref=ref)
            return ref

    def restore(self, name: str, archive: str | None = None) -> Agent:
        """Recreate a discarded agent's worktree and branch from its newest (or the given) archive.

        Files come back byte-identical, untracked ones untracked; the branch's commits are
        reachable. The agent is not started: ``cockpit respawn NAME --keep`` runs it again.
        """
        validate_name(name)
        with self.locked():
            record = self.history().records.get(name)
            if record is not None and not record.discarded:
                raise CockpitError(f"agent {name!r} exists ({roster.state_of(self, name)}): "
                                   "discard it before restoring")
            refs = archiving.refs(self, name)
            if not refs:
                raise NotFound(f"no archive of {name!r} (archives live under refs/cockpit/archive/{name}/)")
            if archive is None:
                ref, sha = refs[-1]
            else:
                wanted = archive if archive.startswith("refs/") else (
                    archive_ref(name, int(archive)) if archive.isdigit() else archive)
                found = [item for item in refs if item[0] == wanted]
                if not found:
                    raise NotFound(f"no archive {archive!r} of {name!r}; have: {', '.join(r for r, _ in refs)}")
                ref, sha = found[0]
            contents = archiving.contents(self, sha)
            branch = contents.branch or (record.branch if record else "") or branch_for(name, 1)
            base_sha = contents.base_sha or (record.base_sha if record else "")
            attempt = record.attempt if record else 1
            lifecycle.check_free(self, name, branch)
            spec = record.spec if record else AgentSpec(name=name, command="")
            settings = workspace.settings(self, self.config.agents.get(name) or spec)
            include.patterns(self.root)  # refused before anything is made
            self.layout.agent_dir(name).mkdir(parents=True, exist_ok=True)
            self.ensure_excluded()
            held = workspace.open_ports(self, name, settings.ports, record.released_ports if record else None)
            self.events.append("restore.started", name, ref=ref, branch=branch)
            try:
                archiving.restore(self, name, sha, branch, contents)
                included = workspace.copy_included(self, name)  # ignored files are not archived
                provision.mark(self.layout, name, None)  # its first start runs the setup
            except BaseException as exc:
                lifecycle.rollback(self, name, branch, True, False)
                workspace.close_ports(self, name)
                self.events.append("restore.failed", name, error=str(exc))
                raise
            self.events.append("restored", name, ref=ref, branch=branch, base=record.base if record else "",
                               base_sha=base_sha, attempt=attempt, spec=spec.to_toml(), ports=held,
                               included=len(included.copied))
        return self.agent(name)

    # -- respawn ----------------------------------------------------------------------------------
    def respawn(self, name: str, keep: bool = False, task: str | None = None, force: bool = False,
                command: str | None = None, setup: bool = False, fresh: bool = False) -> Agent:
        """Start attempt N+1. Default: archive and remove the old worktree, re-cut a fresh branch
        from base. ``keep``: restart the process in the same worktree and branch, running its
        setup again only if ``setup`` or its last setup did not succeed; a ``claude-code`` agent
        continues its conversation (``claude --resume``) unless ``fresh`` or a replan (a new task
        or command) asks for a new one.

        A halted agent is refused unless its task or command changed (a replan) or ``force``.
        """
        validate_name(name)
        if (host := self.host_of(name)) is not None:
            return hosts.respawn(self, host, name, keep=keep, task=task, force=force, command=command, setup=setup,
                                 fresh=fresh)
        check_tmux()
        with self.locked():
            record = self.record(name)
            current = roster.state_of(self, name)
            spec = sandbox.with_default(self.config.agents.get(name) or record.spec, self.config.sandbox)
            if sandbox.enabled(spec):
                sandbox.require()
            if command is not None:
                spec = replace(spec, command=command)
            if task is not None:
                spec = replace(spec, task=task)
            if not spec.command.strip():
                raise CockpitError(f"agent {name!r} has no command: give --command")
            if record.state == pending.PENDING and not force:
                raise CockpitError(f"agent {name!r} is pending ({record.reason}): it starts by itself once they have "
                                   f"finished; 'cockpit respawn {name} --force' starts it from base now")
            replan = spec.task != record.spec.task or spec.command != record.spec.command
            halted = current == "halted" or record.failures >= self.max_failures
            if halted and not (replan or force):
                if record.blocked_by:
                    raise CockpitError(
                        f"agent {name!r} is {halt_reason(record.failures, self.max_failures, record.blocked_by)}: "
                        f"respawn {record.blocked_by!r} (that releases {name!r}), or change {name}'s task (--task) "
                        "or command, or use --force")
                raise CockpitError(
                    f"agent {name!r} is {halt_reason(record.failures, self.max_failures)}: "
                    "change its task (--task) or command, or use --force")
            reset = halted and (replan or force)
            attempt = record.attempt + 1
            extra: dict[str, object] = {"reset_failures": reset, "keep": keep, "previous_attempt": record.attempt}
            if keep:
                worktree = self.layout.worktree(name)
                if not worktree.is_dir():
                    raise CockpitError(f"agent {name!r} has no worktree ({worktree} is missing): "
                                       "respawn without --keep, or restore it first")
                resume = None if fresh or replan else permissions.resumable(self, spec)
                if resume:
                    extra["resumed_session"] = resume
                lifecycle.restart(self, spec, attempt, record, extra, setup=setup, resume=resume)
            else:
                base_ref, base_sha = self.resolve_base(None)
                workspace.check_ready(self, spec)  # before the old worktree is archived and removed
                new_branch = branch_for(name, attempt)
                if worktrees.branch_exists(self.root, new_branch):
                    raise CockpitError(f"branch {new_branch!r} already exists: refusing to touch it")
                self.events.append("respawn.started", name, attempt=attempt, keep=False,
                                   old_branch=record.branch, branch=new_branch)
                archiving.write(self, name, record, "respawn")
                crash_point("respawn", "after-archive")
                lifecycle.teardown(self, name, record.branch)
                crash_point("respawn", "after-teardown")
                if spec.after and not force:  # after its upstreams, as a spawn would be (or pending)
                    pending.require_merge_tree()
                    pending.cut_after_upstreams(self, spec, attempt, base_ref, base_sha, "respawn",
                                                event_type="respawned", extra=extra,
                                                failures=0 if reset else record.failures, announce=False)
                else:
                    lifecycle.launch(self, spec, attempt, base_ref, base_sha, op="respawn", event_type="respawned",
                                     extra=extra, announce=False)
            if reset:
                recovery.release_dependents(self, name)
            watch.ensure(self)
        return self.agent(name)

    # -- exits --------------------------------------------------------------------------------------
    def exit_hook(self) -> str | None:
        """The shell command tmux runs when any agent's process exits (:func:`cockpit.core.lifecycle.exit_hook`)."""
        return lifecycle.exit_hook(self)

    def observe_exit(self, name: str, timeout: float = 10.0) -> None:
        """Record ``name``'s exit as soon as tmux shows its pane dead (run by the agent's wrapper
        and by tmux's pane-died hook, so the 2-failure rule applies with no cockpit open)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pane = self.tmux.pane(name)
            if pane is None or pane.dead:
                break
            time.sleep(0.05)
        self.agents(wait=30)

    # -- a look at one agent ------------------------------------------------------------------------
    def attach_argv(self, name: str) -> list[str]:
        """The command that attaches a terminal to the agent's session (run it with TMUX unset)."""
        self._require_session(name)
        return self.tmux.attach_argv(name)

    def attach_plan(self, name: str, environ: Mapping[str, str]) -> AttachPlan:
        """How to attach the terminal whose environment is ``environ`` (see :meth:`Tmux.attach_plan`);
        a remote agent: ``ssh -t`` to its session there, in a popup inside the user's tmux too."""
        if (host := self.host_of(validate_name(name))) is not None:
            return attach.plan(hosts.attach_argv(self, name, host), name, environ)
        self._require_session(name)
        return self.tmux.attach_plan(name, environ)

    def _require_session(self, name: str) -> None:
        self.record(name)
        if not self.tmux.has_session(name):
            raise CockpitError(f"agent {name!r} has no tmux session ({roster.state_of(self, name)})")

    def screen(self, name: str, scrollback: int = 0) -> list[str]:
        """The agent's current tmux screen, escapes included (for full-screen agents)."""
        return self.tmux.capture(name, scrollback)

    def diff_summary(self, name: str) -> tuple[int, int, int] | None:
        record = self.record(name)
        worktree = self.layout.worktree(name)
        if not worktree.is_dir() or not record.base_sha:
            return None
        return worktrees.diff_summary(worktree, record.base_sha)

    def diff(self, name: str) -> AgentDiff:
        """What ``name`` changed against the merge-base with base: file list first, patches on
        demand (see :mod:`cockpit.core.diff`)."""
        return agent_diff(self, name)

    def base_moved(self, name: str, tips: dict[str, str | None] | None = None) -> int:
        """Commits on base the agent's branch does not have ("base +3"). ``tips`` memoizes
        each base's commit across calls (one round over many agents)."""
        return diff_base_moved(self, name, tips)
