"""Spawn and discard overhead: cockpit's engine against the same git and tmux steps by hand.

Both sides run in this process against the same repository and the same (already running)
private tmux server, alternating which goes first. cockpit's side is the engine API
(:meth:`Fleet.spawn` / :meth:`Fleet.discard`), the code the ``cockpit spawn`` / ``cockpit
discard --yes`` commands run after parsing arguments (Python start-up, ~0.1-0.2 s, is not
counted on either side). The hand-made side is ``git worktree add -b`` + ``tmux new-session``
+ ``pipe-pane`` and ``git worktree remove --force`` + ``git branch -D`` + ``tmux kill-session``.

A second comparison times the real commands (``python -m cockpit``: interpreter start-up and
imports included): ``cockpit spawn NAME --command CMD`` against the same hand-made spawn, then
``cockpit discard NAME --yes`` (its archive included) against the hand-made discard, alternating.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import bench_fleet, cockpit_cli, stdlib_floor, summary
from cockpit.core import archive as archiving
from cockpit.core.fleet import Fleet
from cockpit.core.server import ensure_private_dir

COMMAND = "sleep 3600"


def _run(*argv: str, cwd: Path | None = None) -> None:
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True, stdin=subprocess.DEVNULL)


def manual_spawn(root: Path, socket: str, name: str, base: str) -> None:
    """What cockpit's spawn does, minimally, by hand."""
    path = root.parent / "manual" / name
    _run("git", "-C", str(root), "worktree", "add", "--quiet", "-b", f"manual/{name}", str(path), base)
    tmux = ["tmux", "-S", socket, "-f", "/dev/null"]
    _run(*tmux, "new-session", "-d", "-s", name, "-c", str(path), "-x", "200", "-y", "50", COMMAND)
    log = root.parent / "manual" / f"{name}.log"
    _run(*tmux, "pipe-pane", "-t", f"={name}:", f"cat >> {shlex.quote(str(log))}")


def manual_discard(root: Path, socket: str, name: str) -> None:
    """What cockpit's discard does, minus the archive, by hand."""
    path = root.parent / "manual" / name
    _run("git", "-C", str(root), "worktree", "remove", "--force", str(path))
    _run("git", "-C", str(root), "branch", "-D", f"manual/{name}")
    _run("tmux", "-S", socket, "kill-session", "-t", f"={name}")


def cli_spawn(root: Path, socket: str, name: str) -> None:
    """``cockpit spawn NAME --command COMMAND``, as a user types it."""
    result = cockpit_cli(root, socket, "spawn", name, "--command", COMMAND)
    if result.returncode != 0:
        raise RuntimeError(f"cockpit spawn {name}: exit {result.returncode}: {result.stderr.strip()[-500:]}")


def cli_discard(root: Path, socket: str, name: str) -> None:
    """``cockpit discard NAME --yes``, as a user types it (the archive included)."""
    result = cockpit_cli(root, socket, "discard", name, "--yes")
    if result.returncode != 0:
        raise RuntimeError(f"cockpit discard {name}: exit {result.returncode}: {result.stderr.strip()[-500:]}")


