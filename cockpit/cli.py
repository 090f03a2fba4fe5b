"""The ``cockpit`` command: parses arguments, calls the engine, prints. No logic of its own.

Exit status: 0 success; 1 refused or failed (one line on stderr, no traceback unless
``COCKPIT_DEBUG=1``); 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cockpit import cli_parser
from cockpit.core.errors import CockpitError, NotFound, one_line

if TYPE_CHECKING:
    from cockpit.core.fleet import Fleet

LS_LOCK_WAIT_S = 5.0
"""How long ``cockpit ls`` waits for the repository lock when an exit must be recorded or an
interrupted operation finished (another process holding the lock is still busy with it)."""

FORWARDED = frozenset({"pause", "resume", "kill", "fail", "discard", "restore", "respawn", "logs", "wait",
                       "archives", "diff"})
"""Agent commands that run on the agent's host when the agent is remote (``attach`` goes through
the Fleet: ``ssh -t`` there, planned as a local attach is)."""

_kept: dict[str, Fleet] | None = None
"""The fleets of a ``cockpit _remote`` process, by ``-C`` directory: a kept session (the TUI on
another machine holds one per host) serves a request per key, and each request using the fleet
the one before it used keeps the event log read incrementally and skips finding the repository
again (a git process), as the TUI's own fleet does. None in every other process."""


def _fleet(args: argparse.Namespace) -> Fleet:
    from cockpit.core.fleet import Fleet
    if _kept is None or not args.directory:
        fleet = Fleet.discover(Path(args.directory) if args.directory else None)
    else:
        fleet = _kept.get(args.directory)
        if fleet is None:
            fleet = _kept[args.directory] = Fleet.discover(Path(args.directory))
        fleet.ownership_tracker.invalidate()  # (no file watcher tells it what changed: each request looks again)
    fleet.ownership_tracker.paths_only = args.cmd == "ls"  # (ls shows no line counts: fewer git calls)
    return fleet


def _ago(iso: str | None) -> str:
    if not iso:
        return "-"
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _print_table(agents) -> None:
    from cockpit.core.agent import short_count
    from cockpit.core.ports import describe
    if not agents:
        print("no agents (start some with 'cockpit up' or 'cockpit spawn NAME --command CMD')")
        return
    with_ports = any(a.ports for a in agents)
    costs = any(a.usage for a in agents)
    remote = any(a.host for a in agents)
    rows = [("NAME", *(("HOST",) if remote else ()), "STATE", "ACTIVITY", "TRY", "BRANCH",
             *(("PORTS",) if with_ports else ()), "OUTPUT", "FLAGS",
             *(("TOKENS",) if costs else ()), "TASK")]
    for a in agents:
        state = a.state + (f" ({a.exit_code})" if a.state == "failed" and a.exit_code is not None else "")
        if a.blocked_by:
            state += f" (waits for {a.blocked_by})" if a.state == "pending" else f" ({a.blocked_by} failed)"
        task = a.task.splitlines()[0] if a.task else ""
        flags = ", ".join(filter(None, [f"{len(a.out_of_scope)} out of scope" if a.out_of_scope else "",
                                        f"{len(a.collisions)} collision(s)" if a.collisions else "",
                                        f"{len(a.conflicts)} conflict(s)" if a.conflicts else ""])) or "-"
        ports = (describe(a.ports) or "-",) if with_ports else ()
        tokens = (short_count(a.usage["counted_tokens"]) if a.usage else "-",) if costs else ()
        doing = a.doing(40) or (a.reason if a.state == "unknown" else None) or "-"
        tries = a.tries if a.state != "unknown" else "-"
        rows.append((a.name, *((a.host or "-",) if remote else ()), state, doing, tries, a.branch or "-", *ports,
                     _ago(a.last_activity), flags, *tokens, task[:50]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])


