"""``make bench``: cockpit against raw git and tmux, and the TUI's latency, start-up, memory and
idle cost. Writes ``bench/results.json`` and prints a table. Not part of ``make test``.

    python bench/run.py            # the full run (a few minutes)
    python bench/run.py --quick    # ~1-2 minutes, fewer rounds and agents
    python bench/run.py --smoke    # seconds: one agent, one round (the harness's own test)

Every benchmark uses a throw-away repository and a private tmux socket, killed at the end.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this tree's cockpit and bench

from bench.common import STDLIB
from bench.costs import bench_idle_total, bench_ls
from bench.flood import bench_flood
from bench.hook import bench_hook
from bench.hosts import bench_hosts, hosts_rows
from bench.ops import bench_spawn_discard
from bench.radar import bench_radar
from bench.radar_load import bench_radar_load, radar_load_rows
from bench.remote import bench_remote, remote_rows
from bench.scale import bench_scale
from bench.tui import bench_big_log, bench_idle, bench_latency, bench_startup

PROFILES: dict[str, dict[str, object]] = {
    "full": {"rounds": 20, "latency_agents": [1, 8, 16, 32], "latency_s": 10.0, "startup_agents": [0, 8, 32, 64],
             "startup_rounds": 5, "big_rounds": 5, "idle_agents": 64, "idle_s": 60.0,
             "flood_agents": 16, "flood_s": 10.0, "flood_baseline_s": 2.0, "flood_rounds": 3,
             "scale_agents": 64, "ls_rounds": 5, "radar_agents": 16, "radar_rounds": 5, "hook_rounds": 50,
             "cost_idle_agents": [16, 64], "cost_idle_s": 60.0, "cost_idle_rounds": 3, "cost_ls_agents": [8, 64],
             "cost_ls_rounds": 10, "host_agents": 8, "host_rounds": 10,
             "remote_rounds": 10, "remote_keys": 10, "remote_log_rounds": 3, "remote_log_s": 10.0,
             "radar_load_agents": 16, "radar_load_s": 20.0, "radar_load_rounds": 2},
    "quick": {"rounds": 6, "latency_agents": [1, 8, 16], "latency_s": 4.0, "startup_agents": [0, 8, 32],
              "startup_rounds": 2, "big_rounds": 2, "idle_agents": 16, "idle_s": 10.0,
              "flood_agents": 8, "flood_s": 4.0, "flood_baseline_s": 1.0, "flood_rounds": 1,
              "scale_agents": 16, "ls_rounds": 3, "radar_agents": 16, "radar_rounds": 2, "hook_rounds": 20,
              "cost_idle_agents": [16], "cost_idle_s": 20.0, "cost_idle_rounds": 2, "cost_ls_agents": [8],
              "cost_ls_rounds": 5, "host_agents": 8, "host_rounds": 4,
              "remote_rounds": 4, "remote_keys": 10, "remote_log_rounds": 2, "remote_log_s": 4.0,
              "radar_load_agents": 16, "radar_load_s": 12.0, "radar_load_rounds": 1},
    "smoke": {"rounds": 1, "latency_agents": [1], "latency_s": 1.0, "startup_agents": [1],
              "startup_rounds": 1, "big_rounds": 1, "idle_agents": 1, "idle_s": 1.0,
              "flood_agents": 2, "flood_s": 1.0, "flood_baseline_s": 0.5, "flood_rounds": 1,
              "scale_agents": 2, "ls_rounds": 1, "radar_agents": 2, "radar_rounds": 1, "hook_rounds": 2,
              "cost_idle_agents": [1], "cost_idle_s": 1.0, "cost_idle_rounds": 1, "cost_ls_agents": [1],
              "cost_ls_rounds": 1, "host_agents": 1, "host_rounds": 1,
              "remote_rounds": 1, "remote_keys": 1, "remote_log_rounds": 1, "remote_log_s": 1.0,
              "radar_load_agents": 2, "radar_load_s": 1.0, "radar_load_rounds": 1},
}
FIGURES = ("spawn_discard", "latency", "startup", "big_log", "idle", "flood", "scale", "radar", "radar_load",
           "hook", "idle_total", "ls", "hosts", "remote")


def machine() -> dict[str, object]:
    import os
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release()}


def run(profile: str, only: list[str]) -> dict[str, object]:
    p = PROFILES[profile]
    results: dict[str, object] = {"profile": profile, "machine": machine(),
                                  "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    started = time.monotonic()
    steps = {
        "spawn_discard": lambda: bench_spawn_discard(int(p["rounds"])),  # type: ignore[arg-type]
        "latency": lambda: bench_latency(p["latency_agents"], float(p["latency_s"])),  # type: ignore[arg-type]
        "startup": lambda: bench_startup(p["startup_agents"], int(p["startup_rounds"])),  # type: ignore[arg-type]
        "big_log": lambda: bench_big_log(int(p["big_rounds"])),  # type: ignore[arg-type]
        "idle": lambda: bench_idle(int(p["idle_agents"]), float(p["idle_s"])),  # type: ignore[arg-type]
        "flood": lambda: bench_flood(int(p["flood_agents"]), float(p["flood_s"]),  # type: ignore[arg-type]
                                     float(p["flood_baseline_s"]), int(p["flood_rounds"])),  # type: ignore[arg-type]
        "scale": lambda: bench_scale(int(p["scale_agents"]), int(p["ls_rounds"])),  # type: ignore[arg-type]
        "radar": lambda: bench_radar(int(p["radar_agents"]), int(p["radar_rounds"])),  # type: ignore[arg-type]
        "hook": lambda: bench_hook(int(p["hook_rounds"])),  # type: ignore[arg-type]
        "radar_load": lambda: bench_radar_load(int(p["radar_load_agents"]), float(p["radar_load_s"]),  # type: ignore[arg-type]
                                               int(p["radar_load_rounds"])),  # type: ignore[arg-type]
        "hosts": lambda: ({"skipped": "not in a smoke run (it starts sshds: tests/test_hosts.py covers it)"}
                          if profile == "smoke" else
                          bench_hosts(2, int(p["host_agents"]), int(p["host_rounds"]))),  # type: ignore[arg-type]
        "remote": lambda: ({"skipped": "not in a smoke run (it starts an sshd: tests/test_hosts.py covers it)"}
                           if profile == "smoke" else
                           bench_remote(int(p["remote_rounds"]), int(p["remote_keys"]),  # type: ignore[arg-type]
                                        int(p["remote_log_rounds"]), float(p["remote_log_s"]))),  # type: ignore[arg-type]
        "idle_total": lambda: bench_idle_total(p["cost_idle_agents"], float(p["cost_idle_s"]),  # type: ignore[arg-type]
                                               int(p["cost_idle_rounds"])),  # type: ignore[arg-type]
        "ls": lambda: bench_ls(p["cost_ls_agents"], int(p["cost_ls_rounds"])),  # type: ignore[arg-type]
    }
    for name in FIGURES:
        if only and name not in only:
            continue
        step_started = time.monotonic()
        print(f"… {name}", file=sys.stderr, flush=True)
        results[name] = steps[name]()
        print(f"  {name}: {time.monotonic() - step_started:.1f}s", file=sys.stderr, flush=True)
    results["total_s"] = round(time.monotonic() - started, 1)
    return results


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _least(figure: dict, key: str, seconds: dict) -> str:
    """The least ratio any Python command could have (bench.common.STDLIB): imports, then the
    floor's own git and tmux steps, nothing else."""
    if key not in figure:
        return ""
    least = figure[key]
    return (f"; least possible for a Python command (`import {', '.join(STDLIB)}`, "
            f"{seconds['stdlib']['p50'] * 1000:.0f} ms, then the same steps): ratio {least['p50']} "
            f"(min {least['min']}, max {least['max']})")


