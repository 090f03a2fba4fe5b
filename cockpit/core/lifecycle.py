"""An agent's life in steps: launch (branch, worktree, session), restart in place, stop, tear down,
and the rollback of a launch that failed half-way.

Each step is small and recorded in the event log by whoever runs it, so a crash between two
steps is found and finished or rolled back (:mod:`cockpit.core.recovery`). The commands of
:mod:`cockpit.core.fleet`, the recovery and the watcher (which starts pending agents) all run
these same steps; :func:`end_session` is the one way anything stops an agent.
Callers hold the repository lock.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from datetime import UTC, datetime
from typing import Any

import tomli_w

from cockpit.core import hook_state, include, processes, provision, sandbox, usage, workspace, worktrees
from cockpit.core.crash import crash_point
from cockpit.core.errors import CockpitError, one_line
from cockpit.core.layout import branch_for, snapshot_ref
from cockpit.core.permissions import prepare_command
from cockpit.core.repository import Repository
from cockpit.core.sessions import PaneState
from cockpit.core.spec import AgentSpec
from cockpit.core.state import Record


# -- stopping ----------------------------------------------------------------------------------------
def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pids: list[int], grace: float) -> None:
    """Wait up to ``grace`` seconds for ``pids`` to end."""
    deadline = time.monotonic() + grace
    pause = 0.005  # most processes end within a few ms of SIGTERM: look again soon, then less often
    while time.monotonic() < deadline and any(processes.state(p) not in (None, "Z") for p in pids):
        time.sleep(pause)
        pause = min(0.05, pause * 2)


def end_session(repo: Repository, name: str, grace: float = 3.0) -> None:
    """End the agent's processes and its tmux session: SIGTERM its process tree (continuing
    it if paused), SIGKILL what is left after ``grace`` seconds, kill the session, then end
    any process still carrying the agent's name (one that left the tree, such as a daemon
    that double-forked). The one way every operation stops an agent."""
    pane = repo.tmux.pane(name)
    if pane is not None and pane.pid and not pane.dead:
        victims = processes.signal_tree(pane.pid, signal.SIGTERM, rounds=1)
        processes.signal_tree(pane.pid, signal.SIGCONT, rounds=1)
        _reap(victims, grace)
        for pid in victims + processes.descendants(pane.pid):
            _kill(pid, signal.SIGKILL)
    if pane is not None:
        repo.tmux.kill(name)
    strays = processes.carrying({"COCKPIT_AGENT": name, "COCKPIT_REPO": str(repo.root)})
    for pid in strays:
        _kill(pid, signal.SIGTERM)
        _kill(pid, signal.SIGCONT)
    _reap(strays, 1.0)
    for pid in strays:
        _kill(pid, signal.SIGKILL)


# -- what a session starts with ------------------------------------------------------------------------
def check_free(repo: Repository, name: str, branch: str) -> None:
    """Refuse to create what exists already: the branch, the worktree path, the tmux session."""
    worktree = repo.layout.worktree(name)
    if worktrees.branch_exists(repo.root, branch):
        raise CockpitError(f"branch {branch!r} already exists and is not a live cockpit agent's: "
                           "refusing to touch it (rename or delete it first)")
    if worktree.exists() or os.path.islink(worktree):
        raise CockpitError(f"{worktree} already exists: refusing to overwrite it")
    if repo.tmux.has_session(name):
        raise CockpitError(
            f"tmux session {name!r} already exists on the fleet's tmux server but is not a cockpit agent "
            f"of this repository (left from an earlier repository at this path?): "
            f"tmux -S {repo.tmux.socket} kill-session -t {name}")


def environment(repo: Repository, spec: AgentSpec, attempt: int, branch: str, base_ref: str,
                pass_values: dict[str, str] | None = None, held: list[int] | None = None,
                resume: str | None = None) -> dict[str, str]:
    """The agent's environment (:func:`cockpit.core.workspace.variables`, ``held``: its ports)
    and its wrapper's variables. ``pass_values``: the values of its ``pass_env`` when they do
    not come from this process's environment (a pending agent started by the watcher);
    ``resume``: the conversation its program continues (:func:`permissions.prepare_command`)."""
    layout = repo.layout
    env = workspace.variables(repo, spec, attempt, branch, base_ref, held or [], pass_values)
    env.update({
        "COCKPIT_COMMAND": prepare_command(repo, spec, resume),
        "COCKPIT_EXIT_FILE": str(layout.exit_file(spec.name)),
        "COCKPIT_HOOK_LOG": str(layout.home / "hook.log"),
    })
    layout.exit_file(spec.name).unlink(missing_ok=True)
    return env


def write_spec(repo: Repository, spec: AgentSpec, attempt: int, branch: str, base_ref: str, base_sha: str) -> None:
    """The agent's ``spec.toml``: what runs, on which branch, from which base (atomic write)."""
    data = {"spec": spec.to_toml(), "attempt": attempt, "branch": branch, "base": base_ref,
            "base_sha": base_sha, "spawned_at": datetime.now(UTC).isoformat(timespec="seconds")}
    path = repo.layout.spec_file(spec.name)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomli_w.dumps(data))
    os.replace(tmp, path)