def _print_environment(agent) -> None:
    """What made the agent's worktree a working environment (.worktreeinclude, its ports)."""
    from cockpit.core.ports import describe
    parts = []
    if agent.included:
        parts.append(f"{agent.included} file(s) from .worktreeinclude")
    if agent.ports:
        parts.append(f"ports {describe(agent.ports)} ($COCKPIT_PORT={agent.ports[0]})")
    if parts:
        print("  " + "; ".join(parts))


def _log_end(fleet) -> int:
    try:
        return fleet.layout.events.stat().st_size
    except OSError:
        return 0


def _warn_from_events(fleet, since: int) -> None:
    """Say on stderr what went wrong, without stopping the command, since byte ``since`` of the log."""
    for event in fleet.read_events(since)[0]:
        if event.type in ("teardown.failed", "stop.failed"):
            print(f"warning: {event.agent}: {event.data.get('reason')} (output in its session.log)", file=sys.stderr)
        elif event.type == "include.skipped":
            print(f"warning: {event.agent}: {event.data.get('count')} included file(s) not copied: "
                  + "; ".join(event.data.get("paths") or []), file=sys.stderr)


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise CockpitError("refusing to discard without confirmation: stdin is not a terminal (add --yes)")
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _this_cockpit() -> str:
    """How a shell runs this same cockpit again: ``cockpit`` when that is what PATH finds, else
    the path of the running entry point (``make demo`` runs ``.venv/bin/cockpit``, which is on
    no one's PATH), or ``python -m cockpit`` with this interpreter."""
    entry = Path(sys.argv[0])
    if entry.name != "cockpit" or not entry.is_file():  # python -m cockpit
        return f"{shlex.quote(sys.executable)} -m cockpit"
    found = shutil.which("cockpit")
    if found and Path(found).resolve() == entry.resolve():
        return "cockpit"
    return shlex.quote(str(entry.absolute()))


def _open_tui(args: argparse.Namespace, fleet, notices: list[str] | None = None) -> int:
    try:
        from cockpit.ui.app import run_app
    except ImportError:
        _print_table(fleet.agents())
        return 0
    return run_app(fleet, theme=args.theme, mouse=not args.no_mouse, notices=notices)


