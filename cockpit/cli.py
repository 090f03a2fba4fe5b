"""The ``cockpit`` command: parses arguments, calls the engine, prints. No logic of its own.

Exit status: 0 success; 1 refused or failed (one line on stderr, no traceback unless
``COCKPIT_DEBUG=1``); 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from cockpit import __version__
from cockpit.core.agent import short_count
from cockpit.core.checklist import Checklist, ChecklistFailed
from cockpit.core.errors import CockpitError, NotFound, one_line

LS_LOCK_WAIT_S = 5.0
"""How long ``cockpit ls`` waits for the repository lock when an exit must be recorded or an
interrupted operation finished (another process holding the lock is still busy with it)."""

EPILOG = """\
Run 'cockpit' with no command inside a repository to open the cockpit on its agents.
Configuration: cockpit.toml at the repository root ('cockpit init' writes a starter file).
Everything cockpit writes lives under <repo>/.cockpit/; archives under refs/cockpit/archive/.
"""


def _count(text: str) -> int:
    """argparse type: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more (got {text!r})")
    return value


def _seconds(text: str) -> float:
    """argparse type: a finite number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more (got {text!r})")
    return value


def _directory(text: str) -> str:
    """argparse type: an existing directory (``-C /typo`` must not run in the current one)."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {text!r}")
    return text


def _glob(text: str) -> str:
    """argparse type: a scope glob, which cannot be empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("a scope glob cannot be empty")
    return text


def _ref(text: str) -> str:
    """argparse type: a git ref, which cannot be empty (an empty --base would mean the default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("a ref cannot be empty")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cockpit", description="Run several coding agents in parallel on one repository, "
        "each in its own git worktree, branch, tmux session and session.log.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cockpit {__version__}")
    parser.add_argument("-C", dest="directory", metavar="DIR", type=_directory, help="run as if started in DIR")
    parser.add_argument("--theme", help="TUI theme name (see themes/)")
    parser.add_argument("--no-mouse", action="store_true", help="leave mouse selection to the terminal")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help)

    add("init", "write a commented starter cockpit.toml (never overwrites one)")

    p = add("spawn", "start one agent: branch + worktree + tmux session + session.log")
    p.add_argument("name")
    p.add_argument("--command", help="shell command to run in the worktree (default: from cockpit.toml)")
    p.add_argument("--task", help="task text, exported to the agent as COCKPIT_TASK")
    p.add_argument("--scope", action="append", metavar="GLOB", type=_glob, help="files the agent owns (repeatable)")
    p.add_argument("--base", metavar="BRANCH", type=_ref,
                   help="the branch to cut from and merge into (default: [cockpit] base or the current branch)")

    p = add("up", "start every configured agent (or those named), dependencies first: spawn new ones, restart "
                  "killed ones in their worktree; the others are left as they are, saying why")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--no-tui", action="store_true", help="do not open the cockpit afterwards")

    p = add("ls", "list agents")
    p.add_argument("--json", action="store_true", help="a JSON array, one object per agent")

    for name, help in (("pause", "freeze every process of an agent in place"),
                       ("resume", "thaw a paused agent"),
                       ("kill", "end an agent's processes and session; keep worktree, branch and log"),
                       ("fail", "mark an agent failed (counts towards max_failures)"),
                       ("attach", "attach this terminal to the agent's tmux session (detach: C-b d; "
                                  "inside your own tmux it opens in a popup)")):
        add(name, help).add_argument("name")

    add("down", "stop the whole fleet: every agent, the watcher and the fleet's tmux server (worktrees, "
                "branches and logs are kept; 'cockpit up' or 'cockpit respawn NAME --keep' restarts)")

    p = add("discard", "archive an agent's work, then remove its session, worktree and branch")
    p.add_argument("name")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    p = add("restore", "recreate a discarded agent's worktree and branch from its archive")
    p.add_argument("name")
    p.add_argument("--archive", metavar="REF", help="archive ref or number (default: the newest)")

    p = add("archives", "list an agent's archives (refs/cockpit/archive/NAME/N)")
    p.add_argument("name")

    p = add("respawn", "start the next attempt: fresh branch from base (default) or --keep the worktree")
    p.add_argument("name")
    p.add_argument("--keep", action="store_true", help="restart the process in the same worktree and branch "
                   "(a claude-code agent continues its conversation: claude --resume)")
    p.add_argument("--fresh", action="store_true", help="with --keep: start a new conversation, the task given "
                   "again, instead of resuming the last one")
    p.add_argument("--task", help="a new task text (a replan: allowed for a halted agent)")
    p.add_argument("--command", help="a new command (a replan: allowed for a halted agent)")
    p.add_argument("--force", action="store_true", help="respawn a halted agent without a replan")
    p.add_argument("--setup", action="store_true",
                   help="with --keep: set the worktree up again (copy missing included files, run [worktree] setup)")

    p = add("check", "report files changed outside an agent's scope, files two agents changed, and merge conflicts "
                     "predicted between agents or with base (exit 1 if any)")
    p.add_argument("--agent", metavar="NAME", help="only this agent's findings")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("guard", "PreToolUse hook for Claude Code: deny edits outside the agent's worktree or scope "
                     "(reads the hook's JSON on stdin)")
    p.add_argument("--agent", metavar="NAME", help="the agent (default: from the hook's cwd)")

    p = add("logs", "print or follow an agent's session.log")
    p.add_argument("name")
    p.add_argument("-n", "--lines", type=_count, default=50, metavar="N", help="last N lines (default 50)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output (Ctrl-C to stop)")

    p = add("wait", "wait until an agent is waiting for input, idle or has exited (exit 1 on timeout)")
    p.add_argument("name")
    p.add_argument("--for", dest="target", required=True, choices=("waiting", "idle", "exited"),
                   help="waiting: reading its terminal or showing a prompt; idle: silent for idle_after "
                   "(stalled counts); exited: its process ended (exited, failed, killed or halted)")
    p.add_argument("--timeout", type=_seconds, metavar="S", help="give up after S seconds (default: never)")

    from cockpit import cli_merge
    cli_merge.add_parsers(add)  # diff, merge, queue

    sub.add_parser("_observe").add_argument("--agent")  # internal: exit hooks (not in help)
    sub.add_parser("_watch").add_argument("--offset", type=_count, default=0)  # internal: the watcher
    p = add("demo", "create a throw-away repository with four scripted agents and open the cockpit")
    p.add_argument("--dir", metavar="DIR", help="where to create it (default: a new temp directory)")
    p.add_argument("--no-tui", action="store_true", help="print 'cockpit ls' instead of opening the cockpit")
    return parser


