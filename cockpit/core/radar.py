"""The conflict radar: which agents would conflict if merged, before anyone asks for a merge.

A *collision* (:mod:`cockpit.core.ownership`) says two agents changed the same file, and most
such pairs merge cleanly. The radar asks git instead: for every pair of agents that have a
worktree and are not merged or discarded (whatever their process does) and share a base, and for
each such agent against its base's current tip, ``git merge-tree --write-tree`` (git >= 2.38)
merges their *current* work — committed, uncommitted and untracked — and names the conflicting
paths and, for text files, the conflicting line ranges of each side.

An agent's current work is a **snapshot**: its worktree's whole state, read through a temporary
index (:func:`cockpit.core.worktrees.worktree_tree`: the worktree, its index, HEAD and branch are
never touched), committed on top of its HEAD with a fixed date, so the same state is always the
same commit, and kept at ``refs/cockpit/snapshot/<name>`` (removed on discard, and once the agent
is merged). A fingerprint (one ``git status`` that writes nothing, and the size and mtime of each
file it lists) says whether the snapshot must be taken again; it is taken again anyway every
:data:`RESNAPSHOT_S` seconds. Pair results are cached by the two commits: a round in which
nothing changed runs no merge-tree.

The watcher (:mod:`cockpit.core.watcher`) runs the rounds: at most :data:`BUDGET_S` of work per
tick, continued on the next, a round at most every ``radar_interval`` seconds. A finished round
is written atomically to ``.cockpit/radar.json``, which ``cockpit ls --json``, ``cockpit check``
and the TUI read (they never run merge-tree). A conflict the previous round did not have is
recorded as a ``conflict.predicted`` event, which the watcher turns into a notification. Where
git is older than 2.38, the round says so once and every agent's ``conflicts`` is null (unknown).

Agents on other hosts (``[[host]]``) take part through a *remote source*
(:mod:`cockpit.core.remote_radar`, handed in by the watcher's command line: this module is below
the hosts): at a round's start it asks every host, in background threads, for its agents'
snapshots (taken there the same way) and fetches those whose commit changed into
``refs/cockpit/remote-snapshot/<host>/<name>`` here; the round takes the local snapshots
meanwhile and waits for the answers a tick at a time (:data:`WAIT`: the step returns at once),
at most :data:`REMOTE_WAIT_S`. Remote agents then pair with local ones, with each other and with
base like local agents do, cached by the same commit pairs. A host that does not answer leaves
its agents out of the round, with its reason under ``hosts`` in radar.json. A round without a
remote source (the merge queue's) reuses the last round's remote snapshots as they were.
Remote agents are named by their plain name: one cockpit's agent names are unique across its
machines (:func:`cockpit.core.hosts.spawn` refuses a name used here or on another host, and a
local agent of the same name, which the agent commands act on, hides the remote one).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.core import lock, worktrees
from cockpit.core.agent import name_order
from cockpit.core.errors import CockpitError
from cockpit.core.layout import snapshot_ref
from cockpit.core.prediction import Prediction, predict, unsupported
from cockpit.core.repository import Repository
from cockpit.core.state import LIVE, PENDING, Record

BASE = ":base"
"""The ``with`` of a conflict against the agent's base branch (an agent may be named ``base``)."""
BUDGET_S = 0.2
"""Work per watcher tick; a round that needs more goes on at the next tick."""
DEFAULT_INTERVAL = 3.0
"""Seconds between the starts of two rounds (``radar_interval``; 0 turns the radar off)."""
RESNAPSHOT_S = 60.0
"""A snapshot is taken again after this long even when its fingerprint did not change (an edit
that kept a file's size within one mtime tick would otherwise go unseen)."""
REMOTE_WAIT_S = 20.0
"""How long a round waits for the hosts' answers (a tick at a time) before it goes on without them."""
VERSION = 1
_SNAPSHOT_PREFIX = "refs/cockpit/snapshot/"
WAIT = object()
"""Yielded by a round waiting for a host's answer: :meth:`Radar.step` returns until the next tick."""


@dataclass(frozen=True)
class RemoteWork:
    """A remote agent's snapshot, fetched here (what a host answered, or the last round kept)."""

    name: str
    host: str
    branch: str
    base: str  # this machine's name of its base branch
    commit: str
    tree: str
    state: str = ""
    paths: tuple[str, ...] = ()  # changed against the commit it was cut from (collisions)
    diff: tuple[int, int, int] | None = None  # (files, insertions, deletions): its tile's counts


