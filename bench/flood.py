"""Log flood: ``n`` agents write as fast as they can for ``seconds``; no byte may be missing
from any session.log, and keys must still reach the screen (p99 ≤ 100 ms) meanwhile.

Each agent runs :data:`WRITER`: it prints ``flood ready``, waits for the go file (created by
the TUI child once its first full frame is up), then writes ``F <seq> <padding>`` lines in
batches of :data:`BATCH` per ``write(2)`` for ``seconds``, and finally records how many lines
and bytes it wrote in ``<tmp>/flood-<agent>.count`` (outside the worktree) and sleeps, so no exit
noise follows. The pane's tty turns each ``\\n`` into ``\\r\\n`` on its way to tmux, so the log is
parsed line by line with an optional ``\\r``; other lines (``flood ready``) are skipped.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

from bench.common import bench_fleet, summary
from bench.tui import run_child
from devsupport.polling import wait_until

PAD = b"x" * 80
BATCH = 64

WRITER = f"""\
import json, os, sys, time
seconds, count_file, go_file = float(sys.argv[1]), sys.argv[2], sys.argv[3]
print("flood ready", flush=True)
deadline = time.monotonic() + 600
while not os.path.exists(go_file):
    if time.monotonic() > deadline:
        sys.exit("no go file")
    time.sleep(0.005)
pad = {PAD!r}
n = total = 0
start = time.monotonic()
while time.monotonic() - start < seconds:
    chunk = b"".join(b"F %d %s\\n" % (n + i, pad) for i in range(1, {BATCH} + 1))
    n += {BATCH}
    view = memoryview(chunk)
    while view:
        view = view[os.write(1, view):]
    total += len(chunk)
elapsed = time.monotonic() - start
with open(count_file + ".tmp", "w") as handle:
    json.dump({{"lines": n, "bytes": total, "seconds": elapsed}}, handle)
os.replace(count_file + ".tmp", count_file)
time.sleep(3600)
"""


def check_log(data: bytes, lines: int, written: int) -> dict[str, int]:
    """Compare a session.log with what its writer says it wrote: ``F 1 ..`` to ``F <lines> ..``,
    each exactly once and in order. ``missing_bytes`` counts the writer's bytes (``\\n`` line
    ends) not found intact in the log."""
    expected = 1
    missing = corrupt = repeated = found_bytes = 0
    for raw in data.split(b"\n"):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line.startswith(b"F "):
            continue
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[1].isdigit() or parts[2] != PAD:
            corrupt += 1
            continue
        seq = int(parts[1])
        if seq < expected or seq > lines:
            repeated += 1
            continue
        missing += seq - expected
        expected = seq + 1
        found_bytes += len(line) + 1
    missing += lines - (expected - 1)
    return {"missing_lines": missing, "missing_bytes": written - found_bytes, "corrupt_lines": corrupt,
            "out_of_order_lines": repeated}


def _tail_has(path: Path, last: bytes) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - 4096))
        return last in handle.read()


def bench_flood(agents: int, seconds: float, baseline: float = 2.0, rounds: int = 1,
                settle_timeout: float = 60.0) -> dict[str, object]:
    """The flood figure: no byte missing, key latency during the flood (and for ``baseline``
    seconds before it, on the same quiet agents), cockpit's CPU. ``rounds`` floods, each on a
    fresh fleet: the key latencies of all rounds are pooled (one 10 s flood gives ~50 keys, so
    its p99 is its worst key or two), and each round's p99 is reported as the spread."""
    if agents < 2:
        raise ValueError("the flood needs at least 2 agents (focus moves between two tiles)")
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    runs = [_flood_round(agents, seconds, baseline, settle_timeout) for _ in range(rounds)]
    children = [child for child, _, _, _ in runs]
    per_agent = {f"{i}/{name}" if rounds > 1 else name: a for i, (_, agents_, _, _) in enumerate(runs)
                 for name, a in agents_.items()}
    total_bytes = sum(a["bytes"] for a in per_agent.values())
    writer_s = sum(w for _, _, w, _ in runs)
    settles = [s for _, _, _, s in runs]
    return {
        "agents": agents, "seconds": seconds, "rounds": rounds,
        "missing_lines": sum(a["missing_lines"] for a in per_agent.values()),
        "missing_bytes": sum(a["missing_bytes"] for a in per_agent.values()),
        "corrupt_lines": sum(a["corrupt_lines"] for a in per_agent.values()),
        "settled": all(ok for ok, _ in settles), "settle_s": round(max(t for _, t in settles), 2),
        "bytes_total": total_bytes, "mb_per_s": round(total_bytes / writer_s / 1e6, 2),
        "bytes_per_agent": summary([float(a["bytes"]) for a in per_agent.values()], 0),
        "key_latency_ms": summary([x * 1000 for c in children for x in c["latencies"]], 1),
        "key_p99_per_round_ms": [summary([x * 1000 for x in c["latencies"]], 1).get("p99") for c in children],
        "keys": sum(len(c["latencies"]) + c["never_painted"] for c in children),
        "keys_never_painted": sum(c["never_painted"] for c in children),
        "key_latency_before_flood_ms": summary([x * 1000 for c in children for x in c["baseline_latencies"]], 1),
        "key_to_focus_change_ms": summary([x * 1000 for c in children for x in c["handled"]], 1),
        "cockpit_cpu_percent": round(sum(c["cpu_percent"] for c in children) / rounds, 1),
        "other_cpu_percent": {k: round(sum(c["other_cpu_percent"].get(k, 0) for c in children) / rounds, 1)
                              for k in children[0]["other_cpu_percent"]},
        "per_agent": per_agent,
    }


