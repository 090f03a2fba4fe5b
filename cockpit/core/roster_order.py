"""The order and the filter of the agents a view shows: attention first, by name, or by recent
output; narrowed by name, state or flag; re-sorted at most every few seconds so rows do not jump
under the user's eyes. Pure: no I/O, no UI (the TUI's grid and list both use it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cockpit.core.activity import NEEDS_USER
from cockpit.core.agent import Agent, name_order

SORTS = ("attention", "name", "recent")
"""The orders ``o`` cycles through: attention first, natural name order, most recent output first."""
RESORT_INTERVAL = 2.0
"""An order is re-sorted at most this often (seconds), unless the user asked for another order."""
MERGE_FLAGS = ("queued", "blocked", "merged", "conflict", "rejected")


def attention_group(agent: Agent) -> int:
    """0 waiting for the user (or rate-limited, or stopped by an error), 1 failed or halted,
    2 stalled, 3 anything else: the groups of the attention order."""
    if agent.activity in NEEDS_USER:
        return 0
    if agent.process in ("failed", "halted"):
        return 1
    if agent.activity == "stalled":
        return 2
    return 3


def sort_key(agent: Agent, sort: str) -> tuple:
    """The key ``sort`` orders agents by; ties always fall back to natural name order."""
    if sort == "attention":
        return (attention_group(agent), name_order(agent.name))
    if sort == "recent":  # ISO 8601 UTC strings sort as times; none at all sorts last
        recent = agent.last_activity or ""
        return (0 if recent else 1, _descending(recent), name_order(agent.name))
    if sort == "name":
        return (name_order(agent.name),)
    raise ValueError(f"unknown sort {sort!r} (known: {', '.join(SORTS)})")


def _descending(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


def ordered(agents: Iterable[Agent], sort: str = "attention") -> list[Agent]:
    """``agents`` in ``sort`` order."""
    return sorted(agents, key=lambda agent: sort_key(agent, sort))


def next_sort(sort: str) -> str:
    """The order after ``sort`` in :data:`SORTS` (wrapping)."""
    return SORTS[(SORTS.index(sort) + 1) % len(SORTS)] if sort in SORTS else SORTS[0]


def flags(agent: Agent) -> list[str]:
    """Short words for what is notable about an agent beyond its state: ``scope`` (edits out of
    its scope), ``collision`` (files another agent changed too), ``conflict`` (a merge conflict
    the conflict radar predicts), and its merge state (``queued``, ``merged``, ``rejected``, …)."""
    found = []
    if agent.out_of_scope:
        found.append("scope")
    if agent.collisions:
        found.append("collision")
    if agent.conflicts:
        found.append("conflict")
    if agent.state in MERGE_FLAGS and agent.state not in found:
        found.append(agent.state)
    return found


def matches(agent: Agent, query: str) -> bool:
    """Whether ``agent`` passes the filter ``query``: every word of it (case-insensitive) is part
    of the agent's name, or is its state, process, activity or one of its :func:`flags`
    (``waiting``, ``failed``, ``conflict``, ``scope``…). An empty query passes everything."""
    words = query.lower().split()
    if not words:
        return True
    known = {agent.state, agent.process, agent.activity or "", *flags(agent)}
    if agent.activity in NEEDS_USER:
        known.add("attention")
    name = agent.name.lower()
    return all(word in name or word in known for word in words)


def filtered(agents: Iterable[Agent], query: str) -> list[Agent]:
    return [agent for agent in agents if matches(agent, query)]


@dataclass
class StableOrder:
    """An order that changes at most every :data:`RESORT_INTERVAL` seconds: between re-sorts the
    agents keep their places, a new agent is put where the order would put it among them, a
    removed one simply leaves. A new ``sort`` (the user asked) re-sorts at once."""

    sort: str = "attention"
    interval: float = RESORT_INTERVAL
    names: list[str] = field(default_factory=list)
    sorted_at: float | None = None

    def arrange(self, agents: Sequence[Agent], now: float, sort: str | None = None) -> list[Agent]:
        """``agents`` in the order shown now (``now``: a monotonic clock in seconds)."""
        by_name = {agent.name: agent for agent in agents}
        if sort is not None and sort != self.sort:
            self.sort, self.sorted_at = sort, None
        if self.sorted_at is None or now - self.sorted_at >= self.interval:
            fresh = [agent.name for agent in ordered(agents, self.sort)]
            if fresh != self.names or self.sorted_at is None:
                self.sorted_at = now
            self.names = fresh
        else:
            kept = [name for name in self.names if name in by_name]
            for agent in ordered((a for a in agents if a.name not in set(kept)), self.sort):
                key = sort_key(agent, self.sort)
                at = next((i for i, name in enumerate(kept) if sort_key(by_name[name], self.sort) > key), len(kept))
                kept.insert(at, agent.name)
            self.names = kept
        return [by_name[name] for name in self.names]

    def resort_now(self) -> None:
        """Re-sort at the next :meth:`arrange`, whatever the time."""
        self.sorted_at = None
