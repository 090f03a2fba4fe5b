"""The pre-spawn checklist's items for agents on hosts (the rest: :mod:`cockpit.core.checklist`).

Before ``up`` starts anything, here or on any host, every host that runs one of the batch's
agents is probed the way ``cockpit hosts`` probes it (:func:`cockpit.core.hosts.probe`, in
parallel): reachable over ssh, git, tmux and Python there, this very cockpit version, and a
repository a spawn can use (one, or nothing yet at its path: the first spawn creates it). A
failed item refuses the whole batch, so a bad host changes nothing here or on the other hosts
(a host where nothing is to start refuses nothing).

The per-agent isolation items (own worktree path, branch, tmux session) of a remote agent are
the host's own cockpit's to check: its spawn refuses a path, branch or session that is taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from cockpit import __version__
from cockpit.core import hosts
from cockpit.core.checklist import Checklist, Item
from cockpit.core.errors import CockpitError
from cockpit.core.repository import Repository


def check_hosts(repo: Repository, names: Sequence[str]) -> Checklist:
    """The host items for configured agents ``names`` (each with ``host = "..."``). ``n`` counts
    the agents ``up`` would start there: those the host does not list or lists ``killed``; all
    of a host's agents when it could not be asked."""
    by_host: dict[str, list[str]] = {}
    for name in names:
        host = repo.config.agents[name].host
        if host is not None:
            by_host.setdefault(host, []).append(name)
    result = Checklist(n=0)
    if not by_host:
        return result

    def look(host: str) -> tuple[hosts.HostReport | CockpitError, dict[str, str] | None]:
        try:
            report = hosts.probe(repo, host)
        except CockpitError as exc:  # (an unknown host name: config validation keeps it out)
            return exc, None
        if not report.reachable or report.cockpit != __version__:
            return report, None
        try:
            return report, {a.name: a.state for a in hosts.host_agents(repo, host)}
        except CockpitError as exc:
            report.problems.append(str(exc))
            return report, None

    with ThreadPoolExecutor(max_workers=len(by_host)) as pool:
        looks = dict(zip(by_host, pool.map(look, list(by_host)), strict=True))
    for host, agents in sorted(by_host.items()):
        report, states = looks[host]
        who = ", ".join(agents)
        add = result.items.append
        if states is None:
            result.n += len(agents)
        if isinstance(report, CockpitError):
            add(Item(who, f"host {host} known", False, str(report)))
            continue
        if not report.reachable:
            add(Item(who, f"host {host} reachable", False, "; ".join(report.problems) or "unreachable"))
            continue
        add(Item(who, f"host {host} reachable", True, report.ssh))
        add(Item(who, f"git, tmux and Python on host {host}", not report.tool_problems,
                 "; ".join(report.tool_problems) or f"{report.git}, {report.tmux}, Python {report.python}"))
        if report.cockpit != __version__:
            mismatch = [p for p in report.problems if "cockpit" in p] or [f"cockpit {report.cockpit} there"]
            add(Item(who, f"cockpit {__version__} on host {host}", False, mismatch[0]))
            continue
        add(Item(who, f"cockpit {__version__} on host {host}", True, f"cockpit {report.cockpit}"))
        repo_detail = report.repo or next((p for p in report.problems if "repository" in p), hosts.host_spec(
            repo, host).repo)
        add(Item(who, f"repository usable on host {host}", report.repo_usable, repo_detail))
        if states is None:
            add(Item(who, f"agents listed on host {host}", False, report.problems[-1]))
            continue
        starting = [name for name in agents if states.get(name) in (None, "killed")]
        result.n += len(starting)
        if report.repo_usable and not report.tool_problems:
            where = f"repository {report.repo}" if report.repo else repo_detail
            result.notes.append(f"host {host}: reachable, cockpit {report.cockpit}, {where}; "
                                f"starting there: {', '.join(starting) or 'none'}")
    result.remote = result.n > 0  # (a host with nothing to start refuses nothing)
    return result
