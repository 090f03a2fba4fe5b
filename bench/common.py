"""Shared pieces of the benchmarks: throw-away repositories, private tmux sockets, statistics,
and this process's CPU time and memory read from ``/proc/self``."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cockpit.core.fleet import Fleet

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def make_repo(parent: Path, files: int = 50) -> Path:
    """A repository with one commit of ``files`` small files on ``main``."""
    root = parent / "repo"
    (root / "src").mkdir(parents=True)
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "config", "user.name", "bench")
    git(root, "config", "user.email", "bench@example.invalid")
    (root / "README.md").write_text("bench\n")
    for i in range(files):
        (root / "src" / f"m{i:03d}.py").write_text(f"VALUE = {i}\n" * 20)
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "initial")
    return root


@contextmanager
def bench_fleet(files: int = 50) -> Iterator[Fleet]:
    """A fleet on a fresh temp repository and a private tmux socket; the tmux server is killed
    and the directory removed afterwards, whatever happens."""
    tmp = Path(tempfile.mkdtemp(prefix="cockpit-bench-"))
    os.environ.pop("TMUX", None)
    fleet = Fleet(make_repo(tmp, files))  # its own server: the socket is derived from the repository's path
    try:
        yield fleet
    finally:
        socket = fleet.tmux.socket
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True)
        Path(socket).unlink(missing_ok=True)  # kill-server leaves the socket file behind
        shutil.rmtree(tmp, ignore_errors=True)


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: list[float], digits: int = 4) -> dict[str, float | int]:
    """Median and spread of repeated measurements."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), digits),
        "p90": round(quantile(values, 0.9), digits),
        "p99": round(quantile(values, 0.99), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def rss_mb() -> float:
    """This process's resident set size (VmRSS in /proc/self/status), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of this process (or ``pid``; all threads), from /proc/PID/stat, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


PROJECT = Path(__file__).resolve().parent.parent


STDLIB = ("argparse", "dataclasses", "json", "pathlib", "subprocess", "tomllib")
"""The standard library every cockpit command is built on: its arguments, the engine's records
(dataclasses), the event log and ``--json`` (json), paths, git and tmux (subprocess), cockpit.toml
(tomllib). A Python program importing these and doing nothing else is the least a command can
cost before it runs a single git or tmux process: :func:`stdlib_floor`."""


def stdlib_floor() -> float:
    """Seconds of ``python -c "import <STDLIB>"`` (this interpreter): a new process, as a command is."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {', '.join(STDLIB)}"], check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def cockpit_cli(root: Path, socket: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real ``cockpit`` command (``python -m cockpit``, this tree's package) in ``root``,
    as a user would run it (``socket``, the fleet's, is found by cockpit itself)."""
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))}
    env.pop("TMUX", None)
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=root, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=timeout)