def table(r: dict) -> str:
    """The README's Markdown table."""
    rows = ["| figure | measured (p50, spread) | target | |", "|---|---|---|---|"]
    if "spawn_discard" in r:
        s = r["spawn_discard"]
        sec = s["seconds"]
        rows.append(f"| spawn overhead (`Fleet.spawn` vs git worktree add + tmux new-session + pipe-pane) | "
                    f"ratio {s['spawn_ratio']['p50']} (p90 {s['spawn_ratio']['p90']}); "
                    f"{sec['cockpit_spawn']['p50'] * 1000:.0f} ms vs {sec['manual_spawn']['p50'] * 1000:.0f} ms "
                    f"| ≤ 1.5 | "
                    f"{verdict(s['spawn_ratio']['p50'] <= 1.5)} |")
        rows.append(f"| discard overhead (`Fleet.discard` vs worktree remove + branch -D + kill-session) | "
                    f"ratio {s['discard_ratio']['p50']} (p90 {s['discard_ratio']['p90']}), without the archive "
                    f"{s['discard_ratio_without_archive']['p50']}; {sec['cockpit_discard']['p50'] * 1000:.0f} ms vs "
                    f"{sec['manual_discard']['p50'] * 1000:.0f} ms; archive {sec['archive']['p50'] * 1000:.0f} ms = "
                    f"{s['archive_share_of_discard']['p50'] * 100:.0f}% | reported | |")
        c = s["cli_spawn"]
        cs = c["seconds"]
        rows.append(f"| whole-process `cockpit spawn NAME --command CMD` vs git worktree add + tmux new-session + "
                    f"pipe-pane by hand | ratio {c['ratio']['p50']} "
                    f"(min {c['ratio']['min']}, max {c['ratio']['max']}); "
                    f"{cs['cli_spawn']['p50'] * 1000:.0f} ms "
                    f"vs {cs['manual_spawn']['p50'] * 1000:.0f} ms; `cockpit --version` alone "
                    f"{cs['cli_version']['p50'] * 1000:.0f} ms{_least(c, 'least_ratio', cs)} | ≤ 2× | "
                    f"{verdict(c['ratio']['p50'] <= 2)} |")
        if "discard_ratio" in c:
            d = c["discard_ratio"]
            rows.append(f"| whole-process `cockpit discard NAME --yes` (archive included) vs kill-session + worktree "
                        f"remove + branch -D by hand | ratio {d['p50']} (min {d['min']}, max {d['max']}); "
                        f"{cs['cli_discard']['p50'] * 1000:.0f} ms vs {cs['manual_discard']['p50'] * 1000:.0f} ms"
                        f"{_least(c, 'least_discard_ratio', cs)} | ≤ 4× | {verdict(d['p50'] <= 4)} |")
    for n, v in r.get("latency", {}).items():
        lat = v["latency_ms"]
        target = "p50 ≤ 30 ms, p99 ≤ 100 ms" if n == "16" else "reported"
        ok = "" if n != "16" else verdict(lat.get("p50", 1e9) <= 30 and lat.get("p99", 1e9) <= 100)
        rows.append(f"| log-to-screen latency, {n} agents × 100 lines/s | p50 {lat.get('p50')} ms, "
                    f"p90 {lat.get('p90')}, "
                    f"p99 {lat.get('p99')}, max {lat.get('max')} ({v['lines']} lines, {v['never_shown']} never shown; "
                    f"cockpit CPU {v['cockpit_cpu_percent']}%) | {target} | {ok} |")
    for n, v in r.get("startup", {}).items():
        t = v["process_to_frame_s"]
        ok = verdict(t["p50"] <= 1.0) if n == "32" else ""
        rows.append(f"| startup to first full frame, {n} agents | {t['p50']} s (min {t['min']}, max {t['max']}); "
                    f"app only {v['app_to_frame_s']['p50']} s | {'≤ 1 s' if n == '32' else 'reported'} | {ok} |")
    if "big_log" in r:
        b = r["big_log"]
        paint = b["first_paint_s"]["big"]
        extra = b["extra_growth_mb"]
        rows.append(f"| big log: first paint, {b['log_bytes'] / 2**30:.0f} GiB session.log | "
                    f"{paint['p50'] * 1000:.0f} ms "
                    f"(max {paint['max'] * 1000:.0f}); 1 KiB log {b['first_paint_s']['small']['p50'] * 1000:.0f} ms | "
                    f"≤ 300 ms | {verdict(paint['p50'] <= 0.3)} |")
        rows.append(f"| big log: memory growth vs 1 KiB log (VmRSS) | {extra['p50']} MB "
                    f"(min {extra['min']}, max {extra['max']}) "
                    f"| ≤ 20 MB | {verdict(extra['p50'] <= 20)} |")
    if "idle" in r:
        i = r["idle"]
        rows.append(f"| idle cost, {i['agents']} idle agents, {i['seconds']} s | {i['cpu_percent']}% of one core, "
                    f"RSS {i['rss_mb']} MB (+{i['rss_growth_mb']} MB over the window) | reported | |")
    for n, v in r.get("idle_total", {}).items():
        pc = v["percent"]
        target = {"16": 1.0, "64": 2.0}.get(n)
        parts = ", ".join(f"{k.replace('_', ' ')} {pc[k]['p50']}" for k in ("tui", "watcher", "tmux_server", "pipes"))
        rows.append(f"| CPU of everything cockpit runs (TUI + watcher + tmux server + log pipes), {n} idle agents, "
                    f"{v['seconds']:.0f} s × {pc['total']['n']} | {pc['total']['p50']}% of one core (min "
                    f"{pc['total']['min']}, max {pc['total']['max']}; {parts}; the agents themselves "
                    f"{pc['agents']['p50']}) | {f'≤ {target:g} %' if target else 'reported'} | "
                    f"{verdict(pc['total']['p50'] <= target) if target else ''} |")
    for n, v in r.get("ls", {}).items():
        sec, ratio = v["seconds"], v["ratio"]
        if n == "64":
            target, ok = "≤ 250 ms", verdict(sec["ls_json"]["p50"] <= 0.25)
        elif n == "8":
            target, ok = "≤ 3× the floor", verdict(ratio["p50"] <= 3)
        else:
            target, ok = "reported", ""
        rows.append(f"| whole-process `cockpit ls --json`, {n} agents, vs its floor (`python -c pass` + one tmux "
                    f"list-panes + one git worktree list) | {sec['ls_json']['p50'] * 1000:.0f} ms (min "
                    f"{sec['ls_json']['min'] * 1000:.0f}, max {sec['ls_json']['max'] * 1000:.0f}) vs "
                    f"{sec['floor']['p50'] * 1000:.0f} ms: ratio {ratio['p50']} (min {ratio['min']}, max "
                    f"{ratio['max']}){_least(v, 'least_ratio', sec)} | {target} | {ok} |")
    if "flood" in r:
        rows += flood_rows(r["flood"])
    if "scale" in r:
        rows += scale_rows(r["scale"])
    if "radar" in r:
        rows += radar_rows(r["radar"])
    if "radar_load" in r:
        rows += radar_load_rows(r["radar_load"])
    if "hook" in r:
        h = r["hook"]["seconds"]
        hook_ms = h["hook"]["p50"] * 1000
        rows.append(f"| Claude Code hook recorder, whole process (`/bin/sh -c` + `python -I -S`, one PreToolUse) | "
                    f"p50 {hook_ms:.0f} ms (p90 {h['hook']['p90'] * 1000:.0f}); `python3 -c pass` "
                    f"{h['python3_pass']['p50'] * 1000:.0f} ms, `python -I -S -c pass` "
                    f"{h['python_isolated_pass']['p50'] * 1000:.0f} ms, `import cockpit.cli` "
                    f"{h['import_cockpit_cli']['p50'] * 1000:.0f} ms | p50 ≤ 60 ms | {verdict(hook_ms <= 60)} |")
    if "hosts" in r:
        rows += hosts_rows(r["hosts"])
    if "remote" in r:
        rows += remote_rows(r["remote"])
    return "\n".join(rows)