@dataclass(frozen=True)
class HostAnswer:
    """One host's part of a round: its agents' work, or why it has none (``reason``)."""

    host: str
    agents: tuple[RemoteWork, ...] = ()
    reason: str | None = None


RemoteSource = Callable[[], Mapping[str, "Future[HostAnswer]"]]
"""Starts asking every host for its agents' snapshots; a future per host (never failing: a host
that cannot answer gives a :class:`HostAnswer` with a reason)."""


# -- snapshots --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """An agent's current work as a commit, and what it was taken from."""

    branch: str
    head: str
    fingerprint: str
    tree: str
    commit: str
    taken: float  # time.time()

    def to_json(self) -> dict[str, Any]:
        return {"branch": self.branch, "head": self.head, "fingerprint": self.fingerprint, "tree": self.tree,
                "commit": self.commit, "taken": self.taken}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Snapshot:
        return Snapshot(str(data["branch"]), str(data["head"]), str(data["fingerprint"]), str(data["tree"]),
                        str(data["commit"]), float(data["taken"]))


_PATH_FIELD = {"1": 8, "2": 9, "u": 10}  # porcelain v2: the path follows this many fields


def fingerprint(worktree: Path) -> tuple[str, str]:
    """``(HEAD, digest)``: the digest changes when HEAD, the index or any changed or untracked
    file does. One ``git status`` that takes no lock and writes nothing (``--no-optional-locks``:
    no index refresh), then a ``stat`` per file it lists."""
    out = worktrees.run(worktree, "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all",
                        env={"GIT_OPTIONAL_LOCKS": "0"}, strip=False)
    head = ""
    digest = hashlib.sha1()
    records = iter(out.split("\0"))
    for record in records:
        if record.startswith("# branch.oid "):
            head = record.removeprefix("# branch.oid ")
        if not record or record.startswith("#"):
            continue
        digest.update(record.encode(errors="surrogateescape") + b"\0")
        kind = record[0]
        if kind in _PATH_FIELD:
            path = record.split(" ", _PATH_FIELD[kind])[-1]
            if kind == "2":
                next(records, None)  # the rename's origin: its own status says nothing more
        else:
            path = record[2:]
        try:
            st = (worktree / path).lstat()
            digest.update(f"{st.st_size} {st.st_mtime_ns} {st.st_ino}\0".encode())
        except OSError:
            digest.update(b"-\0")
    digest.update(head.encode())
    if not head or head.startswith("("):
        raise worktrees.GitError(f"{worktree}: HEAD has no commit")
    return head, digest.hexdigest()


# -- rounds -----------------------------------------------------------------------------------------
def covered(repo: Repository, record: Record) -> bool:
    """Whether the radar looks at this agent: it has a worktree and is neither merged nor
    discarded (running, paused, exited, failed, killed or halted alike)."""
    return (not record.discarded and record.merge_state != "merged" and bool(record.branch)
            and record.state != PENDING and repo.layout.worktree(record.name).is_dir())


@dataclass(frozen=True)
class Round:
    """A finished round: per agent covered, its conflicts ``[{with, paths, lines}]``."""

    agents: dict[str, list[dict[str, Any]]]
    unsupported: str | None = None
    merge_trees: int = 0
    snapshots: int = 0
    new: list[dict[str, Any]] = field(default_factory=list)  # the conflict.predicted events recorded


def _pair_key(a: str, b: str) -> str:
    return f"{a} {b}"