@contextmanager
def _timed_archive(sink: list[float]) -> Iterator[None]:
    """Record how long each archive takes (:func:`cockpit.core.archive.write`, the archive's
    share of a discard) while the block runs."""
    original = archiving.write

    def write(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            sink.append(time.perf_counter() - started)

    archiving.write = write  # type: ignore[assignment]
    try:
        yield
    finally:
        archiving.write = original  # type: ignore[assignment]


def bench_spawn_discard(rounds: int) -> dict[str, object]:
    """``rounds`` alternating spawn + discard pairs; ratios are medians of per-round ratios."""
    times: dict[str, list[float]] = {k: [] for k in ("cockpit_spawn", "manual_spawn", "cockpit_discard",
                                                     "manual_discard", "archive")}
    spawn_ratios: list[float] = []
    discard_ratios: list[float] = []
    with bench_fleet() as fleet, _timed_archive(times["archive"]):
        root, socket = fleet.root, fleet.tmux.socket
        base = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        # a server that is already up, as it is for a fleet with agents, for both sides
        ensure_private_dir(Path(socket).parent)
        _run("tmux", "-S", socket, "-f", "/dev/null", "new-session", "-d", "-s", "keepalive", COMMAND)
        # one warm-up pair, not counted (imports, first git and tmux calls)
        fleet.spawn("warm", command=COMMAND)
        manual_spawn(root, socket, "warm-m", base)
        fleet.discard("warm")
        manual_discard(root, socket, "warm-m")
        times["archive"].clear()
        for i in range(rounds):
            name = f"a{i}"

            def cockpit_spawn() -> None:
                fleet.spawn(name, command=COMMAND)

            def by_hand_spawn() -> None:
                manual_spawn(root, socket, f"m{i}", base)

            pair = _alternate(i, cockpit_spawn, by_hand_spawn)
            times["cockpit_spawn"].append(pair[0])
            times["manual_spawn"].append(pair[1])
            spawn_ratios.append(pair[0] / pair[1])
            pair = _alternate(i, lambda: fleet.discard(name), lambda: manual_discard(root, socket, f"m{i}"))
            times["cockpit_discard"].append(pair[0])
            times["manual_discard"].append(pair[1])
            discard_ratios.append(pair[0] / pair[1])
        cli = _cli_rounds(fleet, base, rounds)
    # the CLI rounds archive too: times["archive"] runs longer; its first `rounds` entries pair up
    archive_share = [a / d for a, d in zip(times["archive"], times["cockpit_discard"], strict=False)]
    return {
        "rounds": rounds,
        "seconds": {k: summary(v) for k, v in times.items()},
        "spawn_ratio": summary(spawn_ratios, 3),
        "discard_ratio": summary(discard_ratios, 3),
        "discard_ratio_without_archive": summary(
            [(d - a) / m for d, a, m in zip(times["cockpit_discard"], times["archive"], times["manual_discard"],
                                            strict=False)], 3),
        "archive_share_of_discard": summary(archive_share, 3),
        "cli_spawn": cli,
    }


def _cli_rounds(fleet: Fleet, base: str, rounds: int) -> dict[str, object]:
    """``cockpit spawn`` (a new Python process) against the hand-made spawn, alternating, after
    one warm-up pair; each round's two agents are then discarded, untimed."""
    root, socket = fleet.root, fleet.tmux.socket
    cli_spawn(root, socket, "cli-warm")
    manual_spawn(root, socket, "cli-warm-m", base)
    fleet.discard("cli-warm")
    manual_discard(root, socket, "cli-warm-m")
    cli, manual, ratios, startup, stdlib = [], [], [], [], []
    discard_cli, discard_manual, discard_ratios = [], [], []
    least, least_discard = [], []
    for i in range(rounds):
        started = time.perf_counter()  # the start-up floor: interpreter, imports, argument parsing
        cockpit_cli(root, socket, "--version")
        startup.append(time.perf_counter() - started)
        stdlib.append(stdlib_floor())
        ours, theirs = _alternate(i, lambda: cli_spawn(root, socket, f"c{i}"),
                                  lambda: manual_spawn(root, socket, f"cm{i}", base))
        cli.append(ours)
        manual.append(theirs)
        ratios.append(ours / theirs)
        least.append((stdlib[-1] + theirs) / theirs)
        (fleet.layout.worktree(f"c{i}") / "work.txt").write_text("the agent's work\n")  # something to archive
        ours, theirs = _alternate(i, lambda: cli_discard(root, socket, f"c{i}"),
                                  lambda: manual_discard(root, socket, f"cm{i}"))
        discard_cli.append(ours)
        discard_manual.append(theirs)
        discard_ratios.append(ours / theirs)
        least_discard.append((stdlib[-1] + theirs) / theirs)
    # least_*: the ratio of a Python command that imported STDLIB and then did exactly the steps
    # by hand, nothing more (no archive, no event log, no lock): no Python command does better
    return {"rounds": rounds, "seconds": {"cli_spawn": summary(cli), "manual_spawn": summary(manual),
                                          "cli_version": summary(startup), "cli_discard": summary(discard_cli),
                                          "manual_discard": summary(discard_manual), "stdlib": summary(stdlib)},
            "ratio": summary(ratios, 3), "discard_ratio": summary(discard_ratios, 3),
            "least_ratio": summary(least, 3), "least_discard_ratio": summary(least_discard, 3)}


def _alternate(i: int, ours, theirs) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Time both callables, ours first on even rounds and theirs first on odd ones."""
    results: dict[str, float] = {}
    order = [("ours", ours), ("theirs", theirs)]
    if i % 2:
        order.reverse()
    for key, fn in order:
        started = time.perf_counter()
        fn()
        results[key] = time.perf_counter() - started
    return results["ours"], results["theirs"]