def radar_rows(r: dict) -> list[str]:
    n, counts, stepped = r["agents"], r["counts"], r["stepped_round"]

    def ms(key: str) -> str:
        s = r[key]
        return f"{s['p50'] * 1000:.0f} ms (min {s['min'] * 1000:.0f}, max {s['max'] * 1000:.0f})"

    def ran(key: str) -> str:
        return f"{counts[key]['merge_trees']} merge-tree, {counts[key]['snapshots']} snapshot(s)"

    return [
        f"| conflict radar: a full round, {n} agents ({r['pairs']} pairs + {n} against base), nothing cached | "
        f"{ms('full_round_s')}; {ran('full')}; {r['agents_with_conflicts']} agents with a predicted conflict "
        f"| reported | |",
        f"| conflict radar: an incremental round after one agent edited one file, {n} agents | "
        f"{ms('incremental_round_s')}; {ran('incremental')} | reported | |",
        f"| conflict radar: a round in which nothing changed, {n} agents | {ms('unchanged_round_s')}; "
        f"{ran('unchanged')} | reported | |",
        f"| conflict radar: the full round as the watcher runs it ({r['budget_s']} s budget per 1 s tick) | "
        f"{stepped['steps']} ticks, longest step {stepped['longest_step_s'] * 1000:.0f} ms, "
        f"{stepped['total_s'] * 1000:.0f} ms of work in all | reported | |",
    ]


