"""The conflict radar and collisions across hosts: remote agents' work, fetched here.

On a host, ``cockpit _remote`` op ``snapshot`` runs :func:`export`: each agent there the radar
covers gets a snapshot of its current work — committed, uncommitted and untracked, read through
a temporary index (the agent's worktree, index, HEAD and branch are never touched), committed
with a fixed date on its HEAD, exactly as the local radar does — at ``refs/cockpit/export/<name>``
there, and the answer gives its commit, tree, state, base, and the paths and line counts it
changed against the commit it was cut from. A fingerprint (one ``git status`` writing nothing)
kept in the host's ``.cockpit/exported.json`` spares the snapshot when nothing changed.

Here, :func:`gather` asks one host and fetches only the snapshots whose commit is not already at
``refs/cockpit/remote-snapshot/<host>/<name>`` (one ``git fetch`` over the host's shared ssh
connection: a round in which nothing changed there fetches nothing). :class:`HostSnapshots` is
the radar's remote source (:data:`cockpit.core.radar.RemoteSource`): it asks every host in
background threads, so the watcher's tick never waits for ssh. A host that cannot answer is a
reason in the round, never an error.

:func:`cross` gives ``ls``, ``check`` and the TUI what crosses machines: collisions between agents
on different machines (the paths each changed: this machine's from its worktrees, a remote
agent's from the last round) and a remote agent's conflicts from this machine's round.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from cockpit.core import lock, radar, worktrees
from cockpit.core.agent import Agent, name_order
from cockpit.core.errors import CockpitError
from cockpit.core.hosts import BASE_PREFIX, RegistryDamaged, git_env, mark_reachable, remote_agents, transport
from cockpit.core.repository import Repository
from cockpit.core.spec import validate_name
from cockpit.core.transport import HostUnreachable, last_line

EXPORT_PREFIX = "refs/cockpit/export/"
"""On a host: where :func:`export` keeps each agent's snapshot for another cockpit to fetch."""
REF_PREFIX = "refs/cockpit/remote-snapshot/"
"""Here: ``refs/cockpit/remote-snapshot/<host>/<name>``, a remote agent's last fetched snapshot
(not under ``refs/cockpit/hosts/<host>/``, where an agent named ``snapshot`` has its merge ref)."""
REQUEST_TIMEOUT_S = 20.0


# -- on the host -----------------------------------------------------------------------------------
def export(repo: Repository) -> dict[str, Any]:
    """Snapshot every agent the radar covers here (see the module doc); ``{"agents": {name: {...}}}``.
    Under a lock of its own: two cockpits asking at once take turns."""
    cache_path = repo.layout.home / "exported.json"
    repo.layout.home.mkdir(exist_ok=True)
    with lock.repo_lock(repo.layout.home / "export.lock", timeout=30):
        try:
            cache = dict(json.loads(cache_path.read_text()))
        except (OSError, ValueError, TypeError):
            cache = {}
        records = [r for r in repo.history().records.values() if radar.covered(repo, r)]
        kept: dict[str, dict[str, Any]] = {}
        refs = dict(worktrees.list_refs(repo.root, EXPORT_PREFIX))
        for record in sorted(records, key=lambda r: name_order(r.name)):
            try:
                entry = _snapshot(repo, record.name, record.branch or "", record.base_sha, cache.get(record.name))
            except CockpitError:
                continue  # gone meanwhile: not in this answer
            if refs.get(EXPORT_PREFIX + record.name) != entry["commit"]:
                worktrees.update_ref(repo.root, EXPORT_PREFIX + record.name, entry["commit"])
            kept[record.name] = entry
        for ref in set(refs) - {EXPORT_PREFIX + n for n in kept}:
            worktrees.delete_ref(repo.root, ref)
        tmp = cache_path.with_name(".exported.tmp")
        tmp.write_text(json.dumps(kept))
        tmp.replace(cache_path)
    history = repo.history().records
    return {"agents": {name: {**entry, "state": history[name].state, "base": history[name].base}
                       for name, entry in kept.items()}}