def run(argv: list[str] | None = None) -> int:
    args = cli_parser.parser().parse_args(argv)
    command = args.cmd

    if command == "demo":
        from cockpit.demo import create_demo
        fleet = create_demo(Path(args.dir) if args.dir else None, spawn=False)
        print(f"demo repository: {fleet.root}")
        checklist, _ = fleet.up()
        print("\n".join(checklist.lines()))
        again = f"{_this_cockpit()} -C {shlex.quote(str(fleet.root))}"
        print(f"come back later with: {again}   (stop the agents: {again} down)")
        if args.no_tui:
            _print_table(fleet.agents())
            return 0
        return _open_tui(args, fleet, checklist.lines())

    if command == "init":
        from cockpit.core import worktrees
        from cockpit.core.starter import STARTER
        root = worktrees.repo_root(Path(args.directory or Path.cwd()))
        path = root / "cockpit.toml"
        if path.exists():
            raise CockpitError(f"{path} already exists: not overwriting it")
        path.write_text(STARTER)
        print(f"wrote {path}: edit the [[agent]] entries, then run 'cockpit up'")
        return 0

    if command == "_remote":  # another machine's cockpit, over ssh (cockpit/cli_remote.py)
        from cockpit import cli_remote
        global _kept
        _kept = {}
        return cli_remote.main(sys.stdin.readline(), main)  # one JSON line (op serve: the first of many)
    fleet = _fleet(args)
    if command == "hosts":
        from cockpit import cli_hosts
        return cli_hosts.run_hosts(fleet, args)
    if command in FORWARDED:
        from cockpit.core.spec import validate_name
        validate_name(args.name)
        host = fleet.host_of(args.name)  # (None with no [[host]] configured: no event log read for it)
        if host is not None:
            from cockpit import cli_hosts
            return cli_hosts.forward(fleet, command, args, host)
    if command == "_observe":  # run when an agent exits (its wrapper, tmux's pane-died hook)
        if args.agent:
            fleet.observe_exit(args.agent)
        else:
            fleet.agents(wait=30)
        return 0
    if command == "_watch":  # the watcher, in the fleet's tmux server (cockpit.core.watcher)
        from cockpit.core import watcher
        remote = None
        if fleet.config.hosts:  # the radar covers the agents on hosts too
            from cockpit.core.remote_radar import HostSnapshots
            remote = HostSnapshots(fleet)
        return watcher.main(fleet, args.offset, remote=remote)
    if command is None:
        return _open_tui(args, fleet)
    from cockpit import cli_merge
    if command in cli_merge.COMMANDS:
        return cli_merge.run(command, fleet, args)
    if command == "spawn":
        from cockpit.core import hosts
        from cockpit.core.spec import validate_name
        validate_name(args.name)
        host = args.host
        if host is None and args.name in fleet.config.agents:
            host = fleet.config.agents[args.name].host
        if host is not None:
            hosts.host_spec(fleet, host)  # an unknown host: refused before anything
            spec = fleet.resolve_spec(args.name, args.command, args.task, args.scope)
            agent = hosts.spawn(fleet, spec, host, base=args.base)
            print(f"spawned {agent.name} on host {host}: branch {agent.branch}, worktree {agent.worktree} (there)")
            print(f"  logs: cockpit logs {agent.name}   attach: cockpit attach {agent.name}")
            return 0
        from cockpit.core.checklist import Checklist
        since = _log_end(fleet)
        agent = fleet.spawn(args.name, command=args.command, task=args.task, scope=args.scope, base=args.base)
        print("\n".join(Checklist(n=1).lines()))  # (a spawn is a batch of one)
        print(f"spawned {agent.name}: branch {agent.branch}, worktree {agent.worktree}")
        print(f"  log: {agent.log}   attach: cockpit attach {agent.name}")
        _print_environment(agent)
        _warn_from_events(fleet, since)
    elif command == "up":
        wanted = args.names or list(fleet.config.agents)
        unknown = [n for n in wanted if n not in fleet.config.agents]
        remote = [n for n in wanted if n not in unknown and fleet.config.agents[n].host]
        local = [n for n in wanted if n not in remote]
        from cockpit.core.checklist import Checklist, ChecklistFailed, announce
        try:
            on_hosts = None
            if remote:  # the hosts first: a failed one refuses the batch before anything starts
                from cockpit.core.host_checklist import check_hosts
                on_hosts = check_hosts(fleet, remote)
            if local or not remote:
                checklist, outcomes = fleet.up(local if args.names or remote else None, hosts=on_hosts)
            else:
                checklist, outcomes = on_hosts or Checklist(n=0), []
                if checklist.applies:
                    announce(fleet, checklist)
        except ChecklistFailed as exc:
            for line in exc.checklist.lines():
                print(line, file=sys.stderr)
            return 1
        shown = bool(checklist.n)
        if shown:
            print("\n".join(checklist.lines()), flush=True)
        for step in outcomes:
            print(step.describe(), file=sys.stderr if step.action == "error" else sys.stdout, flush=True)
        remote_failed = False
        if remote:
            from cockpit import cli_hosts
            remote_failed = cli_hosts.up_on_hosts(fleet, remote)
        failed = any(step.action == "error" for step in outcomes) or remote_failed
        if not args.no_tui:
            status = _open_tui(args, fleet, checklist.lines() if shown else None)
            return status or int(failed)
        return int(failed)
    elif command == "check":
        from cockpit.cli_check import check
        return check(fleet, args)
    elif command == "guard":
        return _guard(fleet, args)
    elif command == "ls":
        # Waits (a few seconds at most) for the lock only when something needs recovering: an
        # exit hook that holds it for a moment must not leave a crashed operation half-shown.
        if _with_hosts(fleet):  # the hosts are asked while this machine's agents are read
            from concurrent.futures import ThreadPoolExecutor

            from cockpit.core import hosts
            with ThreadPoolExecutor(max_workers=1) as pool:
                asked = pool.submit(hosts.all_agents, fleet, [])
                agents = fleet.agents(ownership=True, wait=LS_LOCK_WAIT_S)
                remote, warnings = asked.result()
            from cockpit.cli_check import across
            agents = across(fleet, [*agents, *remote])
            for warning in warnings:
                print(f"cockpit: {warning}", file=sys.stderr)
        else:
            agents = fleet.agents(ownership=True, wait=LS_LOCK_WAIT_S)
        if args.json:
            print(json.dumps([a.to_json() for a in agents], indent=2))
        else:
            _print_table(agents)
    elif command == "pause":
        fleet.pause(args.name)
        print(f"paused {args.name}")
    elif command == "resume":
        fleet.resume(args.name)
        print(f"resumed {args.name}")
    elif command == "down":
        remote = 0
        if fleet.config.hosts:
            from cockpit import cli_hosts
            remote = cli_hosts.fleet_on_hosts(fleet, ["down"])
        since = _log_end(fleet)
        stopped = fleet.down()
        _warn_from_events(fleet, since)
        for name in stopped:
            print(f"killed {name}")
        print(f"{len(stopped)} agent(s) stopped; worktrees, branches and logs kept" if stopped
              else "no agent was running")
        print(f"the fleet's tmux server is stopped ({fleet.tmux.socket} removed)")
        return remote
    elif command == "kill":
        since = _log_end(fleet)
        fleet.kill(args.name)
        print(f"killed {args.name} (worktree, branch and log kept)")
        _warn_from_events(fleet, since)
    elif command == "fail":
        fleet.mark_failed(args.name)
        agent = fleet.agent(args.name)
        print(f"marked {args.name} failed ({agent.failures}/{agent.max_failures}); state: {agent.state}")
    elif command == "discard":
        if not args.yes:  # (the preview is for the question; --yes asks none)
            preview = fleet.discard_preview(args.name)
            question = (f"Discard agent {args.name}? {len(preview.uncommitted)} uncommitted file(s), "
                        f"{preview.ahead} commit(s) ahead of base; all archived at {preview.archive_ref}.")
            if not preview.worktree_exists:
                question = (f"Discard agent {args.name}? Its worktree is missing; its branch is archived at "
                            f"{preview.archive_ref}.")
            if not _confirm(question):
                print("not discarded")
                return 1
        since = _log_end(fleet)
        ref = fleet.discard(args.name)
        print(f"discarded {args.name}; archived at {ref} (undo: cockpit restore {args.name})" if ref
              else f"discarded {args.name}; nothing to archive")
        _warn_from_events(fleet, since)
    elif command == "restore":
        since = _log_end(fleet)
        agent = fleet.restore(args.name, args.archive)
        print(f"restored {agent.name} at {agent.worktree} on branch {agent.branch} "
              f"(run it again: cockpit respawn {agent.name} --keep)")
        _print_environment(agent)
        _warn_from_events(fleet, since)
    elif command == "archives":
        refs = fleet.archives(args.name)
        if not refs and args.name not in fleet.history().records:
            raise NotFound(f"no agent named {args.name!r} and no archives of it (see 'cockpit ls')")
        if not refs:
            print(f"no archives of {args.name}")
        for ref, sha in refs:
            print(f"{ref}  {sha[:12]}")
    elif command == "respawn":
        if args.setup and not args.keep:
            raise UsageError("--setup goes with --keep (a respawn without --keep sets a new worktree up anyway)")
        if args.fresh and not args.keep:
            raise UsageError("--fresh goes with --keep (a respawn without --keep always starts a new conversation)")
        since = _log_end(fleet)
        agent = fleet.respawn(args.name, keep=args.keep, task=args.task, force=args.force, command=args.command,
                              setup=args.setup, fresh=args.fresh)
        print(f"respawned {agent.name}: attempt {agent.attempt}, branch {agent.branch}")
        resumed = fleet.history().records[agent.name].resumed_session
        if resumed:
            print(f"  resumed its conversation {resumed} (--fresh starts a new one)")
        _warn_from_events(fleet, since)
    elif command == "logs":
        return _logs(fleet, args)
    elif command == "wait":
        from cockpit.core.wait import wait_for
        wait_for(fleet, args.name, args.target, args.timeout)
    elif command == "attach":
        return _attach(fleet, args.name)
    return 0


