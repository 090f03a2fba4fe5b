"""What a waiting cockpit costs, and what one CLI command costs against its floor.

Idle: ``n`` agents that printed one line and sleep, the TUI open on them (headless, in a child
process), the fleet's watcher running. Over the window, the CPU time (utime + stime, and the
reaped children's cutime + cstime, so every ``git`` or ``tmux`` process they started counts) of
everything cockpit runs, read from ``/proc``: the TUI process and its children, the watcher
(the pane process of the ``_watcher`` session) and its children, the fleet's tmux server
itself (with the hooks it ran), and the log pipes (``pipe-pane``'s processes: the server's
children that are no pane). The agents' own processes are shown apart and not counted.

``ls``: the real ``cockpit ls --json`` (a new Python process, in the fleet's repository)
against its floor, alternating, in the same run: ``python -c pass`` (the same interpreter)
+ one ``tmux list-panes -a`` on the fleet's server + one ``git worktree list``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import STDLIB, bench_fleet, cockpit_cli, stdlib_floor, summary
from bench.tui import spawn_quiet
from cockpit.core.fleet import Fleet

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, own + reaped children's CPU seconds) of ``pid``, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / TICKS


def _processes() -> dict[int, tuple[int, float]]:
    found: dict[int, tuple[int, float]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                found[int(entry.name)] = stat
    return found


def _subtree(root: int, table: dict[int, tuple[int, float]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, []))
    return seen


def _tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-S", socket, "-f", "/dev/null", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL).stdout


def cpu_by_part(tui_pid: int, socket: str) -> dict[str, float]:
    """CPU seconds so far of each part cockpit runs (see the module's docstring)."""
    table = _processes()
    server = int(_tmux(socket, "display-message", "-p", "#{pid}").strip() or 0)
    panes = {}
    for line in _tmux(socket, "list-panes", "-a", "-F", "#{session_name} #{pane_pid}").splitlines():
        name, _, pid = line.partition(" ")
        if pid.isdigit():
            panes[name] = int(pid)
    watcher = _subtree(panes.pop("_watcher", -1), table)
    agents: set[int] = set()
    for pid in panes.values():
        agents |= _subtree(pid, table)
    tree = _subtree(server, table)
    pipes = {pid for pid in tree if pid != server} - watcher - agents

    def total(pids: set[int]) -> float:
        return sum(table[p][1] for p in pids if p in table)

    return {"tui": total(_subtree(tui_pid, table)), "watcher": total(watcher),
            "tmux_server": total({server}), "pipes": total(pipes), "agents": total(agents)}


def bench_idle_total(counts: list[int], seconds: float, rounds: int) -> dict[str, object]:
    """For each count: ``rounds`` windows of ``seconds``, each with a fresh TUI on the same idle
    fleet; the share of one core of everything cockpit runs, per part, median and spread."""
    results: dict[str, object] = {}
    for n in counts:
        with bench_fleet() as fleet:
            spawn_quiet(fleet, n)
            settled = settle(fleet)
            shares: dict[str, list[float]] = {}
            for _ in range(rounds):
                window = _idle_window(fleet, n, seconds)
                for part, value in window.items():
                    shares.setdefault(part, []).append(value)
        results[str(n)] = {"agents": n, "seconds": seconds, "settled_after_s": round(settled, 1),
                           "percent": {part: summary(values, 2) for part, values in shares.items()}}
    return results


def settle(fleet: Fleet, timeout: float = 240.0) -> float:
    """Wait until the fleet is idle: the watcher (which runs the conflict radar's first, full
    round over the new agents) used under 1 % of a core over the last 2 s. Returns the wait."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_by_part(os.getpid(), fleet.tmux.socket)["watcher"]
        time.sleep(2.0)
        if cpu_by_part(os.getpid(), fleet.tmux.socket)["watcher"] - before < 0.02:
            break
    return time.monotonic() - started


def _idle_window(fleet: Fleet, agents: int, seconds: float) -> dict[str, float]:
    """Start the TUI (``bench.ui hold``), wait for its first full frame and 3 s more, then
    measure every part over ``seconds``."""
    ready = fleet.root.parent / f"ready-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    child = subprocess.Popen([sys.executable, "-m", "bench.ui", "hold", str(fleet.root), fleet.tmux.socket,
                              str(agents), str(seconds + 60), str(ready)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if child.poll() is not None or time.monotonic() > deadline:
                why = child.stderr.read().decode()[-2000:] if child.stderr else ""
                raise RuntimeError(f"bench.ui hold: no frame: {why}")
            time.sleep(0.1)
        time.sleep(3.0)  # start-up work settles (the first diff round, the watcher's first ticks)
        before, started = cpu_by_part(child.pid, fleet.tmux.socket), time.monotonic()
        time.sleep(seconds)
        after, wall = cpu_by_part(child.pid, fleet.tmux.socket), time.monotonic() - started
    finally:
        child.kill()
        child.wait()
    shares = {part: 100 * (after[part] - before.get(part, 0.0)) / wall for part in after}
    shares["total"] = sum(v for k, v in shares.items() if k != "agents")
    return shares


def _floor(root: Path, socket: str) -> float:
    """Run the floor; return the seconds of its ``python -c pass``."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    python = time.perf_counter() - started
    subprocess.run(["tmux", "-S", socket, "-f", "/dev/null", "list-panes", "-a"], check=True,
                   capture_output=True, stdin=subprocess.DEVNULL)
    subprocess.run(["git", "-C", str(root), "worktree", "list"], check=True, capture_output=True)
    return python


def bench_ls(counts: list[int], rounds: int) -> dict[str, object]:
    """``cockpit ls --json`` with ``n`` idle agents against its floor, alternating."""
    results: dict[str, object] = {}
    for n in counts:
        with bench_fleet() as fleet:
            spawn_quiet(fleet, n)
            root, socket = fleet.root, fleet.tmux.socket
            cockpit_cli(root, socket, "ls", "--json")  # warm-up: page cache, recovery of nothing
            ours, floor, ratios, stdlib, least = [], [], [], [], []
            for i in range(rounds):
                pair = [("stdlib", stdlib_floor())]
                for side in (("ours", "floor") if i % 2 == 0 else ("floor", "ours")):
                    started = time.perf_counter()
                    if side == "ours":
                        result = cockpit_cli(root, socket, "ls", "--json")
                        if result.returncode != 0:
                            raise RuntimeError(f"cockpit ls --json: {result.stderr.strip()[-500:]}")
                    else:
                        pair.append(("floor_python", _floor(root, socket)))
                    pair.append((side, time.perf_counter() - started))
                times = dict(pair)
                ours.append(times["ours"])
                floor.append(times["floor"])
                ratios.append(times["ours"] / times["floor"])
                stdlib.append(times["stdlib"])
                # the least ratio of a Python command that imports STDLIB, then runs the floor's git
                # and tmux processes and nothing more (the floor's own interpreter start is in both)
                least.append((times["stdlib"] + times["floor"] - times["floor_python"]) / times["floor"])
        results[str(n)] = {"agents": n, "seconds": {"ls_json": summary(ours), "floor": summary(floor),
                                                    "stdlib": summary(stdlib)},
                           "ratio": summary(ratios, 3), "least_ratio": summary(least, 3), "stdlib": list(STDLIB)}
    return results