def scale_rows(s: dict) -> list[str]:
    n, ls = s["agents"], s["ls_s"]
    ops = ", ".join(f"{k} {v['seconds'] * 1000:.0f}{'' if v['ok'] else ' **failed**'}" for k, v in s["ops"].items())
    failed = f"; **{len(s['failures'])} failure(s)**: {'; '.join(s['failures'])[:400]}" if s["failures"] else ""
    return [
        f"| scale: {n} agents spawned (`Fleet.spawn`, one after another) | "
        f"{s['spawn_s']['p50'] * 1000:.0f} ms per spawn (max {s['spawn_s']['max'] * 1000:.0f}); "
        f"first {s['spawn_first_s']['n']} {s['spawn_first_s']['p50'] * 1000:.0f} ms, "
        f"last {s['spawn_last_s']['n']} {s['spawn_last_s']['p50'] * 1000:.0f} ms | reported | |",
        f"| scale: `cockpit ls` / `cockpit ls --json` with {n} agents (CLI, Python start-up included) | "
        f"{ls['ls']['p50']} s (min {ls['ls']['min']}, max {ls['ls']['max']}) / {ls['ls --json']['p50']} s "
        f"(min {ls['ls --json']['min']}, max {ls['ls --json']['max']}) | reported | |",
        f"| scale: every operation on one of {n} agents, the other {n - 1} untouched | "
        f"{s['ops_ok']}/{s['ops_total']} ok "
        f"(ms: {ops}){failed} | reported | |",
    ]