def _with_hosts(fleet: Fleet) -> bool:
    """Whether cockpit.toml configures hosts. One that cannot be read is said on stderr, and
    ``ls`` lists what runs here: a typo made while agents run must not hide them."""
    from cockpit.core.errors import ConfigError
    try:
        return bool(fleet.config.hosts)
    except ConfigError as exc:
        from cockpit.core.hosts import RegistryDamaged, remote_agents
        try:
            elsewhere = len(remote_agents(fleet))
        except RegistryDamaged:
            elsewhere = 0  # (the agents on hosts are not listed either way)
        print(f"cockpit: warning: {one_line(exc)} (listing the agents here"
              + (f"; {elsewhere} on hosts are not listed without it)" if elsewhere else ")"), file=sys.stderr)
        return False


def _attach(fleet, name: str) -> int:
    """Attach this terminal; inside the user's own tmux, in a popup of it (see Tmux.attach_plan)."""
    plan = fleet.attach_plan(name, os.environ)
    if plan.note:
        print(f"cockpit: {plan.note}", file=sys.stderr)
    if plan.popup:
        import subprocess
        code = subprocess.call(plan.argv, env=plan.env)
        if code:
            raise CockpitError(f"attach ended with exit status {code}")
        return 0
    os.execvpe(plan.argv[0], plan.argv, plan.env)
    return 0  # not reached