def _snapshot(repo: Repository, name: str, branch: str, base_sha: str, previous: Any) -> dict[str, Any]:
    worktree = repo.layout.worktree(name)
    head, digest = radar.fingerprint(worktree)
    if (isinstance(previous, dict) and previous.get("branch") == branch and previous.get("base_sha") == base_sha
            and previous.get("fingerprint") == digest and time.time() - previous.get("taken", 0) < radar.RESNAPSHOT_S):
        return previous
    tree = worktrees.worktree_tree(worktree)
    same = isinstance(previous, dict) and (previous.get("head"), previous.get("tree")) == (head, tree)
    commit = previous["commit"] if same else worktrees.fixed_commit(
        repo.root, tree, head, f"cockpit: snapshot of {name}'s worktree")
    changed = worktrees.commit_changes(repo.root, base_sha, commit)
    return {"branch": branch, "base_sha": base_sha, "fingerprint": digest, "head": head, "tree": tree,
            "commit": commit, "taken": time.time(), "paths": sorted(changed.paths), "diff": list(changed.summary)}


# -- here ------------------------------------------------------------------------------------------
def gather(repo: Repository, host: str) -> radar.HostAnswer:
    """Ask ``host`` for its agents' snapshots and fetch the new ones here. Never raises: a host
    that cannot answer gives its reason."""
    try:
        return _gather(repo, host)
    except HostUnreachable as exc:
        mark_reachable(repo, host, False)
        return radar.HostAnswer(host, reason=str(exc))
    except (CockpitError, OSError, ValueError, KeyError, TypeError) as exc:
        return radar.HostAnswer(host, reason=f"host {host}: {exc}")


def _gather(repo: Repository, host: str) -> radar.HostAnswer:
    mine = {name for name, h in remote_agents(repo).items() if h == host}
    link = transport(repo, host)
    answer = link.request("snapshot", timeout=REQUEST_TIMEOUT_S)
    if answer.returncode != 0:
        return radar.HostAnswer(host, reason=f"host {host}: {last_line(answer.stderr).removeprefix('cockpit: ')}")
    mark_reachable(repo, host, True)
    found = json.loads(answer.stdout)
    agents = {validate_name(n): e for n, e in (found.get("agents") or {}).items() if n in mine}
    prefix = f"{REF_PREFIX}{host}/"
    have = dict(worktrees.list_refs(repo.root, prefix))
    wanted = sorted(n for n, e in agents.items() if have.get(prefix + n) != e["commit"])
    if wanted:
        result = subprocess.run(["git", "-C", str(repo.root), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                                 link.git_url(str(found["link"])),
                                 *[f"+{EXPORT_PREFIX}{n}:{prefix}{n}" for n in wanted]],
                                env=git_env(link), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                timeout=REQUEST_TIMEOUT_S)
        if result.returncode != 0:
            return radar.HostAnswer(host, reason=f"host {host}: fetching snapshots failed: {last_line(result.stderr)}")
    for ref in set(have) - {prefix + n for n in agents}:
        worktrees.delete_ref(repo.root, ref)
    work = []
    for name, entry in agents.items():
        commit, tree = str(entry["commit"]), str(entry["tree"])
        if name in wanted and worktrees.ref_sha(repo.root, prefix + name) != commit:
            # the host took another snapshot between its answer and the fetch: use what came
            commit = worktrees.ref_sha(repo.root, prefix + name) or commit
            tree = worktrees.run(repo.root, "rev-parse", f"{commit}^{{tree}}")
        work.append(radar.RemoteWork(name, host, str(entry["branch"]), str(entry["base"]).removeprefix(BASE_PREFIX),
                                     commit, tree, str(entry.get("state") or ""), tuple(entry.get("paths") or ()),
                                     tuple(entry["diff"]) if entry.get("diff") else None))
    return radar.HostAnswer(host, tuple(sorted(work, key=lambda w: name_order(w.name))))