def _flood_round(agents: int, seconds: float, baseline: float,
                 settle_timeout: float) -> tuple[dict, dict[str, dict], float, tuple[bool, float]]:
    """One flood on a fresh fleet: (the TUI child's result, the per-agent log check, the
    writers' longest run in seconds, (settled, settle seconds))."""
    with bench_fleet() as fleet:
        tmp = fleet.root.parent
        writer = tmp / "flood_writer.py"
        writer.write_text(WRITER)
        go = tmp / "flood-go"
        names = [f"f-{i:02d}" for i in range(agents)]
        for name in names:
            argv = [sys.executable, "-u", str(writer), str(seconds), str(tmp / f"flood-{name}.count"), str(go)]
            fleet.spawn(name, command=shlex.join(argv))
        for name in names:
            log = fleet.layout.session_log(name)
            wait_until(lambda: log.exists() and b"flood ready" in log.read_bytes(), 30, message=f"{name} ready")
        child = run_child("flood", fleet, agents, seconds, go, baseline, timeout=seconds + baseline + 180)
        counts = {}
        for name in names:
            path = tmp / f"flood-{name}.count"
            wait_until(path.exists, 60, message=f"{path}")
            counts[name] = json.loads(path.read_text())
        # every writer is done; tmux and its `cat` may still be draining: wait for each last line
        settle_started = time.monotonic()
        pending = {n: b"F %d %s" % (counts[n]["lines"], PAD) for n in names}

        def drained() -> bool:
            for n in [n for n, last in pending.items() if _tail_has(fleet.layout.session_log(n), last)]:
                del pending[n]
            return not pending

        settled = True
        try:
            wait_until(drained, settle_timeout, interval=0.05, message="the last flood line in every log")
        except TimeoutError:
            settled = False
        settle_s = time.monotonic() - settle_started
        per_agent = {}
        for name in names:
            c = counts[name]
            data = fleet.layout.session_log(name).read_bytes()
            per_agent[name] = {"lines": c["lines"], "bytes": c["bytes"], "log_bytes": len(data),
                               **check_log(data, c["lines"], c["bytes"])}
    return child, per_agent, max(c["seconds"] for c in counts.values()), (settled, settle_s)