def _guard(fleet, args: argparse.Namespace) -> int:
    from cockpit.core.guard import decide, deny_response
    from cockpit.core.spec import validate_name
    if args.agent:
        validate_name(args.agent)
    try:
        payload = json.loads(sys.stdin.read() or "{}")
    except ValueError:
        raise CockpitError("guard: stdin is not the hook's JSON") from None
    if not isinstance(payload, dict):
        raise CockpitError("guard: stdin is not a JSON object")
    reason = decide(fleet, payload, args.agent)
    if reason:
        print(json.dumps(deny_response(reason)))
        fleet.events.append("guard.denied", args.agent, reason=reason, tool=payload.get("tool_name"))
    return 0


def _logs(fleet, args: argparse.Namespace) -> int:
    from cockpit.core import session_log
    from cockpit.core.spec import validate_name
    validate_name(args.name)
    if args.name not in {a.name for a in fleet.agents(observe=False)}:
        path = fleet.layout.session_log(args.name)
        if not path.exists():
            raise CockpitError(f"no agent named {args.name!r} (see 'cockpit ls')")
    path = fleet.layout.session_log(args.name)
    if path.is_symlink():
        raise CockpitError(f"{path} is a symlink to {os.readlink(path)}: refusing to follow it "
                           "(cockpit writes session.log itself; something replaced it)")
    out = sys.stdout.buffer
    if not args.follow:
        out.write(session_log.last_lines(path, args.lines))
        out.flush()
        return 0
    stop = threading.Event()
    try:
        for chunk in session_log.follow(path, lines=args.lines, stop=stop):
            out.write(chunk)
            out.flush()
    except KeyboardInterrupt:
        stop.set()
    return 0


class UsageError(CockpitError):
    """Options that do not go together: one line, exit status 2 (argparse's own usage errors print
    the usage block as well; these are found after parsing, where one line says it all)."""


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except UsageError as exc:
        print(f"cockpit: {one_line(exc)}", file=sys.stderr)
        return 2
    except CockpitError as exc:
        print(f"cockpit: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cockpit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line for the user, the traceback on request
        if os.environ.get("COCKPIT_DEBUG") == "1":
            raise
        print(f"cockpit: internal error: {one_line(exc)} (COCKPIT_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