def exit_hook(repo: Repository) -> str | None:
    """The shell command tmux runs when any agent's process exits (its ``pane-died`` hook):
    a cockpit that records the exit and applies the 2-failure rule at once, with no cockpit
    open. None when a path cannot be passed safely through tmux's quoting (single quotes,
    no escapes, and ``#`` starts a format)."""
    def dq(text: str) -> str:
        return '"' + "".join("\\" + c if c in '"$`\\' else c for c in text) + '"'
    parts = [*repo.cockpit_command("_observe"), str(repo.layout.home / "hook.log")]
    if any(c in part for part in parts for c in "'\n#"):
        return None
    *argv, log = parts
    # tmux runs it with the dead pane's session environment: COCKPIT_AGENT is emptied, as in
    # the wrapper, so `cockpit down` does not take this cockpit for one of the agent's processes.
    return "COCKPIT_AGENT= " + " ".join(dq(part) for part in argv) + f" >>{dq(log)} 2>&1"


def _start_session(repo: Repository, spec: AgentSpec, env: dict[str, str],
                   prefix: list[str] | None, setup: list[str] | None = None) -> dict[str, PaneState]:
    layout = repo.layout
    # The log exists before the pane's `cat >>` opens it (which tmux starts asynchronously): a
    # look at the fleet in that instant would take a missing log for one deleted by hand and
    # re-open the pipe, dropping what the agent had written into the old one.
    with open(layout.session_log(spec.name), "ab"):
        pass
    return repo.tmux.start(spec.name, layout.worktree(spec.name), env, layout.session_log(spec.name),
                           hook=exit_hook(repo), prefix=prefix, nice=repo.config.tmux_nice,
                           on_exit=repo.cockpit_command("_observe", "--agent", spec.name),
                           setup=setup, setup_status=provision.status_file(layout, spec.name))


# -- launch, restart ------------------------------------------------------------------------------------
def launch(repo: Repository, spec: AgentSpec, attempt: int, base_ref: str, base_sha: str, op: str,
           event_type: str = "spawned", extra: dict[str, Any] | None = None, announce: bool = True,
           pass_values: dict[str, str] | None = None) -> dict[str, PaneState]:
    """Create branch, worktree (with its included files and its ports), agent dir, session — whose
    pane runs the setup before the agent; roll every step back on failure. Returns tmux's panes
    as they were right after the session started. ``announce``: record ``<op>.started`` (False
    when the caller already did)."""
    name = spec.name
    branch = branch_for(name, attempt)
    check_free(repo, name, branch)
    wanted = workspace.settings(repo, spec)
    include.patterns(repo.root)  # a pattern that leaves the repository is refused before anything is made
    layout = repo.layout
    repo.ensure_excluded()
    layout.home.mkdir(exist_ok=True)
    agent_dir_existed = layout.agent_dir(name).exists()
    if announce:
        repo.events.append(f"{op}.started", name, attempt=attempt, branch=branch, base=base_ref, base_sha=base_sha)
    created_branch = created_worktree = False
    try:
        held = workspace.open_ports(repo, name, wanted.ports)
        crash_point(op, "before-worktree")
        worktrees.add_worktree(repo.root, layout.worktree(name), branch, base_sha)
        created_branch = created_worktree = True
        crash_point(op, "after-worktree")
        included = workspace.copy_included(repo, name)
        layout.tmp_dir(name).mkdir(parents=True, exist_ok=True)
        if event_type == "spawned":  # a new life for the name: an earlier one's conversations are not its own
            forget_sessions(repo, name)
        write_spec(repo, spec, attempt, branch, base_ref, base_sha)
        env = environment(repo, spec, attempt, branch, base_ref, pass_values, held)
        prefix = sandbox.launch_prefix(repo, spec, branch)
        setup = provision.prepare(layout, name, wanted.setup, wanted.setup_timeout)
        panes = _start_session(repo, spec, env, prefix, setup)
        crash_point(op, "after-session")
    except BaseException as exc:
        rollback(repo, name, branch if created_branch else None, created_worktree, not agent_dir_existed)
        workspace.close_ports(repo, name)
        repo.events.append(f"{op}.failed", name, error=one_line(exc), removed_agent=True)
        raise
    repo.events.append(event_type, name, attempt=attempt, branch=branch, base=base_ref, base_sha=base_sha,
                       spec=spec.to_toml(), ports=held, included=len(included.copied), setup=bool(setup),
                       **(extra or {}))
    return panes