def flood_rows(f: dict) -> list[str]:
    n, lat, before = f["agents"], f["key_latency_ms"], f["key_latency_before_flood_ms"]
    others = ", ".join(f"{k.replace('_', ' ')} {v}%" for k, v in f["other_cpu_percent"].items())
    lost = f["missing_bytes"] != 0 or f["missing_lines"] != 0 or f["corrupt_lines"] != 0
    key_ok = "" if n != 16 else verdict(lat.get("p99", 1e9) <= 100 and not f["keys_never_painted"])
    count = f.get("rounds", 1)
    rounds = f", {count} times" if count > 1 else ""
    per_round = (f"; p99 per flood {', '.join(str(x) for x in f['key_p99_per_round_ms'])}" if count > 1 else "")
    return [
        f"| log flood, {n} agents writing as fast as they can for {f['seconds']} s{rounds}: "
        f"bytes missing from session.log | "
        f"{f['missing_bytes']} bytes, {f['missing_lines']} lines ({f['corrupt_lines']} corrupt) of "
        f"{f['bytes_total'] / 1e6:.0f} MB; {f['mb_per_s']} MB/s in all, p50 {f['bytes_per_agent']['p50'] / 1e6:.1f} MB "
        f"per agent | no byte missing | {verdict(not lost and f['settled'])} |",
        f"| key-press-to-screen latency during the flood, {n} agents (focus move to first paint) | "
        f"p50 {lat.get('p50')} ms, p90 {lat.get('p90')}, p99 {lat.get('p99')}, max {lat.get('max')}{per_round} "
        f"({f['keys']} keys, {f['keys_never_painted']} "
        f"never painted; focus moved after p50 {f['key_to_focus_change_ms'].get('p50')} ms; before the flood "
        f"p50 {before.get('p50')}, p99 {before.get('p99')}); cockpit CPU "
        f"{f['cockpit_cpu_percent']}% of one core ({others}) | {'p99 ≤ 100 ms' if n == 16 else 'reported'} "
        f"| {key_ok} |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="fewer rounds and agents (~1-2 min)")
    group.add_argument("--smoke", action="store_true", help="one agent, one round (seconds)")
    parser.add_argument("--only", action="append", choices=FIGURES, default=[], help="run only this figure")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results.json")
    args = parser.parse_args(argv)
    profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    results = run(profile, args.only)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    m = results["machine"]
    print(f"\n{profile} run, {results['total_s']} s; {m['nproc']} cores, {m['cpu']}; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
