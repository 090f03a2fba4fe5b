"""Scale: ``n`` agents spawned; ``cockpit ls`` time; every operation still works on one of them
while the other ``n - 1`` stay untouched.

Spawns are the engine API (:meth:`Fleet.spawn`), each timed. ``ls`` and ``ls --json`` are the
real CLI (``python -m cockpit``, start-up included) in the fleet's repository, alternating.
Then one agent goes through every :class:`Fleet` operation (and diff and the merge queue), each
timed; after each, its expected state is checked and so is every other agent: same tmux pane
pid, alive and piped, same worktree HEAD (``git worktree list``), state still ``running``.
Failures are reported, never raised.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import bench_fleet, cockpit_cli, git, summary
from cockpit.core.agent import Agent
from cockpit.core.fleet import Fleet
from devsupport.polling import wait_until


def _world(fleet: Fleet) -> dict[str, tuple[object, ...]]:
    """Per agent: (pane pid, alive, piped, worktree HEAD, state)."""
    panes = fleet.tmux.panes()
    heads: dict[str, str] = {}
    path = None
    for line in git(fleet.root, "worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = os.path.realpath(line[len("worktree "):])
        elif line.startswith("HEAD ") and path:
            heads[path] = line[len("HEAD "):]
    world: dict[str, tuple[object, ...]] = {}
    for agent in fleet.agents(observe=False):
        pane = panes.get(agent.name)
        world[agent.name] = (pane.pid if pane else None, bool(pane and not pane.dead), bool(pane and pane.piped),
                             heads.get(os.path.realpath(agent.worktree)), agent.state)
    return world


def _agent(fleet: Fleet, name: str) -> Agent | None:
    return next((a for a in fleet.agents(observe=False) if a.name == name), None)


def _ops(fleet: Fleet, name: str) -> list[tuple[str, Callable[[], object], Callable[[Agent | None], bool]]]:
    """``(label, operation, check of the agent afterwards)``, in an order each step allows."""
    from cockpit.core.queue import MergeQueue, enqueue

    def state(*wanted: str) -> Callable[[Agent | None], bool]:
        return lambda a: a is not None and a.state in wanted

    def commit() -> None:  # the agent's own work, so diff and merge have something to show
        worktree = Path(fleet.layout.worktree(name))
        (worktree / "scale.txt").write_text("work of the agent\n")
        git(worktree, "add", "scale.txt")
        git(worktree, "commit", "--quiet", "-m", "scale: the agent's work")

    def merge() -> object:
        enqueue(fleet, [name])
        outcomes = MergeQueue(fleet).run()
        if [o.state for o in outcomes if o.name == name] != ["merged"]:
            raise RuntimeError(f"merge: {[o.describe() for o in outcomes]}")
        return outcomes

    def diff() -> object:
        files = fleet.diff(name).files()
        if not files:
            raise RuntimeError("diff: no changed file")
        return files

    return [
        ("pause", lambda: fleet.pause(name), state("paused")),
        ("resume", lambda: fleet.resume(name), state("running")),
        ("kill", lambda: fleet.kill(name), state("killed")),
        ("respawn --keep", lambda: fleet.respawn(name, keep=True), state("running")),
        ("respawn", lambda: fleet.respawn(name), state("running")),
        ("fail", lambda: fleet.mark_failed(name), state("failed")),
        ("respawn after fail", lambda: fleet.respawn(name), state("running")),
        ("commit (the agent's)", commit, state("running")),
        ("diff", diff, state("running")),
        ("merge", merge, state("merged")),
        ("discard", lambda: fleet.discard(name), lambda a: a is None),
        ("restore", lambda: fleet.restore(name), lambda a: a is not None and Path(a.worktree).is_dir()),
        ("respawn --keep after restore", lambda: fleet.respawn(name, keep=True), state("running")),
        ("screen", lambda: fleet.screen(name), state("running")),
        ("agents() in-process", lambda: fleet.agents(ownership=True), state("running")),
    ]


def _run_ops(fleet: Fleet, name: str, others: list[str]) -> tuple[dict[str, dict], list[str]]:
    results: dict[str, dict] = {}
    failures: list[str] = []
    before = _world(fleet)
    for label, op, check in _ops(fleet, name):
        error = None
        started = time.perf_counter()
        try:
            op()
        except Exception as exc:  # noqa: BLE001 (reported in the results, with the other operations')
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        problems = [error] if error else []
        try:
            wait_until(lambda: check(_agent(fleet, name)), 10, interval=0.05, message="its state")
        except TimeoutError:
            agent = _agent(fleet, name)
            problems.append(f"{name} is {agent.state if agent else 'gone'} afterwards")
        after = _world(fleet)
        changed = [f"{o}: {before.get(o)} -> {after.get(o)}" for o in others if after.get(o) != before.get(o)]
        if changed:
            problems.append(f"{len(changed)} other agent(s) changed: {'; '.join(changed[:3])}")
        results[label] = {"seconds": round(seconds, 4), "ok": not problems}
        failures += [f"{label}: {p}" for p in problems]
    return results, failures


def _timed_cli(root: Path, socket: str, args: list[str], agents: int, failures: list[str]) -> float:
    started = time.perf_counter()
    result = cockpit_cli(root, socket, *args)
    seconds = time.perf_counter() - started
    label = "cockpit " + " ".join(args)
    if result.returncode != 0:
        failures.append(f"{label}: exit {result.returncode}: {result.stderr.strip()[-300:]}")
    elif "--json" in args:
        import json
        shown = json.loads(result.stdout)
        if len(shown) != agents or any(a["state"] != "running" for a in shown):
            failures.append(f"{label}: {len(shown)} agents, states {sorted({a['state'] for a in shown})}")
    elif len(result.stdout.splitlines()) != agents + 1:
        failures.append(f"{label}: {len(result.stdout.splitlines())} lines for {agents} agents")
    return seconds


def bench_scale(agents: int, ls_rounds: int = 5) -> dict[str, object]:
    """The scale figure."""
    spawn: list[float] = []
    failures: list[str] = []
    ls: dict[str, list[float]] = {"ls": [], "ls --json": []}
    with bench_fleet() as fleet:
        names = [f"s-{i:02d}" for i in range(agents)]
        for i, name in enumerate(names):
            started = time.perf_counter()
            try:
                fleet.spawn(name, command=f"echo ready {i}; sleep 3600")
            except Exception as exc:  # noqa: BLE001 (reported in the results)
                failures.append(f"spawn {name}: {type(exc).__name__}: {exc}")
            spawn.append(time.perf_counter() - started)
        for name in names:
            log = fleet.layout.session_log(name)
            try:
                wait_until(lambda: log.exists() and b"ready" in log.read_bytes(), 30, message=f"{name} ready")
            except TimeoutError as exc:
                failures.append(str(exc))
        root, socket = fleet.root, fleet.tmux.socket
        for i in range(ls_rounds):
            order = [["ls"], ["ls", "--json"]]
            for args in order if i % 2 == 0 else order[::-1]:
                ls[" ".join(args)].append(_timed_cli(root, socket, args, agents, failures))
        target = names[len(names) // 2]
        ops, op_failures = _run_ops(fleet, target, [n for n in names if n != target])
        failures += op_failures
        alive = sum(1 for a in fleet.agents(observe=False) if a.alive)
    tenth = max(1, agents // 8)
    return {
        "agents": agents, "alive_at_end": alive,
        "spawn_s": summary(spawn, 3),
        "spawn_first_s": summary(spawn[:tenth], 3), "spawn_last_s": summary(spawn[-tenth:], 3),
        "ls_s": {k: summary(v, 3) for k, v in ls.items()},
        "op_agent": target, "ops": ops,
        "ops_ok": sum(1 for o in ops.values() if o["ok"]), "ops_total": len(ops),
        "failures": failures,
    }