class HostSnapshots:
    """The radar's remote source: each call starts asking every host this repository spawned on
    (a host whose last answer is still coming is not asked twice: the round waits for that one)."""

    def __init__(self, repo: Repository, workers: int = 4) -> None:
        self.repo = repo
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="radar-host")
        self.asking: dict[str, Future[radar.HostAnswer]] = {}

    def __call__(self) -> dict[str, Future[radar.HostAnswer]]:
        try:
            hosts = sorted({h for h in remote_agents(self.repo).values() if h in self.repo.config.hosts})
        except RegistryDamaged:
            return {}  # (ls and the TUI say so; the radar covers this machine's agents meanwhile)
        for host in hosts:
            previous = self.asking.get(host)
            if previous is None or previous.done():
                self.asking[host] = self.pool.submit(gather, self.repo, host)
        return {host: self.asking[host] for host in hosts}


# -- reading: ls, check, the TUI ------------------------------------------------------------------
def _entry(data: dict[str, Any] | None, agent: Agent) -> dict[str, Any] | None:
    """The last round's entry of remote ``agent`` as it is now (same host, same branch), if any."""
    if not data or data.get("unsupported") or agent.host is None:
        return None
    entry = (data.get("agents") or {}).get(agent.name)
    if isinstance(entry, dict) and entry.get("host") == agent.host and entry.get("branch") == agent.branch:
        return entry
    return None


def diff_of(data: dict[str, Any] | None, agent: Agent) -> tuple[int, int, int] | None:
    """A remote agent's (files, insertions, deletions) from the last round, for its tile."""
    entry = _entry(data, agent)
    found = entry.get("diff") if entry else None
    return (int(found[0]), int(found[1]), int(found[2])) if found else None


def cross(agents: Iterable[Agent], data: dict[str, Any] | None, changed: Callable[[Agent], set[str]]) -> list[Agent]:
    """``agents`` (this machine's, ``host`` None, and the hosts' as ``ls --json`` there gave
    them) with what crosses machines added: each collision with an agent on another machine
    (``changed``: a local agent's changed paths; a remote one's come from the round ``data``),
    and a remote agent's conflicts from this machine's round (its host's own findings kept)."""
    agents = list(agents)
    here = {a.name for a in agents if a.host is None}  # a remote agent of the same name is left alone
    paths: dict[str, set[str]] = {}
    for agent in agents:
        if agent.host is None:
            if agent.collisions is not None:  # its worktree was looked at
                paths[agent.name] = changed(agent)
        elif agent.name not in here and (entry := _entry(data, agent)) is not None:
            paths[agent.name] = set(entry.get("paths") or ())
    where = {a.name: a.host for a in agents if a.host is None or a.name not in here}
    result = []
    for agent in agents:
        if agent.host is not None and agent.name in here:
            result.append(agent)
            continue
        collisions = agent.collisions
        mine = paths.get(agent.name)
        if mine:
            by_path = {c["path"]: list(c["agents"]) for c in collisions or []}
            for path in sorted(mine):
                others = [o for o, theirs in paths.items() if where[o] != agent.host and path in theirs]
                if others:
                    by_path[path] = sorted(set(by_path.get(path, [])) | set(others), key=name_order)
            collisions = [{"path": p, "agents": a} for p, a in sorted(by_path.items())]
        conflicts = agent.conflicts
        if (entry := _entry(data, agent)) is not None:
            ours = [dict(c) for c in entry.get("conflicts") or []]
            named = {c.get("with") for c in ours}
            conflicts = ours + [c for c in agent.conflicts or [] if c.get("with") not in named]
        result.append(replace(agent, collisions=collisions, conflicts=conflicts))
    return result


def left_out(data: dict[str, Any] | None) -> list[str]:
    """Why the last round left hosts out: one line per host that did not answer."""
    hosts = (data or {}).get("hosts") or {}
    return [f"{info['reason']}: its agents were left out of the last conflict round"
            for _, info in sorted(hosts.items()) if isinstance(info, dict) and info.get("reason")]
