"""``cockpit diff``, ``cockpit merge`` and ``cockpit queue``: parse, call the engine, print.

Kept beside :mod:`cockpit.cli` (which registers these commands through :func:`add_parsers` and
hands them to :func:`run`) so review-and-merge stays one place.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable

COMMANDS = ("diff", "merge", "queue")


def add_parsers(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = add("diff", "what an agent changed against base: committed, uncommitted and untracked")
    p.add_argument("name")
    p.add_argument("--stat", action="store_true", help="only the file list with +/- counts")

    p = add("merge", "queue agents for merging into base (in this order) and run the queue; says first which "
                     "candidates git predicts to conflict with base, and again after each landing")
    p.add_argument("names", nargs="*", metavar="NAME", help="agents to queue; none: resume the queue")
    p.add_argument("--reorder", action="store_true",
                   help="merge the candidates not predicted to conflict with base first (default: the order given)")

    p = add("queue", "list the merge queue")
    p.add_argument("--json", action="store_true",
                   help="a JSON array: position, name, host (null: this machine), state, queued_at")


def run(command: str, fleet, args: argparse.Namespace) -> int:
    if command == "diff":
        return _diff(fleet, args)
    if command == "merge":
        return _merge(fleet, args)
    return _queue(fleet, args)


def _paint(text: str, code: str, on: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if on else text


def _diff(fleet, args: argparse.Namespace) -> int:
    from cockpit.core.diff import agent_diff, to_bytes, totals
    color = sys.stdout.isatty()
    diff = agent_diff(fleet, args.name)
    out = sys.stdout.buffer
    if not args.stat:
        out.write(to_bytes(diff.patch(color=color)))
        out.flush()
        return 0
    files = diff.files()
    width = max((len(str(f.added)) for f in files if not f.binary), default=1)
    for change in files:
        if change.binary:
            counts = "bin".ljust(2 * width + 3)
        else:
            counts = (_paint(f"+{change.added}".rjust(width + 1), "32", color) + " "
                      + _paint(f"-{change.removed}".rjust(width + 1), "31", color))
        out.write(to_bytes(f"{counts}  {change.status} {change.path}\n"))
    count, added, removed = totals(files)
    out.write(f"{count} file(s) changed, {added} insertion(s)(+), {removed} deletion(s)(-) "
              f"against {diff.merge_base[:12]} (merge-base with {diff.base or 'base'})\n".encode())
    out.flush()
    return 0


def _merge(fleet, args: argparse.Namespace) -> int:
    from cockpit.core import prediction, worktrees
    from cockpit.core.queue import QueueBusy
    from cockpit.core.remote_merge import enqueue, merge_queue
    names: list[str] = list(dict.fromkeys(args.names))
    too_old = prediction.unsupported(worktrees.git_version())
    if too_old:
        print(f"cockpit: {too_old}: candidates are not checked before building"
              + ("; --reorder keeps the order given" if args.reorder else ""), file=sys.stderr)
    wanted = []
    for name, host, position, added in enqueue(fleet, names):
        wanted.append((host, name))
        label = name if host is None else f"{name}@{host}"
        print(f"{label}: {'queued' if added else 'already queued'} (position {position})", flush=True)

    def on_term(signum: int, frame: object) -> None:  # `kill` is a quit, not a crash
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        outcomes = merge_queue(fleet, report=lambda outcome: print(outcome.message, flush=True),
                               reorder=args.reorder).run()
    except QueueBusy as busy:
        print(f"{busy}: it will merge what was queued ('cockpit queue' shows progress)")
        return 1 if names else 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    states = {(o.host, o.name): o.state for o in outcomes}
    if not outcomes:
        print("the merge queue is empty")
    return 0 if all(states.get(key) == "merged" for key in wanted or states) else 1


def _queue(fleet, args: argparse.Namespace) -> int:
    from cockpit.core.queue import pending, runner_pid
    entries = pending(fleet)
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=2))
        return 0
    if not entries:
        print("the merge queue is empty")
        return 0
    remote = any(entry.host for entry in entries)  # a HOST column as 'cockpit ls' has, "-" for this machine
    for entry in entries:
        host = f"{entry.host or '-':<12} " if remote else ""
        print(f"{entry.position:>3}  {entry.name:<20} {host}{entry.state:<8} {entry.queued_at}")
    pid = runner_pid(fleet)
    print(f"being run by pid {pid}" if pid is not None else "not running: 'cockpit merge' resumes it")
    return 0
