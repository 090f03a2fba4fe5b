"""The parent side of the TUI benchmarks: set up a fleet, run ``bench.ui`` in a child process,
turn what it saw into figures."""

from __future__ import annotations

import bisect
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bench.common import bench_fleet, summary
from cockpit.core.fleet import Fleet
from devsupport.polling import wait_until

PROJECT = Path(__file__).resolve().parent.parent
LOG_LINE = re.compile(rb"L (\d+) (\d+\.\d+)")


def run_child(kind: str, fleet: Fleet, *args: object, timeout: float = 300) -> dict:
    """Run ``python -m bench.ui`` on ``fleet``; its last stdout line is JSON.

    With ``COCKPIT_BENCH_PROFILE=DIR`` set the child runs under py-spy (``pip install py-spy``),
    which writes ``DIR/<kind>-<n>.txt`` (collapsed stacks, one per child); the figures measured
    then include py-spy's overhead."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "bench.ui", kind, str(fleet.root), fleet.tmux.socket, *map(str, args)]
    profile_dir = os.environ.get("COCKPIT_BENCH_PROFILE")
    if profile_dir:
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
        out = Path(profile_dir) / f"{kind}-{args[0] if args else 0}-{int(time.time() * 1000)}.txt"
        argv = ["py-spy", "record", "--nonblocking", "-r", "200", "-f", "raw", "-o", str(out), "--", *argv]
    started = time.time()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=PROJECT)
    if result.returncode != 0:
        raise RuntimeError(f"bench.ui {kind} failed: {result.stderr[-2000:]}")
    data = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    data["started_at"] = started
    return data


def spawn_quiet(fleet: Fleet, count: int, prefix: str = "agent") -> None:
    """``count`` agents that print one line and then sleep; waits for every line in the logs."""
    for i in range(count):
        fleet.spawn(f"{prefix}-{i:02d}", command=f"echo ready {i}; sleep 3600")
    for i in range(count):
        log = fleet.layout.session_log(f"{prefix}-{i:02d}")
        wait_until(lambda: log.exists() and b"ready" in log.read_bytes(), 20, message=f"{log}")


def bench_latency(counts: list[int], seconds: float) -> dict[str, object]:
    """Write-to-paint latency with ``n`` agents each printing timestamped lines at 100 lines/s.

    A line counts as on screen at the first paint of its tile that shows it or a newer line
    (a tile shows only its newest lines, so a line may scroll past between two frames)."""
    results: dict[str, object] = {}
    for n in counts:
        with bench_fleet() as fleet:
            writer = fleet.root.parent / "writer.py"
            from bench.ui import WRITER
            writer.write_text(WRITER)
            for i in range(n):
                fleet.spawn(f"w-{i:02d}", command=f"{sys.executable} -u {writer} 100")
            child = run_child("latency", fleet, n, seconds)
            lat, missing = _match(fleet, child["events"], child["window"])
            stages = {stage: summary([x * 1000 for x in _match(fleet, events, child["window"])[0]], 1)
                      for stage, events in child.get("stages", {}).items()}
        results[str(n)] = {"agents": n, "lines": len(lat), "never_shown": missing,
                           "latency_ms": summary([x * 1000 for x in lat], 1), "off_screen_tiles": child["off_screen"],
                           "cockpit_cpu_percent": round(child["cpu_percent"], 1),
                           "stages_ms": stages, "render_batches": child["render_batches"],
                           "render_busy_s": round(child["render_busy_s"], 2)}
    return results


def _match(fleet: Fleet, events: list, window: list[float]) -> tuple[list[float], int]:
    return match_lines(events, window, {a.name: Path(a.log).read_bytes() for a in fleet.agents(observe=False)})


def match_lines(events: list, window: list[float], logs: dict[str, bytes]) -> tuple[list[float], int]:
    """Each ``L <seq> <time>`` line of ``logs`` (agent name -> its log's bytes) written within
    ``window``, matched to the first paint event (``(name, newest seq shown, time)``) of its
    agent that showed it or a newer line: the latencies, and how many lines were never shown."""
    per_agent: dict[str, tuple[list[int], list[float]]] = {}
    for name, seq, at in sorted(events, key=lambda e: e[2]):
        seqs, times = per_agent.setdefault(name, ([], []))
        seqs.append(max(seq, seqs[-1]) if seqs else seq)
        times.append(at)
    latencies: list[float] = []
    missing = 0
    for name, data in logs.items():
        seqs, times = per_agent.get(name, ([], []))
        for match in LOG_LINE.finditer(data):
            seq, written = int(match.group(1)), float(match.group(2))
            if not window[0] <= written <= window[1]:
                continue
            index = bisect.bisect_left(seqs, seq)
            if index == len(seqs):
                missing += 1
            else:
                latencies.append(times[index] - written)
    return latencies, missing


def bench_startup(counts: list[int], rounds: int) -> dict[str, object]:
    """Process start (``python -m bench.ui``, which imports cockpit and textual) to the first
    full frame, with ``n`` agents running."""
    results: dict[str, object] = {}
    for n in counts:
        with bench_fleet() as fleet:
            spawn_quiet(fleet, n)
            total, in_app = [], []
            for _ in range(rounds):
                child = run_child("paint", fleet, n)
                total.append(child["frame_at"] - child["started_at"])
                in_app.append(child["in_app_s"])
        results[str(n)] = {"agents": n, "process_to_frame_s": summary(total, 3), "app_to_frame_s": summary(in_app, 3)}
    return results


def bench_big_log(rounds: int, size: int = 1 << 30) -> dict[str, object]:
    """A tile on a ``size``-byte session.log (sparse, with 300 KiB of text at its end) against
    one on a 1 KiB log, alternating: first paint (the tile's creation, which opens the log, to
    its first painted content), and RSS growth (VmRSS) from before the app is
    built to the first paint."""
    paint = {"big": [], "small": []}
    growth = {"big": [], "small": []}
    with bench_fleet() as big, bench_fleet() as small:
        for fleet, kind in ((big, "big"), (small, "small")):
            fleet.spawn("log", command="sleep 3600")
            log = fleet.layout.session_log("log")
            wait_until(lambda: log.exists(), 10, message="session.log")
            text = b"".join(b"line %06d of a long session log %s\n" % (i, b"x" * 40) for i in range(4000))
            with open(log, "r+b") as handle:
                if kind == "big":
                    handle.truncate(size - len(text))
                    handle.seek(0, os.SEEK_END)
                    handle.write(text)
                else:
                    handle.write(text[:1024])
        for i in range(rounds):
            order = [(big, "big"), (small, "small")]
            if i % 2:
                order.reverse()
            for fleet, kind in order:
                child = run_child("paint", fleet, 1)
                paint[kind].append(child["tile_paint_s"])
                growth[kind].append(child["rss_after_mb"] - child["rss_before_mb"])
        big_size = big.layout.session_log("log").stat().st_size
    return {"log_bytes": big_size, "first_paint_s": {k: summary(v, 3) for k, v in paint.items()},
            "rss_growth_mb": {k: summary(v, 1) for k, v in growth.items()},
            "extra_growth_mb": summary([b - s for b, s in zip(growth["big"], growth["small"], strict=True)], 1),
            "memory_method": "VmRSS from /proc/self/status in the child, before make_app and at first paint"}


def bench_idle(agents: int, seconds: float) -> dict[str, object]:
    """CPU (utime+stime from /proc/self/stat) and RSS of the app open on idle agents."""
    with bench_fleet() as fleet:
        spawn_quiet(fleet, agents)
        child = run_child("idle", fleet, agents, seconds, timeout=seconds + 120)
    return {"agents": agents, "seconds": round(child["wall_s"], 1), "cpu_percent": round(child["cpu_percent"], 2),
            "rss_mb": round(child["rss_end_mb"], 1),
            "rss_growth_mb": round(child["rss_end_mb"] - child["rss_start_mb"], 1)}
