"""Log-to-screen and key-press latency while the conflict radar works, against the same fleet with the radar off
(issue 17: rounds over 16 agents, 120 pairs, must "never delay keys or log rendering").

Each agent prints a timestamped line 100 times a second (as in the ``latency`` figure) and
rewrites ``shared.py`` in its worktree every second, the same path with other contents in every
agent: every snapshot changes each second and every pair conflicts, so with the radar on
(``radar_interval = 3``, the default) the watcher runs one round after another, each over all
pairs. On each fleet the TUI (headless) first measures log-to-screen latency, then, in a second app,
key-press-to-screen latency (a focus move every 0.2 s, as in the flood figure; typing holds log
rendering back by design, so the two are measured apart). The two kinds of fleet alternate (off,
on, off, on, ...), so a busy moment of the machine hits both alike. Rounds finished during a run
are counted from ``.cockpit/radar.json``.
"""

from __future__ import annotations

import json
import sys
import threading

from bench.common import bench_fleet, summary

EDITOR = """\
import pathlib, sys, time
rate, every, me = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
shared = pathlib.Path("shared.py")
n, start, edited = 0, time.time(), 0.0
while True:
    n += 1
    print(f"L {n} {time.time():.6f}", flush=True)
    now = time.time()
    if now - edited >= every:
        shared.write_text("".join(f"value_{i} = '{me} {n}'\\n" for i in range(40)))
        edited = now
    delay = start + n / rate - time.time()
    if delay > 0:
        time.sleep(delay)
"""


def bench_radar_load(agents: int, seconds: float, rounds: int) -> dict[str, object]:
    from bench.tui import _match, run_child
    latency: dict[str, list[float]] = {"off": [], "on": []}
    keys: dict[str, list[float]] = {"off": [], "on": []}
    keys_never: dict[str, int] = {"off": 0, "on": 0}
    per_run: dict[str, list[float]] = {"off": [], "on": []}
    never: dict[str, int] = {"off": 0, "on": 0}
    radar_rounds: list[int] = []
    merge_trees: list[int] = []
    for _ in range(rounds):
        for mode in ("off", "on"):
            with bench_fleet() as fleet:
                interval = 0 if mode == "off" else 3
                (fleet.root / "cockpit.toml").write_text(f"[cockpit]\nradar_interval = {interval}\n")
                editor = fleet.root.parent / "editor.py"
                editor.write_text(EDITOR)
                for i in range(agents):
                    name = f"e-{i:02d}"
                    fleet.spawn(name, command=f"{sys.executable} -u {editor} 100 1 {name}")
                finished: dict[str, int] = {}  # each round seen -> the merge-trees it ran
                stop = threading.Event()

                def count(path=fleet.layout.radar) -> None:  # type: ignore[no-untyped-def]
                    while not stop.wait(0.1):
                        try:
                            data = json.loads(path.read_text())
                            finished[f"{data['finished']}#{path.stat().st_mtime_ns}"] = int(data["merge_trees"])
                        except (OSError, ValueError, KeyError, TypeError):
                            pass
                counter = threading.Thread(target=count, daemon=True)
                counter.start()
                try:
                    child = run_child("latency", fleet, agents, seconds)  # logs alone, as the latency figure
                    typed = run_child("keys", fleet, agents, seconds / 2)  # then keys, every 0.2 s
                finally:
                    stop.set()
                    counter.join(5)
                lat, missing = _match(fleet, child["events"], child["window"])
                latency[mode] += [x * 1000 for x in lat]
                per_run[mode].append(summary([x * 1000 for x in lat], 1).get("p99", float("nan")))
                never[mode] += missing
                keys[mode] += [x * 1000 for x in typed["key_latencies"]]
                keys_never[mode] += int(typed["keys_never_painted"])
                if mode == "on":
                    radar_rounds.append(len(finished))
                    merge_trees.append(sum(finished.values()))
    return {"agents": agents, "seconds": seconds, "rounds": rounds,
            "latency_ms": {mode: summary(values, 1) for mode, values in latency.items()},
            "p99_per_run_ms": per_run, "never_shown": never, "radar_rounds_per_run": radar_rounds,
            "merge_trees_per_run": merge_trees,
            "key_latency_ms": {mode: summary(values, 1) for mode, values in keys.items()},
            "keys_never_painted": keys_never}


def radar_load_rows(r: dict) -> list[str]:
    off, on = r["latency_ms"]["off"], r["latency_ms"]["on"]

    def fig(s: dict) -> str:
        return f"p50 {s.get('p50')} ms, p99 {s.get('p99')}, max {s.get('max')}"
    ok = on.get("p50", 1e9) <= 30 and on.get("p99", 1e9) <= 100
    kon, koff = r["key_latency_ms"]["on"], r["key_latency_ms"]["off"]
    keys_ok = kon.get("p99", 1e9) <= 100
    return [f"| log-to-screen latency, {r['agents']} agents × 100 lines/s each rewriting a shared file every second, "
            f"the conflict radar working ({', '.join(str(n) for n in r['radar_rounds_per_run'])} rounds and "
            f"{', '.join(str(n) for n in r['merge_trees_per_run'])} merge-trees finished per fleet, over its two "
            f"measurements) "
            f"vs the radar off, {r['rounds']} runs each | on: {fig(on)} (p99 per run "
            f"{', '.join(str(x) for x in r['p99_per_run_ms']['on'])}; {r['never_shown']['on']} never shown); off: "
            f"{fig(off)} (p99 per run {', '.join(str(x) for x in r['p99_per_run_ms']['off'])}) | p50 ≤ 30 ms, "
            f"p99 ≤ 100 ms with the radar on | {'met' if ok else '**missed**'} |",
            f"| key press to screen on the same fleets, {r['seconds'] / 2:g} s per run after the log window (a focus "
            f"move every 0.2 s) | on: {fig(kon)} ({kon.get('n')} keys, "
            f"{r['keys_never_painted']['on']} never painted); off: {fig(koff)} ({koff.get('n')} keys) | p99 ≤ 100 ms "
            f"with the radar on | {'met' if keys_ok else '**missed**'} |"]
