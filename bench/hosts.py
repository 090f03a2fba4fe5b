"""``cockpit ls --json`` over several hosts against its parts: each host's own ``ls`` over its
shared connection, and one bare round trip on that connection.

The hosts are the test harness's (tests/hosts_support.py: a Unix user and an sshd of its own per
host on loopback, this checkout installed there offline), so this needs root; without it the
figure says why it was skipped. Rounds alternate between the three measurements so a busy moment
of the machine hits them all alike. Target: ``ls --json`` over all hosts costs at most the
slowest host's ``ls`` plus one round trip (the hosts are asked in parallel).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import PROJECT, make_repo, summary

sys.path.insert(0, str(PROJECT / "tests"))


def _time(argv: list[str], **kwargs: object) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RuntimeError(f"{argv[-3:]} exited {result.returncode}: {result.stderr.strip()}")
    return time.perf_counter() - started


def _own_ls(link) -> float:  # type: ignore[no-untyped-def]
    """One host's own ``ls --json`` over its shared connection (a one-shot ``cockpit _remote``)."""
    started = time.perf_counter()
    answer = link.request("run", {"argv": ["ls", "--json"]})
    assert answer.returncode == 0, answer.stderr
    return time.perf_counter() - started


def bench_hosts(hosts_n: int, agents: int, rounds: int) -> dict[str, object]:
    from hosts_support import VENV, Lab, unavailable
    reason = unavailable()
    if reason:
        return {"skipped": reason}
    from cockpit.core.host_table import HostSpec
    from cockpit.core.transport import Transport
    lab = Lab()
    tmp = Path(tempfile.mkdtemp(prefix="cockpit-bench-hosts-"))
    try:
        names = ["big", "small", "third", "fourth"][:hosts_n]
        machines = lab.up(*names)
        lab.install_cockpit(*machines)
        repo = make_repo(tmp, files=5)
        (repo / "cockpit.toml").write_text("\n".join(
            f'[[host]]\nname = "{h.alias}"\nssh = "{h.alias}"\nrepo = "~/repo"\ncockpit = "~/{VENV}/bin/cockpit"\n'
            f'ssh_config = "{lab.config}"\n' for h in machines))
        cockpit = [sys.executable, "-m", "cockpit", "-C", str(repo)]
        env = {**os.environ, "PYTHONPATH": str(PROJECT)}
        for host in machines:
            for i in range(agents):
                _time([*cockpit, "spawn", f"{host.alias}-{i}", "--command", "sleep 3600", "--host", host.alias],
                      env=env)
        links = [Transport(HostSpec(h.alias, h.alias, "~/repo", f"~/{VENV}/bin/cockpit", str(lab.config)))
                 for h in machines]
        listed = json.loads(subprocess.run([*cockpit, "ls", "--json"], capture_output=True, text=True, env=env,
                                           stdin=subprocess.DEVNULL).stdout)
        assert len(listed) == hosts_n * agents and {a["state"] for a in listed} == {"running"}, listed
        from cockpit.core import hosts as remote
        from cockpit.core.fleet import Fleet
        fleet = Fleet(repo)
        times: dict[str, list[float]] = {"ls_all": [], "all_agents_in_process": [], "cli_start": [], "round_trip": [],
                                         "host_ls_together_slowest": [],
                                         **{f"host_ls_{h.alias}": [] for h in machines}}
        slowest_plus_rtt: list[float] = []
        together_plus_rtt: list[float] = []
        for _ in range(rounds):
            times["ls_all"].append(_time([*cockpit, "ls", "--json"], env=env))
            times["cli_start"].append(_time([*cockpit, "--version"], env=env))
            started = time.perf_counter()
            found, warnings = remote.all_agents(fleet, [])
            times["all_agents_in_process"].append(time.perf_counter() - started)
            assert len(found) == hosts_n * agents and not warnings, warnings
            own = []
            for host, link in zip(machines, links, strict=True):
                started = time.perf_counter()
                answer = link.request("run", {"argv": ["ls", "--json"]})
                assert answer.returncode == 0, answer.stderr
                own.append(time.perf_counter() - started)
                times[f"host_ls_{host.alias}"].append(own[-1])
            # the same requests sent to every host at once, as ls sends them: on separate machines
            # each host's ls takes as long either way; on this harness's one machine they share
            # its cores, as the hosts' ls inside the CLI's run do
            with ThreadPoolExecutor(max_workers=len(links)) as pool:
                together = list(pool.map(_own_ls, links))
            times["host_ls_together_slowest"].append(max(together))
            rtt = min(_time(link.argv(["true"])) for link in links)
            times["round_trip"].append(rtt)
            slowest_plus_rtt.append(max(own) + rtt)
            together_plus_rtt.append(max(together) + rtt)
        ratio = [a / b for a, b in zip(times["ls_all"], slowest_plus_rtt, strict=True)]
        engine_ratio = [a / b for a, b in zip(times["all_agents_in_process"], slowest_plus_rtt, strict=True)]
        together_ratio = [a / b for a, b in zip(times["ls_all"], together_plus_rtt, strict=True)]
        engine_together = [a / b for a, b in zip(times["all_agents_in_process"], together_plus_rtt, strict=True)]
        return {"hosts": hosts_n, "agents_per_host": agents, "rounds": rounds,
                "seconds": {k: summary(v) for k, v in times.items()},
                "slowest_host_plus_round_trip": summary(slowest_plus_rtt),
                "ratio": summary(ratio), "engine_ratio": summary(engine_ratio),
                "together_plus_round_trip": summary(together_plus_rtt), "together_ratio": summary(together_ratio),
                "engine_together_ratio": summary(engine_together)}
    finally:
        subprocess.run([sys.executable, "-m", "cockpit", "-C", str(tmp / "repo"), "down"], capture_output=True,
                       stdin=subprocess.DEVNULL)
        lab.close()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


