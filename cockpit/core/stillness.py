"""Whether anything an idle fleet could change did change, for the price of a few ``stat`` calls.

An agent that does something leaves a trace in its directory under ``.cockpit/agents/NAME/``:
its terminal output grows ``session.log``, its hooks rewrite their state file, a setup writes its
status. So a view (the TUI's poll, the watcher's tick) looks at the size and modification time
of every file there (one ``scandir`` per agent, no child process) and does the expensive work —
re-reading the agents' processes, ``git`` in their worktrees, the conflict radar — only for the
agents whose look changed, when an event arrived, when an activity threshold
(``idle_after``, ``stall_after``) passes, or after a fallback interval (what leaves no trace
there: files edited by hand in a worktree, a process that waits without printing).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime

from cockpit.core.layout import Layout

Look = tuple[tuple[str, int, int], ...]
"""``(file name, size, mtime in ns)`` of each entry of an agent's directory, sorted."""

LOG = "session.log"
MARGIN_S = 0.05
"""Added to each threshold moment, so that the look taken then is past it for certain (times
in different forms round differently)."""


def look_at(layout: Layout, name: str) -> Look:
    """One agent's look (empty when its directory is gone)."""
    found: list[tuple[str, int, int]] = []
    try:
        with os.scandir(layout.agent_dir(name)) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                found.append((entry.name, st.st_size, st.st_mtime_ns))
    except OSError:
        return ()
    found.sort()
    return tuple(found)


def look(layout: Layout, names: Iterable[str]) -> dict[str, Look]:
    """Every named agent's look."""
    return {name: look_at(layout, name) for name in names}


def changed(before: Mapping[str, Look], after: Mapping[str, Look]) -> set[str]:
    """The agents whose look differs (or that are in only one of the two)."""
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


def log_mtime(found: Look) -> float | None:
    """The session.log's modification time in that look (epoch seconds), if it has one."""
    for name, _, mtime in found:
        if name == LOG:
            return mtime / 1e9
    return None


def next_threshold(looks: Mapping[str, Look], since: Mapping[str, str | None], thresholds: Iterable[float],
                   now: float) -> float | None:
    """The first moment after ``now`` at which an agent's silence (from its log's last write or
    its last (re)start, ``since`` in ISO 8601, whichever is later; see
    :func:`cockpit.core.activity.silence_start`) reaches one of ``thresholds``: its activity
    may change then without anything being written. None when no such moment is ahead."""
    limits = sorted(set(thresholds))
    upcoming: float | None = None
    for name, found in looks.items():
        starts = [t for t in (log_mtime(found),) if t is not None]
        stamp = since.get(name)
        if stamp:
            try:
                starts.append(datetime.fromisoformat(stamp).timestamp())
            except ValueError:
                pass
        if not starts:
            continue
        start = max(starts)
        for limit in limits:
            at = start + limit + MARGIN_S
            if at > now:
                upcoming = at if upcoming is None else min(upcoming, at)
                break
    return upcoming