def restart(repo: Repository, spec: AgentSpec, attempt: int, record: Record, extra: dict[str, Any],
            setup: bool = False, resume: str | None = None) -> None:
    """Run ``spec`` again in the agent's existing worktree and branch (``respawn --keep``): the
    old session ends, a new one starts, continuing the conversation ``resume`` when given. A new
    session rather than respawn-pane: it sets the log pipe and remain-on-exit before the agent's
    first byte, which a dead pane cannot take.

    The worktree is set up again (missing included files copied, setup run) when ``setup`` asks
    for it or its last setup did not succeed (it failed, was interrupted, or the worktree was
    restored); its ports are the ones it holds."""
    name = spec.name
    layout = repo.layout
    wanted = workspace.settings(repo, spec)
    again = bool(wanted.setup) and (setup or provision.status(layout, name).state != provision.OK)
    if again or setup:
        include.patterns(repo.root)
    prefix = sandbox.launch_prefix(repo, spec, record.branch)  # may refuse: before anything stops
    held = workspace.open_ports(repo, name, wanted.ports, record.ports)  # (may refuse, too)
    repo.events.append("respawn.started", name, attempt=attempt, keep=True)
    env = environment(repo, spec, attempt, record.branch, record.base, held=held, resume=resume)
    layout.tmp_dir(name).mkdir(parents=True, exist_ok=True)
    end_session(repo, name)
    included = workspace.copy_included(repo, name) if again or setup else None
    plan = provision.prepare(layout, name, wanted.setup, wanted.setup_timeout) if again or not wanted.setup else None
    _start_session(repo, spec, env, prefix, plan)
    write_spec(repo, spec, attempt, record.branch, record.base, record.base_sha)
    more = {"included": len(included.copied)} if included is not None else {}
    repo.events.append("respawned", name, attempt=attempt, branch=record.branch, base=record.base,
                       base_sha=record.base_sha, spec=spec.to_toml(), ports=held, setup=bool(plan), **more, **extra)


def forget_sessions(repo: Repository, name: str) -> None:
    """Drop what the agent's program reported of its conversations (its hook lines, its usage)."""
    for path in (hook_state.hooks_file(repo.layout.agent_dir(name)), usage.cache_file(repo, name)):
        path.unlink(missing_ok=True)


# -- undoing ------------------------------------------------------------------------------------------
def rollback(repo: Repository, name: str, branch: str | None, worktree: bool, agent_dir: bool) -> None:
    """Undo a launch's steps, newest first. Best effort, and every step is tried."""
    end_session(repo, name)
    sandbox.after_teardown(repo, name)
    if worktree:
        try:
            worktrees.remove_worktree(repo.root, repo.layout.worktree(name))
        except CockpitError:
            shutil.rmtree(repo.layout.worktree(name), ignore_errors=True)
    if branch:
        try:
            worktrees.delete_branch(repo.root, branch)
        except CockpitError:
            pass  # reported by the caller's error; the branch name is in the event log
    if agent_dir:
        shutil.rmtree(repo.layout.agent_dir(name), ignore_errors=True)


def teardown(repo: Repository, name: str, branch: str) -> None:
    """Stop the session, run the agent's teardown commands (whose failure is recorded, never
    raised), remove the worktree, the conflict radar's snapshot and the branch (after archiving:
    the archive is the record of what the worktree held)."""
    end_session(repo, name)
    workspace.teardown(repo, name)
    worktrees.remove_worktree(repo.root, repo.layout.worktree(name))
    worktrees.delete_ref(repo.root, snapshot_ref(name))
    sandbox.after_teardown(repo, name)
    if branch:
        worktrees.delete_branch(repo.root, branch)  # (refused, saying where, if checked out elsewhere)