def hosts_rows(h: dict) -> list[str]:
    if "skipped" in h:
        return [f"| `ls --json` over several hosts | skipped: {h['skipped']} | | |"]
    s = h["seconds"]
    total, bound = s["ls_all"], h["slowest_host_plus_round_trip"]
    return [f"| `cockpit ls --json` over {h['hosts']} hosts × {h['agents_per_host']} agents (CLI, Python start-up "
            f"included) vs the slowest host's own `ls` + one round trip | {total['p50'] * 1000:.0f} ms "
            f"(min {total['min'] * 1000:.0f}, max {total['max'] * 1000:.0f}) vs {bound['p50'] * 1000:.0f} ms "
            f"(min {bound['min'] * 1000:.0f}, max {bound['max'] * 1000:.0f}); ratio {h['ratio']['p50']} "
            f"(max {h['ratio']['max']}); round trip {s['round_trip']['p50'] * 1000:.0f} ms | ≤ slowest + one round "
            f"trip | {'met' if total['p50'] <= bound['p50'] else '**missed**'} |",
            f"| the same, the engine alone (`hosts.all_agents` in process: no CLI start-up, "
            f"{s['cli_start']['p50'] * 1000:.0f} ms here) | {s['all_agents_in_process']['p50'] * 1000:.0f} ms "
            f"(min {s['all_agents_in_process']['min'] * 1000:.0f}, "
            f"max {s['all_agents_in_process']['max'] * 1000:.0f}); "
            f"ratio {h['engine_ratio']['p50']} (max {h['engine_ratio']['max']}) | reported | |",
            *_together_rows(h)]


def _together_rows(h: dict) -> list[str]:
    """The CLI and the engine against the hosts' own ``ls`` sent to all of them at once."""
    if "together_plus_round_trip" not in h:
        return []
    s, bound = h["seconds"], h["together_plus_round_trip"]
    total = s["ls_all"]
    return [f"| the same CLI vs the slowest host's own `ls` when every host is asked at once (as `ls` asks "
            f"them; here they share this machine's cores) + one round trip | {total['p50'] * 1000:.0f} ms vs "
            f"{bound['p50'] * 1000:.0f} ms (min {bound['min'] * 1000:.0f}, max {bound['max'] * 1000:.0f}); "
            f"ratio {h['together_ratio']['p50']} (max {h['together_ratio']['max']}); the engine alone: ratio "
            f"{h['engine_together_ratio']['p50']} (max {h['engine_together_ratio']['max']}) | ≤ slowest + one "
            f"round trip | {'met' if total['p50'] <= bound['p50'] else '**missed**'} |"]
