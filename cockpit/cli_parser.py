"""The ``cockpit`` command line's grammar: every command, its options and their types (values are
checked here, so a bad number or directory is a usage error before anything runs)."""

from __future__ import annotations

import argparse
import functools
import math
from pathlib import Path

from cockpit import __version__

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


@functools.cache
def parser() -> argparse.ArgumentParser:
    """The parser of ``cockpit``'s arguments (the subcommands of cli_merge and cli_hosts included).
    Built once per process: a kept session on a host (``cockpit _remote`` serve) parses a command
    line per key, and building this parser was ~8 of its ~19 ms (parsing does not change it)."""
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
    p.add_argument("--host", metavar="H", help="run it on [[host]] H over ssh (default: as configured, else here)")

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

    from cockpit import cli_hosts
    cli_hosts.add_parsers(add)  # hosts [install H]

    sub.add_parser("_remote")  # internal: a request of another machine's cockpit, JSON on stdin
    sub.add_parser("_observe").add_argument("--agent")  # internal: exit hooks (not in help)
    sub.add_parser("_watch").add_argument("--offset", type=_count, default=0)  # internal: the watcher
    p = add("demo", "create a throw-away repository with four scripted agents and open the cockpit")
    p.add_argument("--dir", metavar="DIR", help="where to create it (default: a new temp directory)")
    p.add_argument("--no-tui", action="store_true", help="print 'cockpit ls' instead of opening the cockpit")
    return parser