def _fleet(args: argparse.Namespace):
    from cockpit.core.fleet import Fleet
    return Fleet.discover(Path(args.directory) if args.directory else None)


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
    from cockpit.core.ports import describe
    if not agents:
        print("no agents (start some with 'cockpit up' or 'cockpit spawn NAME --command CMD')")
        return
    with_ports = any(a.ports for a in agents)
    costs = any(a.usage for a in agents)
    rows = [("NAME", "STATE", "ACTIVITY", "TRY", "BRANCH", *(("PORTS",) if with_ports else ()), "OUTPUT", "FLAGS",
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
        rows.append((a.name, state, a.doing(40) or "-", a.tries, a.branch or "-", *ports,
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
    args = _parser().parse_args(argv)
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
        from cockpit.core.spec import STARTER
        root = worktrees.repo_root(Path(args.directory or Path.cwd()))
        path = root / "cockpit.toml"
        if path.exists():
            raise CockpitError(f"{path} already exists: not overwriting it")
        path.write_text(STARTER)
        print(f"wrote {path}: edit the [[agent]] entries, then run 'cockpit up'")
        return 0

    fleet = _fleet(args)
    if command == "_observe":  # run when an agent exits (its wrapper, tmux's pane-died hook)
        if args.agent:
            fleet.observe_exit(args.agent)
        else:
            fleet.agents(wait=30)
        return 0
    if command == "_watch":  # the watcher, in the fleet's tmux server (cockpit.core.watcher)
        from cockpit.core import watcher
        return watcher.main(fleet, args.offset)
    if command is None:
        return _open_tui(args, fleet)
    from cockpit import cli_merge
    if command in cli_merge.COMMANDS:
        return cli_merge.run(command, fleet, args)
    if command == "spawn":
        since = _log_end(fleet)
        agent = fleet.spawn(args.name, command=args.command, task=args.task, scope=args.scope, base=args.base)
        print("\n".join(Checklist(n=1).lines()))  # (a spawn is a batch of one)
        print(f"spawned {agent.name}: branch {agent.branch}, worktree {agent.worktree}")
        print(f"  log: {agent.log}   attach: cockpit attach {agent.name}")
        _print_environment(agent)
        _warn_from_events(fleet, since)
    elif command == "up":
        try:
            checklist, outcomes = fleet.up(args.names or None)
        except ChecklistFailed as exc:
            for line in exc.checklist.lines():
                print(line, file=sys.stderr)
            return 1
        if checklist.n:
            print("\n".join(checklist.lines()))
        for step in outcomes:
            print(step.describe(), file=sys.stderr if step.action == "error" else sys.stdout)
        failed = any(step.action == "error" for step in outcomes)
        if not args.no_tui:
            status = _open_tui(args, fleet, checklist.lines() if checklist.n else None)
            return status or int(failed)
        return int(failed)
    elif command == "check":
        return _check(fleet, args)
    elif command == "guard":
        return _guard(fleet, args)
    elif command == "ls":
        # Waits (a few seconds at most) for the lock only when something needs recovering: an
        # exit hook that holds it for a moment must not leave a crashed operation half-shown.
        fleet.ownership_tracker.paths_only = True  # (ls shows no line counts: fewer git calls)
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
        since = _log_end(fleet)
        stopped = fleet.down()
        _warn_from_events(fleet, since)
        for name in stopped:
            print(f"killed {name}")
        print(f"{len(stopped)} agent(s) stopped; worktrees, branches and logs kept" if stopped
              else "no agent was running")
        print(f"the fleet's tmux server is stopped ({fleet.tmux.socket} removed)")
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


def _check(fleet, args: argparse.Namespace) -> int:
    from cockpit.core import radar
    if args.agent:
        from cockpit.core.spec import validate_name
        validate_name(args.agent)
    agents = fleet.agents(ownership=True)
    if args.agent and args.agent not in {a.name for a in agents}:
        raise CockpitError(f"no agent named {args.agent!r} (see 'cockpit ls')")
    chosen = [a for a in agents if not args.agent or a.name == args.agent]
    findings = [a for a in chosen if a.out_of_scope or a.collisions or a.conflicts]
    if args.json:
        print(json.dumps([{"name": a.name, "out_of_scope": a.out_of_scope, "collisions": a.collisions,
                           "conflicts": a.conflicts} for a in chosen], indent=2))
    else:
        for a in findings:
            for path in a.out_of_scope or []:
                print(f"{a.name}: out of scope: {path} (scope: {', '.join(a.scope) or '-'})")
            for collision in a.collisions or []:
                print(f"{a.name}: collision: {collision['path']} also changed by {', '.join(collision['agents'])}")
            for conflict in a.conflicts or []:
                print(f"{a.name}: {describe_conflict(conflict, a.base)}")
        if not findings:
            print(f"ok: {len(chosen)} agent(s), no out-of-scope edits, no collisions, no predicted conflicts")
    unknown = [a.name for a in chosen
               if a.conflicts is None and a.worktree is not None and a.state not in ("merged", "missing")]
    if unknown:
        why = radar.unsupported_reason(radar.read(fleet)) or (
            "not predicted yet (the watcher predicts while agents run; the merge queue after each landing)")
        print(f"cockpit: merge conflicts of {', '.join(unknown)}: unknown: {why}", file=sys.stderr)
    if findings:
        print(f"cockpit: {len(findings)} agent(s) with out-of-scope edits, collisions or predicted conflicts",
              file=sys.stderr)
    return 1 if findings else 0


def describe_conflict(conflict: dict, base: str) -> str:
    """``conflict with api: src/auth.py (lines 3-5)``: one predicted conflict of an agent."""
    other = f"base {base}" if conflict.get("with") == ":base" else str(conflict.get("with"))
    lines = conflict.get("lines") or {}
    paths = []
    for path in conflict.get("paths") or []:
        ranges = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in lines.get(path) or [])
        paths.append(f"{path} (lines {ranges})" if ranges else path)
    return f"conflict with {other}: {', '.join(paths)}"


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
