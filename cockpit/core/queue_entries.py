"""The merge queue as the event log records it: its entries, local and remote, in order; putting
agents in it; the lock its one runner holds; and the steps the runner records as it goes.

A local agent's entry is its own record's ``merge.*`` events. A remote agent's entry (its agent
lives on a host, :mod:`cockpit.core.hosts`) is recorded by ``remote.*`` events naming the host
and the agent (:class:`cockpit.core.state.RemoteQueued`): the same steps, so the runner
(:mod:`cockpit.core.queue`) orders, builds, lands and recovers both the same way.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.core import lock
from cockpit.core.errors import CockpitError
from cockpit.core.merge_outcome import ENDINGS
from cockpit.core.repository import Repository
from cockpit.core.spec import validate_name
from cockpit.core.state import Record, RemoteQueued


class QueueBusy(CockpitError):
    """Another process is running the queue (it will take what was just queued)."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"another cockpit (pid {pid if pid else '?'}) is running the merge queue")
        self.pid = pid


# -- where things live -------------------------------------------------------------------------
def merge_dir(repo: Repository) -> Path:
    return repo.layout.home / "merge"


def scratch_path(repo: Repository, name: str) -> Path:
    return merge_dir(repo) / name


def merge_log(repo: Repository, name: str, host: str | None = None) -> Path:
    """Where the gates' output of an agent's merges goes: beside its session log, or for a
    remote agent (which has no directory here) under ``.cockpit/remote/<host>/<agent>/``."""
    if host is not None:
        return repo.layout.home / "remote" / host / name / "merge.log"
    return repo.layout.agent_dir(name) / "merge.log"


def lock_path(repo: Repository) -> Path:
    return repo.layout.home / "queue.lock"


# -- the entries ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Slot:
    """One waiting entry as the runner works on it: a local agent's (``record`` set, ``host``
    None) or a remote agent's (``host`` set, ``record`` None)."""

    name: str
    host: str | None
    seq: int
    queued_at: str
    merging: dict | None
    record: Record | None = None

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.host, self.name)

    @property
    def label(self) -> str:
        """``NAME``, or ``NAME@HOST`` for a remote agent."""
        return self.name if self.host is None else f"{self.name}@{self.host}"


def _slot(item: Record | RemoteQueued) -> Slot:
    if isinstance(item, RemoteQueued):
        return Slot(item.name, item.host, item.queued_seq, item.queued_at, item.merging)
    return Slot(item.name, None, item.queued_seq, item.queued_at, item.merging, item)


def queued(repo: Repository) -> list[Slot]:
    """Every waiting entry, local and remote, in queue order."""
    history = repo.history()
    items: list[Record | RemoteQueued] = [r for r in history.records.values()
                                          if not r.discarded and r.merge_state == "queued"]
    items += [e for e in history.remote_queue.values() if e.merge_state == "queued"]
    return [_slot(item) for item in sorted(items, key=lambda item: item.queued_seq)]


def current(repo: Repository, slot: Slot) -> Slot | None:
    """``slot`` as the log shows it now, if it still waits under the same entry (a local agent
    leaves the queue when respawned or discarded)."""
    history = repo.history()
    item: Record | RemoteQueued | None
    if slot.host is None:
        record = history.records.get(slot.name)
        item = record if record is not None and not record.discarded else None
    else:
        item = history.remote_queue.get((slot.host, slot.name))
    if item is None or item.merge_state != "queued" or item.queued_seq != slot.seq:
        return None
    return _slot(item)


def journal(repo: Repository, slot: Slot, step: str, **data: Any) -> None:
    """Record one step of ``slot``'s entry (``candidate``, ``gate``, ``landing``, ``abandoned``,
    or an ending): ``merge.<step>`` of a local agent, ``remote.<step>`` (an ending:
    ``remote.merge`` with its ``state``) naming the host and the agent of a remote one."""
    if slot.host is None:
        repo.events.append(f"merge.{step}", slot.name, queued_seq=slot.seq, **data)
    elif step in ENDINGS:
        repo.events.append("remote.merge", None, agent_name=slot.name, host=slot.host, state=step,
                           queued_seq=slot.seq, **data)
    else:
        repo.events.append(f"remote.{step}", None, agent_name=slot.name, host=slot.host, queued_seq=slot.seq,
                           **data)


@dataclass(frozen=True)
class QueueEntry:
    """One pending candidate, as ``cockpit queue --json`` shows it."""

    position: int
    name: str
    state: str  # "queued", or "merging" for the one a running queue is working on
    queued_at: str
    host: str | None = None  # the host a remote agent runs on; None: this machine

    @property
    def label(self) -> str:
        """``NAME``, or ``NAME@HOST`` for a remote agent (as ``ls`` names them)."""
        return self.name if self.host is None else f"{self.name}@{self.host}"

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "name": self.name, "host": self.host, "state": self.state,
                "queued_at": self.queued_at}


def pending(repo: Repository) -> list[QueueEntry]:
    """The queue in order. Cheap: a replay of the event log (and one lock probe)."""
    slots = queued(repo)
    running = any(s.merging for s in slots) and runner_pid(repo) is not None
    return [QueueEntry(i + 1, s.name, "merging" if (s.merging and running) else "queued", s.queued_at, s.host)
            for i, s in enumerate(slots)]


def enqueue(repo: Repository, names: list[str], hosts: Mapping[str, str] | None = None
            ) -> list[tuple[str, int, bool]]:
    """Put agents in the queue in the given order: those ``hosts`` maps to a host as remote
    entries (the caller knows the host is configured), the others as local agents. Returns
    ``(name, position, newly_queued)``; an agent already waiting keeps its place. Unknown local
    names fail before anything is queued."""
    ordered = list(dict.fromkeys(names))
    hosts = hosts or {}
    for name in ordered:
        validate_name(name)
    with repo.locked():
        for name in ordered:
            if name not in hosts:
                repo.record(name)  # raises NotFound
        added = set()
        history = repo.history()
        for name in ordered:
            host = hosts.get(name)
            if host is None:
                if history.records[name].merge_state != "queued":
                    repo.events.append("merge.queued", name)
                    added.add(name)
            else:
                entry = history.remote_queue.get((host, name))
                if entry is None or entry.merge_state != "queued":
                    repo.events.append("remote.queued", None, agent_name=name, host=host)
                    added.add(name)
        positions = {s.key: i + 1 for i, s in enumerate(queued(repo))}
    return [(name, positions.get((hosts.get(name), name), 0), name in added) for name in ordered]


# -- the queue lock ------------------------------------------------------------------------------
class QueueLock:
    """``flock`` on ``.cockpit/queue.lock`` holding the runner's pid. The kernel drops it when the
    runner dies, so a crash never wedges the queue."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, wait: float = 0.3) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not lock.take(fd, wait, interval=0.02):  # rides over a momentary probe by runner_pid()
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def runner_pid(repo: Repository) -> int | None:
    """The pid of the process running the queue now, or None when nobody does."""
    path = lock_path(repo)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        return None
    finally:
        os.close(fd)
