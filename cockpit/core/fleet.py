"""``Fleet``: the operations users name — spawn, up, pause, resume, kill, discard, restore,
respawn — over one repository.

Each operation runs under the repository lock as a list of small steps, recorded in the event
log before and after, so a crash between any two steps is found (an operation ``*.started`` with
no end) and finished or rolled back by the next cockpit to look (:mod:`cockpit.core.recovery`).
State is derived: the log's story, reconciled with tmux and git on every read.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping

import tomli_w

from cockpit.core import activity as activity_mod, pending, processes, sandbox, server, watch, worktrees
from cockpit.core.agent import Agent, halt_reason, name_order
from cockpit.core.checklist import Checklist
from cockpit.core.errors import CockpitError, NotFound
from cockpit.core.events import Event, EventLog
from cockpit.core.layout import Layout, archive_ref, branch_for
from cockpit.core.lock import repo_lock
from cockpit.core.permissions import prepare_command
from cockpit.core.ownership import OwnershipTracker, record_new
from cockpit.core.server import AddressBook
from cockpit.core.sessions import AttachPlan, PaneState, ServerUnknown, Tmux, check_tmux
from cockpit.core.spec import AgentSpec, FleetConfig, load_config, validate_name
from cockpit.core.state import LIVE, History, Record, apply

if TYPE_CHECKING:
    from cockpit.core.diff import AgentDiff
    from cockpit.core.up import Step

CRASH_ENV = "COCKPIT_CRASH_AT"  # test hook: "op:step" makes the engine SIGKILL itself there


def _crash_point(op: str, step: str) -> None:
    """Die here if the crash-injection hook names this step (used by the crash tests)."""
    if os.environ.get(CRASH_ENV) == f"{op}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


@dataclass(frozen=True)
class DiscardPreview:
    """What a discard will archive: shown before the user confirms."""

    name: str
    uncommitted: list[str]
    ahead: int
    archive_ref: str
    worktree_exists: bool


class Fleet:
    """All agents of one repository. Safe to use from several threads and several processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.layout = Layout(self.root)
        self.addresses = AddressBook(self.root, self.layout.fleet_file)
        self.tmux = Tmux(self.addresses)
        self.events = EventLog(self.layout.events)
        self._history = History()
        self._mutex = threading.RLock()
        self._local = threading.local()
        self._config: tuple[float | None, FleetConfig] | None = None
        self.ownership_tracker = OwnershipTracker()
        self._excluded = False

    @classmethod
    def discover(cls, start: Path | None = None) -> "Fleet":
        """The fleet of the repository containing ``start`` (default: the current directory),
        also from a subdirectory or from inside one of its worktrees (an agent's included)."""
        return cls(worktrees.repo_root(Path(start or Path.cwd())))

    # -- config, history, lock ---------------------------------------------------------------------
    @property
    def config(self) -> FleetConfig:
        """cockpit.toml, re-read when it changes. Raises :class:`ConfigError` when malformed."""
        path = self.layout.config
        try:
            mtime: float | None = path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if self._config is None or self._config[0] != mtime:
            self._config = (mtime, load_config(path))
        return self._config[1]

    @property
    def max_failures(self) -> int:
        try:
            return self.config.max_failures
        except CockpitError:
            return 2

    def history(self) -> History:
        """The replayed event log, read incrementally from where the last read stopped."""
        with self._mutex:
            events, offset = self.events.read(self._history.offset)
            if offset < self._history.offset:  # the log was replaced: replay from scratch
                self._history = History()
                events, offset = self.events.read(0)
            for event in events:
                apply(self._history, event)
            self._history.offset = offset
            return self._history

    def read_events(self, offset: int = 0) -> tuple[list[Event], int]:
        """Events from byte ``offset`` on: how views follow the fleet."""
        return self.events.read(offset)

    def record_event(self, type: str, agent: str | None = None, **data: object) -> Event:
        return self.events.append(type, agent, **data)

    @contextmanager
    def locked(self, timeout: float = 60.0) -> Iterator[None]:
        """The repository lock, re-entrant within one thread."""
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        if not self.layout.home.is_dir():
            self._ensure_excluded()  # before .cockpit/ exists, so it never shows as untracked
        with repo_lock(self.layout.lock, timeout):
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0

    def _ensure_excluded(self) -> None:
        """``/.cockpit/`` in .git/info/exclude: checked once per Fleet (it cost a git call per spawn)."""
        if not self._excluded:
            worktrees.ensure_excluded(self.root)
            self._excluded = True

    def _record(self, name: str) -> Record:
        validate_name(name)
        record = self.history().records.get(name)
        if record is None or record.discarded:
            raise NotFound(f"no agent named {name!r} (see 'cockpit ls')")
        return record

    # -- reading -------------------------------------------------------------------------------------
    def agents(self, observe: bool = True, wait: float = 0, ownership: bool = False) -> list[Agent]:
        """Every agent, reconciled with tmux and git. With ``observe``, exits noticed now are
        recorded (and the 2-failure rule applied) and interrupted operations are recovered;
        ``wait`` is how long to wait for the lock to do so. With ``ownership``, each agent's
        ``out_of_scope`` and ``collisions`` are filled in (from :attr:`ownership_tracker`'s cache
        where fresh) and new findings are recorded as events."""
        agents = self._agents(observe, wait)
        if not ownership:
            return agents
        found = self.ownership_tracker.compute(agents)
        record_new(self, found)
        return [replace(a, out_of_scope=found[a.name].out_of_scope, collisions=found[a.name].collisions)
                if a.name in found else a for a in agents]

    def _agents(self, observe: bool, wait: float) -> list[Agent]:
        try:
            panes: dict[str, PaneState] | None = self.tmux.panes()
            if observe:
                from cockpit.core.recovery import observe as observe_fleet
                if observe_fleet(self, panes, wait):
                    panes = self.tmux.panes()
            unknown = None
        except ServerUnknown as exc:  # nothing is concluded, nothing recorded
            panes, unknown = {}, str(exc)
        assert panes is not None
        history = self.history()
        sandbox.on_read(self, list(history.records.values()))
        for record in history.records.values():
            pane = panes.get(record.name)
            if (not record.discarded and record.state in LIVE and pane is not None and not pane.dead
                    and self.layout.agent_dir(record.name).is_dir()
                    and not self.layout.session_log(record.name).exists()):
                self.tmux.repipe(record.name, self.layout.session_log(record.name))  # log deleted by hand
        tree = processes.children_map() if any(r.state in LIVE for r in history.records.values()) else {}
        return [self._snapshot(r, panes.get(r.name), tree, unknown)
                for r in sorted(history.records.values(), key=lambda r: name_order(r.name)) if not r.discarded]

    def agent(self, name: str) -> Agent:
        validate_name(name)
        for agent in self.agents():
            if agent.name == name:
                return agent
        raise NotFound(f"no agent named {name!r} (see 'cockpit ls')")

    def _snapshot(self, record: Record, pane: PaneState | None, tree: dict[int, list[int]],
                  unknown: str | None = None) -> Agent:
        """``unknown``: why the tmux server cannot be reached (its live agents are then
        ``unknown``, never taken for gone)."""
        layout = self.layout
        worktree = layout.worktree(record.name)
        log = layout.session_log(record.name)
        state = record.state
        reason = record.reason
        if state == "halted" and record.blocked_by:  # (older logs said "depends on halted agent 'x'")
            reason = halt_reason(record.failures, self.max_failures, record.blocked_by)
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
        activity: list[float] = []
        try:
            activity.append(log.stat().st_mtime)
        except OSError:
            pass
        if pane is not None and pane.activity:
            activity.append(pane.activity)
        last = datetime.fromtimestamp(max(activity), timezone.utc).isoformat(timespec="seconds") if activity else None
        return Agent(
            name=record.name,
            state=state,
            attempt=record.attempt,
            failures=record.failures,
            max_failures=self.max_failures,
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
            tmux_socket=self.tmux.socket,
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
            # from the process, never the merge state: a queued or blocked agent still waits, works...
            activity=activity_mod.of_agent(self, record, pane, process_state),
        )

    # -- spawn ----------------------------------------------------------------------------------------
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

    def _resolve_base(self, base: str | None) -> tuple[str, str]:
        """The branch new agents are cut from, and its commit: ``base``, else ``[cockpit] base``,
        else the main checkout's current branch. A symbolic name (``HEAD``, ``@``,
        ``refs/heads/main``) resolves to the branch it names. Anything else — a tag, a commit,
        ``HEAD~1``, a remote-tracking branch, a detached HEAD — is refused here, because the merge
        queue lands an agent's work by fast-forwarding its base *branch* and would refuse it later."""
        ref = base or self.config.base
        if ref is None:  # the current branch: name and commit in one git call
            found = worktrees.head(self.root)
            if found is not None and found[0] != "HEAD":
                return found
            ref, sha = "HEAD", found[1] if found else None
        else:
            sha = worktrees.resolve(self.root, ref)
        if sha is None:  # (an empty repository is checked only then: one git call less per spawn)
            if worktrees.head_commit(self.root) is None:
                raise CockpitError(f"{self.root}: the repository has no commits yet (make a first commit)")
            raise CockpitError(f"base {ref!r} does not exist in {self.root}")
        full = worktrees.full_name(self.root, ref) or ""
        if full.startswith("refs/heads/"):
            return full.removeprefix("refs/heads/"), sha
        why = "the merge queue lands an agent's work by fast-forwarding its base branch"
        if full == "HEAD":
            raise CockpitError(f"the main checkout is on a detached HEAD ({sha[:12]}): {why}; check out a branch, "
                               "or give one with --base BRANCH (or base = \"BRANCH\" in cockpit.toml)")
        what = ("a tag" if full.startswith("refs/tags/") else "a remote-tracking branch"
                if full.startswith("refs/remotes/") else full if full else "a commit, not a branch")
        source = f"base {ref!r}" if base else f"base = {ref!r} in {self.layout.config.name}"
        current = worktrees.current_branch(self.root)
        instead = f"use a local branch ({current!r} is checked out)" if current else "use a local branch"
        raise CockpitError(f"{source} is {what}: {why}; {instead}, or create one at it: git branch NAME {sha[:12]}")

    def spawn(self, name: str, command: str | None = None, task: str | None = None,
              scope: list[str] | None = None, base: str | None = None) -> Agent:
        """Branch + worktree + tmux session + log pipe. On any failure nothing is left behind."""
        validate_name(name)
        check_tmux()
        spec = self.resolve_spec(name, command, task, scope)
        if sandbox.enabled(spec):
            sandbox.require()  # never silently unsandboxed, and before anything is created
        with self.locked():
            existing = self.history().records.get(name)
            replan = existing is not None and not existing.branch and existing.state == "killed"  # stopped while pending
            if existing is not None and not existing.discarded and not replan:
                raise CockpitError(
                    f"agent {name!r} already exists ({self._state_of(name)}): use 'cockpit respawn {name}' "
                    f"or 'cockpit discard {name}' first")
            base_ref, base_sha = self._resolve_base(base)
            if spec.after:
                pending.require_merge_tree()
                if not self._cut_after_upstreams(spec, 1, base_ref, base_sha, "spawn"):
                    return self._snapshot(self.history().records[name], None, {})
                panes = self.tmux.panes()
            else:
                panes = self._launch(spec, attempt=1, base_ref=base_ref, base_sha=base_sha, op="spawn")
            watch.ensure(self, panes)  # the fleet's watcher: activity and notifications with no cockpit open
            return self._snapshot(self.history().records[name], panes.get(name), processes.children_map())

    def _cut_after_upstreams(self, spec: AgentSpec, attempt: int, base_ref: str, base_sha: str, op: str,
                             event_type: str = "spawned", extra: dict | None = None, failures: int = 0,
                             pass_values: dict[str, str] | None = None, announce: bool = True) -> bool:
        """Start ``spec`` (which has ``after``) from the merge of base's tip and its upstreams'
        tips if they have all finished; else record it ``pending`` (:mod:`cockpit.core.pending`),
        holding its ``pass_env`` values in the tmux server, and make sure the watcher runs to
        start it later. True when it started. Caller holds the lock."""
        name = spec.name
        waits = pending.waiting_for(self, spec)
        reason = pending.describe(self, waits) if waits else ""
        if not waits:
            try:
                cut, tips = pending.merge_base(self, spec, base_sha)
            except worktrees.MergeConflict as exc:
                waits, reason = list(spec.after), (f"its upstreams conflict: {', '.join(exc.paths)} "
                                                   f"('cockpit respawn {name} --force' starts it from {base_ref})")
            else:
                self._launch(spec, attempt, base_ref, cut, op, event_type=event_type,
                             extra={**(extra or {}), "upstreams": tips, "base_tip": base_sha},
                             pass_values=pass_values, announce=announce)
                pending.release_environment(self, name)
                return True
        record = self.history().records.get(name)
        if record is None or record.state != pending.PENDING or record.reason != reason:
            self.events.append("pending", name, attempt=attempt, base=base_ref, blocked_by=", ".join(waits),
                               reason=reason, spec=spec.to_toml(), failures=failures)
        watch.ensure(self)
        if pass_values is None:
            pending.hold_environment(self, spec)
        return False

    def start_pending(self, name: str) -> bool:
        """Start the pending agent ``name`` if its upstreams have all finished (the watcher calls
        this each round; an up-to-date reason is recorded otherwise). Caller holds the lock."""
        record = self.history().records.get(name)
        if record is None or record.discarded or record.state != pending.PENDING:
            return False
        try:
            base_ref, base_sha = self._resolve_base(record.base or None)
        except CockpitError as exc:
            if record.reason != str(exc):
                self.events.append("pending.waiting", name, blocked_by=record.blocked_by, reason=str(exc))
            return False
        values = pending.held_environment(self, name)
        first = record.attempt <= 1
        try:
            return self._cut_after_upstreams(
                record.spec, record.attempt, base_ref, base_sha, "spawn" if first else "respawn",
                event_type="spawned" if first else "respawned", failures=record.failures, pass_values=values,
                extra=None if first else {"keep": False, "previous_attempt": record.attempt - 1})
        except CockpitError as exc:  # the launch rolled itself back: say why, wait for the next round
            self.events.append("pending.waiting", name, blocked_by=record.blocked_by, reason=f"could not start: {exc}")
            return False

    def _state_of(self, name: str) -> str:
        for agent in self.agents(observe=False):
            if agent.name == name:
                return agent.state
        return "unknown"

    def _check_free(self, name: str, branch: str) -> None:
        worktree = self.layout.worktree(name)
        if worktrees.branch_exists(self.root, branch):
            raise CockpitError(f"branch {branch!r} already exists and is not a live cockpit agent's: "
                               "refusing to touch it (rename or delete it first)")
        if worktree.exists() or os.path.islink(worktree):
            raise CockpitError(f"{worktree} already exists: refusing to overwrite it")
        if self.tmux.has_session(name):
            raise CockpitError(
                f"tmux session {name!r} already exists on the fleet's tmux server but is not a cockpit agent "
                f"of this repository (left from an earlier repository at this path?): "
                f"tmux -S {self.tmux.socket} kill-session -t {name}")

    def _environment(self, spec: AgentSpec, attempt: int, branch: str, base_ref: str,
                     pass_values: dict[str, str] | None = None) -> dict[str, str]:
        """The agent's environment. ``pass_values``: the values of its ``pass_env`` when they
        do not come from this process's environment (a pending agent started by the watcher)."""
        layout = self.layout
        env = dict(pass_values) if pass_values is not None else \
            {key: os.environ[key] for key in spec.pass_env if key in os.environ}
        env.update(spec.env)
        env.update({
            "COCKPIT_AGENT": spec.name,
            "COCKPIT_TASK": spec.task,
            "COCKPIT_COMMAND": prepare_command(self, spec),
            "COCKPIT_ATTEMPT": str(attempt),
            "COCKPIT_BRANCH": branch,
            "COCKPIT_BASE": base_ref,
            "COCKPIT_WORKTREE": str(layout.worktree(spec.name)),
            "COCKPIT_LOG": str(layout.session_log(spec.name)),
            "COCKPIT_REPO": str(self.root),
            "COCKPIT_EXIT_FILE": str(layout.exit_file(spec.name)),
            "COCKPIT_HOOK_LOG": str(layout.home / "hook.log"),
            "TMPDIR": str(layout.tmp_dir(spec.name)),
        })
        layout.exit_file(spec.name).unlink(missing_ok=True)
        return env

    def _write_spec(self, spec: AgentSpec, attempt: int, branch: str, base_ref: str, base_sha: str) -> None:
        data = {"spec": spec.to_toml(), "attempt": attempt, "branch": branch, "base": base_ref,
                "base_sha": base_sha, "spawned_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        path = self.layout.spec_file(spec.name)
        tmp = path.with_suffix(".toml.tmp")
        tmp.write_text(tomli_w.dumps(data))
        os.replace(tmp, path)

    def _launch(self, spec: AgentSpec, attempt: int, base_ref: str, base_sha: str, op: str,
                event_type: str = "spawned", extra: dict | None = None, announce: bool = True,
                pass_values: dict[str, str] | None = None) -> dict[str, PaneState]:
        """Create branch, worktree, agent dir, session; roll every step back on failure.
        Returns tmux's panes as they were right after the session started."""
        name = spec.name
        branch = branch_for(name, attempt)
        self._check_free(name, branch)
        layout = self.layout
        self._ensure_excluded()
        layout.home.mkdir(exist_ok=True)
        agent_dir_existed = layout.agent_dir(name).exists()
        if announce:
            self.events.append(f"{op}.started", name, attempt=attempt, branch=branch, base=base_ref, base_sha=base_sha)
        created_branch = created_worktree = False
        try:
            _crash_point(op, "before-worktree")
            worktrees.add_worktree(self.root, layout.worktree(name), branch, base_sha)
            created_branch = created_worktree = True
            _crash_point(op, "after-worktree")
            layout.tmp_dir(name).mkdir(parents=True, exist_ok=True)
            self._write_spec(spec, attempt, branch, base_ref, base_sha)
            env = self._environment(spec, attempt, branch, base_ref, pass_values)
            prefix = sandbox.launch_prefix(self, spec, branch)
            panes = self.tmux.start(name, layout.worktree(name), env, layout.session_log(name),
                                    hook=self.exit_hook(), prefix=prefix, nice=self.config.tmux_nice,
                                    on_exit=self.cockpit_command("_observe", "--agent", spec.name))
            _crash_point(op, "after-session")
        except BaseException as exc:
            self._rollback(name, branch if created_branch else None, created_worktree, not agent_dir_existed)
            message = str(exc) if isinstance(exc, CockpitError) else f"{type(exc).__name__}: {exc}"
            self.events.append(f"{op}.failed", name, error=message, removed_agent=True)
            raise
        self.events.append(event_type, name, attempt=attempt, branch=branch, base=base_ref, base_sha=base_sha,
                           spec=spec.to_toml(), **(extra or {}))
        return panes

    def _rollback(self, name: str, branch: str | None, worktree: bool, agent_dir: bool) -> None:
        """Undo a launch's steps, newest first. Best effort, and every step is tried."""
        self.end_session(name)
        sandbox.after_teardown(self, name)
        if worktree:
            try:
                worktrees.remove_worktree(self.root, self.layout.worktree(name))
            except CockpitError:
                shutil.rmtree(self.layout.worktree(name), ignore_errors=True)
        if branch:
            try:
                worktrees.delete_branch(self.root, branch)
            except CockpitError:
                pass  # reported by the caller's error; the branch name is in the event log
        if agent_dir:
            shutil.rmtree(self.layout.agent_dir(name), ignore_errors=True)

    def up(self, names: list[str] | None = None) -> tuple[Checklist, list["Step"]]:
        """Bring every configured agent (or those named) back, ``after`` first: spawn the ones
        never spawned (or discarded), restart killed ones in place (``respawn --keep``), leave
        the rest and say why (:mod:`cockpit.core.up`). The agents to start pass the pre-spawn
        checklist as one batch, or nothing starts (:class:`ChecklistFailed`)."""
        from cockpit.core import up
        return up.run(self, names)

    # -- pause, resume, kill ----------------------------------------------------------------------
    def _live_pane(self, name: str) -> PaneState:
        record = self._record(name)
        try:
            pane = self.tmux.pane(name)
        except ServerUnknown as exc:
            raise ServerUnknown(f"agent {name!r} is in an unknown state: {exc}") from None
        if pane is None or pane.dead or not pane.pid or record.state not in LIVE:
            state = self._state_of(name)
            raise CockpitError(f"agent {name!r} is not running ({state})")
        return pane

    def pause(self, name: str) -> None:
        """Freeze every process of the agent in place (SIGSTOP to the whole tree)."""
        validate_name(name)
        with self.locked():
            pane = self._live_pane(name)
            if processes.is_stopped(pane.pid):
                raise CockpitError(f"agent {name!r} is already paused")
            stopped = processes.signal_tree(pane.pid, signal.SIGSTOP)
            if not stopped:
                raise CockpitError(f"agent {name!r} has no process to pause")
            self.events.append("paused", name, pids=stopped)

    def resume(self, name: str) -> None:
        """Thaw the agent; keys typed while it was paused are delivered now."""
        validate_name(name)
        with self.locked():
            pane = self._live_pane(name)
            if not processes.is_stopped(pane.pid) and self._record(name).state != "paused":
                raise CockpitError(f"agent {name!r} is not paused")
            processes.signal_tree(pane.pid, signal.SIGCONT)
            self.events.append("resumed", name)

    def end_session(self, name: str, grace: float = 3.0) -> None:
        """End the agent's processes and its tmux session: SIGTERM its process tree (continuing
        it if paused), SIGKILL what is left after ``grace`` seconds, kill the session, then end
        any process still carrying the agent's name (one that left the tree, such as a daemon
        that double-forked). The one way every operation stops an agent."""
        pane = self.tmux.pane(name)
        if pane is not None and pane.pid and not pane.dead:
            victims = processes.signal_tree(pane.pid, signal.SIGTERM, rounds=1)
            processes.signal_tree(pane.pid, signal.SIGCONT, rounds=1)
            self._reap(victims, grace)
            for pid in victims + processes.descendants(pane.pid):
                _kill(pid, signal.SIGKILL)
        if pane is not None:
            self.tmux.kill(name)
        strays = processes.carrying({"COCKPIT_AGENT": name, "COCKPIT_REPO": str(self.root)})
        for pid in strays:
            _kill(pid, signal.SIGTERM)
            _kill(pid, signal.SIGCONT)
        self._reap(strays, 1.0)
        for pid in strays:
            _kill(pid, signal.SIGKILL)

    @staticmethod
    def _reap(pids: list[int], grace: float) -> None:
        """Wait up to ``grace`` seconds for ``pids`` to end."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(processes.state(p) not in (None, "Z") for p in pids):
            time.sleep(0.05)

    def kill(self, name: str) -> None:
        """End the agent's processes and tmux session; keep its worktree, branch and log. A
        pending agent is cancelled: it will not start by itself ('cockpit up' plans it again)."""
        validate_name(name)
        with self.locked():
            record = self._record(name)
            if record.state == pending.PENDING:
                self.events.append("killed", name, reason=f"cancelled while pending ({record.reason})")
                pending.release_environment(self, name)
                return
            self._live_pane(name)
            self.end_session(name)
            self.events.append("killed", name, reason="killed by the user")

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
                    self.end_session(agent.name)
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
                    self.end_session(name)
            self.tmux.stop_server()
            return stopped

    def mark_failed(self, name: str) -> None:
        """Count a failure the user saw (the 2-failure rule), stopping the agent if it runs."""
        from cockpit.core.recovery import apply_failure_rule
        validate_name(name)
        with self.locked():
            record = self._record(name)
            self.end_session(name)
            self.events.append("failed.marked", name, previous=record.state)
            apply_failure_rule(self, name)

    # -- discard, restore --------------------------------------------------------------------------
    def _next_archive(self, name: str) -> str:
        numbers = [int(ref.rsplit("/", 1)[1]) for ref, _ in worktrees.list_refs(self.root, f"refs/cockpit/archive/{name}/")
                   if ref.rsplit("/", 1)[1].isdigit()]
        return archive_ref(name, max(numbers, default=0) + 1)

    def discard_preview(self, name: str) -> DiscardPreview:
        """What a discard would archive. Read without the lock: if another process discards
        the agent meanwhile (its worktree going away under git), this says so, as a discard
        would, rather than with git's error."""
        record = self._record(name)
        worktree = self.layout.worktree(name)
        uncommitted: list[str] = []
        ahead = 0
        exists = worktree.is_dir()
        try:
            if exists:
                uncommitted = worktrees.status_porcelain(worktree)
                ahead = worktrees.commits_ahead(worktree, record.base_sha) if record.base_sha else 0
            elif record.branch and record.base_sha and worktrees.branch_exists(self.root, record.branch):
                ahead = int(worktrees.run(self.root, "rev-list", "--count", f"{record.base_sha}..{record.branch}"))
        except CockpitError:
            self._record(name)  # NotFound when it was discarded meanwhile
            raise
        return DiscardPreview(name, uncommitted, ahead, self._next_archive(name), exists)

    def archives(self, name: str) -> list[tuple[str, str]]:
        """``(ref, sha)`` of every archive of ``name``, oldest first."""
        validate_name(name)
        refs = worktrees.list_refs(self.root, f"refs/cockpit/archive/{name}/")
        return sorted(refs, key=lambda item: int(item[0].rsplit("/", 1)[1]) if item[0].rsplit("/", 1)[1].isdigit() else 0)

    def _archive(self, name: str, record: Record, op: str) -> str | None:
        """Store the worktree's whole state (or, if the worktree is gone, the branch's commits)
        at the next ``refs/cockpit/archive/<name>/<N>``. Returns the ref, or None if nothing exists."""
        worktree = self.layout.worktree(name)
        ref = self._next_archive(name)
        sandbox.before_archive(self, name, record.branch)
        if worktree.is_dir():
            preview = self.discard_preview(name)
            sha = worktrees.snapshot(worktree, f"cockpit archive of {name} (attempt {record.attempt}, {op})\n\n"
                                               f"branch: {record.branch}\nbase: {record.base_sha}\n")
            worktrees.update_ref(self.root, ref, sha)
            self.events.append("archived", name, ref=ref, sha=sha, branch=record.branch, base_sha=record.base_sha,
                               uncommitted=len(preview.uncommitted), ahead=preview.ahead, snapshot=True)
            return ref
        sha = worktrees.ref_sha(self.root, f"refs/heads/{record.branch}") if record.branch else None
        if sha:
            worktrees.update_ref(self.root, ref, sha)
            self.events.append("archived", name, ref=ref, sha=sha, branch=record.branch, base_sha=record.base_sha,
                               snapshot=False, note="worktree was missing: archived the branch's commits")
            return ref
        return None

    def _teardown(self, name: str, branch: str) -> None:
        """Stop the session, remove the worktree and the branch (after archiving)."""
        self.end_session(name)
        worktrees.remove_worktree(self.root, self.layout.worktree(name))
        sandbox.after_teardown(self, name)
        if branch and worktrees.branch_exists(self.root, branch):
            at = worktrees.branch_checked_out_at(self.root, branch)
            if at is not None:
                raise CockpitError(f"branch {branch!r} is checked out at {at}: not deleting it")
            worktrees.delete_branch(self.root, branch)

    def discard(self, name: str) -> str | None:
        """Archive, then kill the session and remove worktree and branch. Nothing is lost: the
        archive ref holds every file and commit. Returns the archive ref."""
        validate_name(name)
        with self.locked():
            record = self._record(name)
            self.events.append("discard.started", name, branch=record.branch)
            _crash_point("discard", "before-archive")
            ref = self._archive(name, record, "discard")
            _crash_point("discard", "after-archive")
            self._teardown(name, record.branch)
            pending.release_environment(self, name)
            _crash_point("discard", "after-teardown")
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
                raise CockpitError(f"agent {name!r} exists ({self._state_of(name)}): discard it before restoring")
            refs = self.archives(name)
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
            message = worktrees.run(self.root, "log", "-1", "--format=%B", sha)
            snapshot = message.startswith("cockpit archive of ")
            tip = worktrees.run(self.root, "rev-parse", f"{sha}^1") if snapshot else sha
            meta = dict(line.split(": ", 1) for line in message.splitlines() if ": " in line)
            branch = meta.get("branch") or (record.branch if record else "") or branch_for(name, 1)
            base_sha = meta.get("base") or (record.base_sha if record else "")
            attempt = record.attempt if record else 1
            self._check_free(name, branch)
            self.layout.agent_dir(name).mkdir(parents=True, exist_ok=True)
            self._ensure_excluded()
            self.events.append("restore.started", name, ref=ref, branch=branch)
            try:
                worktrees.add_worktree(self.root, self.layout.worktree(name), branch, tip)
                _crash_point("restore", "after-worktree")
                if snapshot:
                    worktrees.restore_files(self.layout.worktree(name), sha)
            except BaseException as exc:
                self._rollback(name, branch, True, False)
                self.events.append("restore.failed", name, error=str(exc))
                raise
            spec = record.spec if record else AgentSpec(name=name, command="")
            self.events.append("restored", name, ref=ref, branch=branch, base=record.base if record else "",
                               base_sha=base_sha, attempt=attempt, spec=spec.to_toml())
        return self.agent(name)

    # -- respawn ----------------------------------------------------------------------------------
    def respawn(self, name: str, keep: bool = False, task: str | None = None, force: bool = False,
                command: str | None = None) -> Agent:
        """Start attempt N+1. Default: archive and remove the old worktree, re-cut a fresh branch
        from base. ``keep``: restart the process in the same worktree and branch.

        A halted agent is refused unless its task or command changed (a replan) or ``force``.
        """
        validate_name(name)
        check_tmux()
        with self.locked():
            record = self._record(name)
            current = self._state_of(name)
            configured = self.config.agents.get(name)
            spec = configured or record.spec
            spec = sandbox.with_default(spec, self.config.sandbox)
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
            extra = {"reset_failures": reset, "keep": keep, "previous_attempt": record.attempt}
            if keep:
                worktree = self.layout.worktree(name)
                if not worktree.is_dir():
                    raise CockpitError(f"agent {name!r} has no worktree ({worktree} is missing): respawn without --keep, "
                                       "or restore it first")
                prefix = sandbox.launch_prefix(self, spec, record.branch)  # may refuse: before anything stops
                self.events.append("respawn.started", name, attempt=attempt, keep=True)
                env = self._environment(spec, attempt, record.branch, record.base)
                self.layout.tmp_dir(name).mkdir(parents=True, exist_ok=True)
                # A new session rather than respawn-pane: start() sets the log pipe and
                # remain-on-exit before the agent's first byte, which a dead pane cannot take.
                self.end_session(name)
                self.tmux.start(name, worktree, env, self.layout.session_log(name), hook=self.exit_hook(),
                                prefix=prefix, nice=self.config.tmux_nice,
                                on_exit=self.cockpit_command("_observe", "--agent", name))
                self._write_spec(spec, attempt, record.branch, record.base, record.base_sha)
                self.events.append("respawned", name, attempt=attempt, branch=record.branch, base=record.base,
                                   base_sha=record.base_sha, spec=spec.to_toml(), **extra)
            else:
                base_ref, base_sha = self._resolve_base(None)
                new_branch = branch_for(name, attempt)
                if worktrees.branch_exists(self.root, new_branch):
                    raise CockpitError(f"branch {new_branch!r} already exists: refusing to touch it")
                self.events.append("respawn.started", name, attempt=attempt, keep=False,
                                   old_branch=record.branch, branch=new_branch)
                self._archive(name, record, "respawn")
                _crash_point("respawn", "after-archive")
                self._teardown(name, record.branch)
                _crash_point("respawn", "after-teardown")
                if spec.after and not force:  # after its upstreams, as a spawn would be (or pending)
                    pending.require_merge_tree()
                    self._cut_after_upstreams(spec, attempt, base_ref, base_sha, "respawn", event_type="respawned",
                                              extra=extra, failures=0 if reset else record.failures,
                                              announce=False)
                else:
                    self._launch(spec, attempt, base_ref, base_sha, op="respawn", event_type="respawned",
                                 extra=extra, announce=False)
            if reset:
                from cockpit.core.recovery import release_dependents
                release_dependents(self, name)
            watch.ensure(self)
        return self.agent(name)

    def cockpit_command(self, *args: str) -> list[str]:
        """The argv of a cockpit command on this fleet, as hooks, wrappers and the watcher run
        it: the cockpit that started the fleet (recorded with its server), or this one if that
        one can no longer run; never whatever ``cockpit`` a ``$PATH`` or ``$PYTHONPATH`` finds."""
        recorded = self.tmux.address.cockpit
        return [*(recorded if server.runnable(recorded) else server.cockpit_argv()), "-C", str(self.root), *args]

    def exit_hook(self) -> str | None:
        """The shell command tmux runs when any agent's process exits (its ``pane-died`` hook):
        a cockpit that records the exit and applies the 2-failure rule at once, with no cockpit
        open. None when a path cannot be passed safely through tmux's quoting (single quotes,
        no escapes, and ``#`` starts a format)."""
        def dq(text: str) -> str:
            return '"' + "".join("\\" + c if c in '"$`\\' else c for c in text) + '"'
        parts = [*self.cockpit_command("_observe"), str(self.layout.home / "hook.log")]
        if any(c in part for part in parts for c in "'\n#"):
            return None
        *argv, log = parts
        # tmux runs it with the dead pane's session environment: COCKPIT_AGENT is emptied, as in
        # the wrapper, so `cockpit down` does not take this cockpit for one of the agent's processes.
        return "COCKPIT_AGENT= " + " ".join(dq(part) for part in argv) + f" >>{dq(log)} 2>&1"

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

    def exit_status(self, name: str, pane: PaneState) -> int | None:
        """The exit status of a dead pane: tmux's, else the one the wrapper wrote."""
        if pane.exit_status is not None:
            return pane.exit_status
        try:
            return int(self.layout.exit_file(name).read_text().strip())
        except (OSError, ValueError):
            return None

    # -- misc ------------------------------------------------------------------------------------
    def attach_argv(self, name: str) -> list[str]:
        """The command that attaches a terminal to the agent's session (run it with TMUX unset)."""
        self._require_session(name)
        return self.tmux.attach_argv(name)

    def attach_plan(self, name: str, environ: Mapping[str, str]) -> AttachPlan:
        """How to attach the terminal whose environment is ``environ`` (see :meth:`Tmux.attach_plan`)."""
        self._require_session(name)
        return self.tmux.attach_plan(name, environ)

    def _require_session(self, name: str) -> None:
        self._record(name)
        if not self.tmux.has_session(name):
            raise CockpitError(f"agent {name!r} has no tmux session ({self._state_of(name)})")

    def screen(self, name: str, scrollback: int = 0) -> list[str]:
        """The agent's current tmux screen, escapes included (for full-screen agents)."""
        return self.tmux.capture(name, scrollback)

    def diff_summary(self, name: str) -> tuple[int, int, int] | None:
        record = self._record(name)
        worktree = self.layout.worktree(name)
        if not worktree.is_dir() or not record.base_sha:
            return None
        return worktrees.diff_summary(worktree, record.base_sha)

    def diff(self, name: str) -> "AgentDiff":
        """What ``name`` changed against the merge-base with base: file list first, patches on
        demand (see :mod:`cockpit.core.diff`)."""
        from cockpit.core.diff import agent_diff
        return agent_diff(self, name)

    def base_moved(self, name: str, tips: dict[str, str | None] | None = None) -> int:
        """Commits on base the agent's branch does not have ("base +3"). ``tips`` memoizes
        each base's commit across calls (one round over many agents)."""
        from cockpit.core.diff import base_moved
        return base_moved(self, name, tips)
