"""The conflict radar's cost: a full round over ``n`` agents (every agent snapshotted, every pair
and every agent against base merged by ``git merge-tree``), a round in which nothing changed,
and an incremental round after one agent edited one file.

The agents are real (``Fleet.spawn``, a shell that sleeps); their work is written into their
worktrees by the bench: agents 2k and 2k+1 rewrite the same line of one module (a conflict),
every agent also edits a module of its own and leaves an untracked file. The fleet's watcher
runs no round meanwhile (``radar_interval`` is an hour): the bench drives :class:`Radar`
itself. A full round starts from nothing cached (``radar.json`` removed, a new instance).
The per-tick bound is measured too: a full round driven by ``step(BUDGET_S)`` as the watcher
does, and the longest step.
"""

from __future__ import annotations

import time

from bench.common import bench_fleet, summary
from cockpit.core import radar
from cockpit.core.fleet import Fleet
from devsupport.polling import wait_until


def _module(fleet: Fleet, index: int) -> str:
    return (fleet.root / "src" / f"m{index:03d}.py").read_text()


def _setup(fleet: Fleet, agents: int) -> list[str]:
    (fleet.root / "cockpit.toml").write_text("[cockpit]\nradar_interval = 3600\n")
    names = [f"a{i}" for i in range(agents)]
    for name in names:
        fleet.spawn(name, command="exec sleep 600")
    wait_until(lambda: all(fleet.layout.worktree(n).is_dir() for n in names), 30, message="worktrees")
    for i, name in enumerate(names):
        worktree = fleet.layout.worktree(name)
        shared = worktree / "src" / f"m{i // 2:03d}.py"  # the pair's module, the same line
        lines = shared.read_text().splitlines(keepends=True)
        lines[4] = f"VALUE = '{name}'\n"
        shared.write_text("".join(lines))
        own = worktree / "src" / f"m{100 + i:03d}.py"  # a module of its own
        own.write_text(own.read_text() + f"# {name} was here\n")
        (worktree / f"notes-{name}.txt").write_text(f"{name}'s notes\n")
    return names


def _cold_round(fleet: Fleet) -> tuple[float, radar.Round]:
    fleet.layout.radar.unlink(missing_ok=True)
    started = time.perf_counter()
    done = radar.Radar(fleet).run_round()
    return time.perf_counter() - started, done


def bench_radar(agents: int, rounds: int) -> dict[str, object]:
    with bench_fleet(files=max(120, 100 + agents)) as fleet:
        names = _setup(fleet, agents)
        full, unchanged, incremental = [], [], []
        counts: dict[str, object] = {}
        for round_ in range(rounds):
            seconds, done = _cold_round(fleet)
            full.append(seconds)
            counts["full"] = {"merge_trees": done.merge_trees, "snapshots": done.snapshots}
            warm = radar.Radar(fleet)  # (as a restarted watcher: from the last round)
            warm.run_round()
            started = time.perf_counter()
            same = warm.run_round()
            unchanged.append(time.perf_counter() - started)
            counts["unchanged"] = {"merge_trees": same.merge_trees, "snapshots": same.snapshots}
            # one agent edits one file: its snapshot and its pairs (and only those) run again
            target = fleet.layout.worktree(names[round_ % len(names)]) / "src" / "m099.py"
            target.write_text(target.read_text() + f"# edit {round_}\n")
            started = time.perf_counter()
            after = warm.run_round()
            incremental.append(time.perf_counter() - started)
            counts["incremental"] = {"merge_trees": after.merge_trees, "snapshots": after.snapshots}
            conflicted = sum(1 for found in after.agents.values() if found)
        # the watcher's way: a full round in budgeted steps
        fleet.layout.radar.unlink(missing_ok=True)
        stepped = radar.Radar(fleet, interval=3600)
        steps: list[float] = []
        done_round = None
        while done_round is None:
            started = time.perf_counter()
            done_round = stepped.step(radar.BUDGET_S, now=0.0)
            steps.append(time.perf_counter() - started)
        return {"agents": agents, "pairs": agents * (agents - 1) // 2, "rounds": rounds,
                "full_round_s": summary(full), "unchanged_round_s": summary(unchanged),
                "incremental_round_s": summary(incremental), "counts": counts,
                "agents_with_conflicts": conflicted, "budget_s": radar.BUDGET_S,
                "stepped_round": {"steps": len(steps), "longest_step_s": round(max(steps), 4),
                                  "total_s": round(sum(steps), 4)}}