class Radar:
    """One fleet's conflict radar. :meth:`step` advances a round within a time budget (the
    watcher); :meth:`run_round` does a whole round at once (the merge queue, the bench)."""

    def __init__(self, repo: Repository, interval: float = DEFAULT_INTERVAL,
                 git_version: Callable[[], tuple[int, int] | None] = worktrees.git_version,
                 remote: RemoteSource | None = None) -> None:
        self.repo = repo
        self.remote = remote
        self.remote_live = remote is not None  # (until the first round has asked)
        """The last round saw a remote agent running or paused, or a host it could not ask (the
        watcher keeps going for them)."""
        self.remote_answers: dict[str, HostAnswer] = {}
        """What each host answered in the last round (its reason, when it could not)."""
        self.interval = interval
        self.unsupported = unsupported(git_version())
        self.snapshots: dict[str, Snapshot] = {}
        self.pairs: dict[str, Prediction] = {}
        self.merge_trees = 0  # merge-trees run by this instance (tests and the bench count them)
        self.next_round = 0.0
        self._round: Iterator[Round | object | None] | None = None
        self._refs = {ref.removeprefix(_SNAPSHOT_PREFIX): sha  # where the snapshot refs point now
                      for ref, sha in worktrees.list_refs(repo.root, _SNAPSHOT_PREFIX)}
        self._load()

    def _load(self) -> None:
        """Reuse the last round's snapshots and pair results (a restarted watcher redoes nothing)."""
        data = read(self.repo) or {}
        try:
            self.snapshots = {n: Snapshot.from_json(s) for n, s in (data.get("snapshots") or {}).items()}
            self.pairs = {k: Prediction.from_json(v) for k, v in (data.get("pairs") or {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            self.snapshots, self.pairs = {}, {}

    # -- driving --------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A round is under way: :meth:`step` continues it."""
        return self._round is not None

    def step(self, budget: float = BUDGET_S, now: float | None = None) -> Round | None:
        """Work on the current round for about ``budget`` seconds (one unit of work at least),
        starting one if none runs and ``interval`` has passed since the last started. Returns
        the round when it finishes."""
        now = time.monotonic() if now is None else now
        if self._round is None:
            if now < self.next_round:
                return None
            self._round = self._rounds()
            self.next_round = now + self.interval
        deadline = time.monotonic() + budget
        try:
            while True:
                done = next(self._round)
                if isinstance(done, Round):
                    self._round = None
                    return done
                if done is WAIT or time.monotonic() >= deadline:
                    return None
        except BaseException:
            self._round = None
            raise

    def run_round(self) -> Round:
        """A whole round now (a round under way is dropped and started over)."""
        self._round = None
        for done in self._rounds():
            if isinstance(done, Round):
                return done
            if done is WAIT:
                time.sleep(0.02)
        raise AssertionError("a round always ends with its result")  # pragma: no cover

    # -- one round ------------------------------------------------------------------------------
    def _rounds(self) -> Iterator[Round | object | None]:
        """One round, yielding None after each unit of work (a git call or two), :data:`WAIT`
        while waiting for hosts, and the :class:`Round` at the end."""
        repo = self.repo
        if self.unsupported:
            yield self._finish({}, {}, {}, 0, 0)
            return
        asked = self.remote() if self.remote is not None else None  # the hosts answer meanwhile
        merge_trees, taken = self.merge_trees, 0
        records = sorted((r for r in repo.history().records.values() if covered(repo, r)),
                         key=lambda r: name_order(r.name))
        snaps: dict[str, Snapshot] = {}
        for record in records:
            try:
                snap, fresh = self._snapshot(record)
            except CockpitError:
                continue  # gone meanwhile (discarded, removed by hand): not covered by this round
            snaps[record.name] = snap
            taken += fresh
            yield None
        chosen = [r for r in records if r.name in snaps]
        answers: dict[str, HostAnswer] = {}
        if asked is not None:
            until = time.monotonic() + REMOTE_WAIT_S
            while not all(f.done() for f in asked.values()) and time.monotonic() < until:
                yield WAIT
            answers = {host: f.result() if f.done() else HostAnswer(host, reason=f"no answer within {REMOTE_WAIT_S:g}s")
                       for host, f in asked.items()}
        remote = self._remote_work(answers, asked is not None, {r.name for r in records})
        work = sorted([(r.name, r.base, snaps[r.name].commit) for r in chosen]
                      + [(w.name, w.base, w.commit) for w in remote.values()], key=lambda x: name_order(x[0]))
        tips = dict(worktrees.list_refs(repo.root, "refs/heads/")) if work else {}
        pairs: list[tuple[str, str, str, str]] = []
        for i, (first, base, commit) in enumerate(work):
            tip = tips.get(f"refs/heads/{base}")
            if tip:
                pairs.append((first, BASE, commit, tip))
            pairs += [(first, second, commit, other) for second, other_base, other in work[i + 1:]
                      if other_base == base]
        results: dict[tuple[str, str], Prediction] = {}
        used: dict[str, Prediction] = {}
        for a, b, ca, cb in pairs:
            low, high = sorted((ca, cb))
            key = _pair_key(low, high)
            if key not in self.pairs:
                try:
                    self.pairs[key] = predict(repo.root, low, high)
                except CockpitError:
                    continue  # git cannot merge these two at all (unrelated histories): nothing to say
                self.merge_trees += 1
                yield None
            used[key] = self.pairs[key]
            results[(a, b)] = self.pairs[key] if ca == low else self.pairs[key].swapped()
        self.pairs = used  # forget pairs no current snapshot needs
        agents: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in work}

        def other(name: str) -> dict[str, Any]:
            return {"with": name, "host": remote[name].host} if name in remote else {"with": name}
        for (a, b), found in results.items():
            if found.paths:
                agents[a].append({**other(b), "paths": list(found.paths), "lines": found.ours})
                if b != BASE:
                    agents[b].append({**other(a), "paths": list(found.paths), "lines": found.theirs})
        self._forget_refs({r.name for r in records})
        self.remote_answers = answers
        yield self._finish(agents, snaps, {r.name: r for r in chosen}, self.merge_trees - merge_trees, taken,
                           remote)

    def _remote_work(self, answers: dict[str, HostAnswer], asked: bool, local: set[str]) -> dict[str, RemoteWork]:
        """The remote agents this round covers: what the hosts answered (a host that did not:
        its agents left out), else (no remote source) what the last round had. A name also
        used here is left to the local agent (the one the agent commands act on)."""
        if asked:
            found = [w for answer in answers.values() for w in answer.agents]
            self.remote_live = any(w.state in LIVE for w in found) or any(a.reason for a in answers.values())
        else:
            found = [RemoteWork(n, e["host"], e["branch"], e["base"], e["snapshot"], e.get("tree", ""),
                                e.get("state", ""), tuple(e.get("paths") or ()),
                                tuple(e["diff"]) if e.get("diff") else None)
                     for n, e in ((read(self.repo) or {}).get("agents") or {}).items() if e.get("host")]
        return {w.name: w for w in found if w.name not in local}

    def _snapshot(self, record: Record) -> tuple[Snapshot, bool]:
        """The agent's snapshot, taken again only when its fingerprint changed (or it is old).
        ``(snapshot, taken again)``."""
        root, name = self.repo.root, record.name
        worktree = self.repo.layout.worktree(name)
        previous = self.snapshots.get(name)
        if previous is not None and previous.branch != record.branch:
            previous = None  # another life of the name (respawned): nothing carries over
        head, digest = fingerprint(worktree)
        now = time.time()
        if previous is not None and previous.fingerprint == digest and now - previous.taken < RESNAPSHOT_S:
            snap, fresh = previous, False
        else:
            tree = worktrees.worktree_tree(worktree)
            commit = (previous.commit if previous is not None and (previous.head, previous.tree) == (head, tree)
                      else worktrees.fixed_commit(root, tree, head, f"cockpit: snapshot of {name}'s worktree"))
            snap, fresh = Snapshot(record.branch, head, digest, tree, commit, now), True
        if self._refs.get(name) != snap.commit:
            worktrees.update_ref(root, snapshot_ref(name), snap.commit)
            self._refs[name] = snap.commit
        self.snapshots[name] = snap
        return snap, fresh

    def _forget_refs(self, keep: set[str]) -> None:
        """Remove the snapshot refs (and cached snapshots) of agents no longer covered."""
        self.snapshots = {n: s for n, s in self.snapshots.items() if n in keep}
        for ref, _ in worktrees.list_refs(self.repo.root, _SNAPSHOT_PREFIX):
            name = ref.removeprefix(_SNAPSHOT_PREFIX)
            if name not in keep:
                worktrees.delete_ref(self.repo.root, ref)
                self._refs.pop(name, None)

    def _finish(self, agents: dict[str, list[dict[str, Any]]], snaps: dict[str, Snapshot],
                records: dict[str, Record], merge_trees: int, taken: int,
                remote: dict[str, RemoteWork] | None = None) -> Round:
        """Write the round and record what is new, under the radar's own lock (the merge queue
        may finish a round at the same time as the watcher)."""
        repo = self.repo
        repo.layout.home.mkdir(exist_ok=True)
        remote = remote or {}
        entries = {name: ({"branch": records[name].branch, "base": records[name].base,
                           "snapshot": snaps[name].commit} if name not in remote else
                          {"host": remote[name].host, "branch": remote[name].branch, "base": remote[name].base,
                           "snapshot": remote[name].commit, "tree": remote[name].tree, "state": remote[name].state,
                           "paths": list(remote[name].paths), "diff": remote[name].diff})
                   for name in agents}
        hosts = ({host: {"reason": answer.reason, "agents": sorted(w.name for w in answer.agents)}
                  for host, answer in self.remote_answers.items()} if self.remote is not None
                 else (read(repo) or {}).get("hosts"))
        data = {"version": VERSION, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "unsupported": self.unsupported, "merge_trees": merge_trees, "snapshots_taken": taken,
                "hosts": hosts,
                "agents": {name: {**entries[name], "conflicts": found} for name, found in agents.items()},
                "snapshots": {n: s.to_json() for n, s in self.snapshots.items()},
                "pairs": {k: v.to_json() for k, v in self.pairs.items()}}
        with lock.repo_lock(repo.layout.home / "radar.lock", timeout=30):
            previous = read(repo) or {}
            new = _new_conflicts(previous, data)
            tmp = repo.layout.radar.with_name(f".radar.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1) + "\n")
            os.replace(tmp, repo.layout.radar)
            for event in new:
                data = {k: v for k, v in event.items() if k != "agent"}
                repo.events.append("conflict.predicted", event["agent"], **data)
            if self.unsupported and not previous.get("unsupported"):
                repo.events.append("radar.unsupported", None, reason=self.unsupported)
        return Round(agents, self.unsupported, merge_trees, taken, new)


def _new_conflicts(previous: dict[str, Any], current: dict[str, Any]) -> list[dict[str, Any]]:
    """One event per conflicting pair the previous round did not have: on the agent whose
    snapshot changed (the one that made it), else the first by name; ``with`` the other."""
    def pairs(data: dict[str, Any]) -> dict[frozenset[str], dict[str, Any]]:
        found: dict[frozenset[str], dict[str, Any]] = {}
        for name, entry in (data.get("agents") or {}).items():
            for conflict in entry.get("conflicts") or []:
                found.setdefault(frozenset((name, conflict["with"])), {"agent": name, **conflict})
        return found

    before, now = pairs(previous), pairs(current)
    old_snaps = {n: e.get("snapshot") for n, e in (previous.get("agents") or {}).items()}
    events = []
    for key in sorted(set(now) - set(before), key=lambda k: sorted(k)):
        entry = now[key]
        agent, other = entry["agent"], entry["with"]
        if other != BASE and old_snaps.get(agent) == current["agents"][agent]["snapshot"] \
                and old_snaps.get(other) != current["agents"][other]["snapshot"]:
            agent, other = other, agent
        event: dict[str, Any] = {"agent": agent, "with": other, "paths": entry["paths"]}
        if other == BASE:
            event["base"] = current["agents"][agent]["base"]
        events.append(event)
    return events


# -- reading ----------------------------------------------------------------------------------------
_cache: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def read(repo: Repository) -> dict[str, Any] | None:
    """The last round as written, or None when there is none (or it cannot be read)."""
    path = repo.layout.radar
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        cached = _cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return None
    _cache[path] = (stamp, data)
    return data


def conflicts_of(data: dict[str, Any] | None, name: str, branch: str | None, candidates: Iterable[str]
                 ) -> list[dict[str, Any]] | None:
    """``name``'s conflicts in the last round ``data``: None when unknown (no round yet, git too
    old, the agent is not a candidate — merged, discarded, pending, its worktree gone — or the
    round did not cover it as it is now); else ``[{with, paths, lines}]``, leaving out agents
    that are no longer ``candidates``."""
    others = set(candidates)
    if not data or data.get("unsupported") or name not in others:
        return None
    entry = (data.get("agents") or {}).get(name)
    if not isinstance(entry, dict) or entry.get("branch") != branch or entry.get("host"):
        return None  # (an entry with a host is a remote agent's: cockpit.core.remote_radar reads those)
    return [dict(c) for c in entry.get("conflicts") or []
            if c.get("with") == BASE or c.get("with") in others or c.get("host")]


def unsupported_reason(data: dict[str, Any] | None) -> str | None:
    """What the last round said about git being too old, if it did."""
    return str(data["unsupported"]) if data and data.get("unsupported") else None
