"""``cockpit wait NAME --for waiting|idle|exited``: block until an agent gets there.

Polls the reconciled fleet (which records exits as it sees them), so it needs neither the
watcher nor an open cockpit. Returns as soon as the target holds — at once if it already does —
and gives up at once when the target can no longer be reached: the agent was discarded, or its
process ended while waiting for an activity.
"""

from __future__ import annotations

import time

from cockpit.core import roster
from cockpit.core.activity import NEEDS_USER
from cockpit.core.errors import CockpitError, NotFound
from cockpit.core.repository import Repository
from cockpit.core.spec import validate_name
from cockpit.core.state import LIVE, PENDING

TARGETS = ("waiting", "idle", "exited")
POLL = 0.2


class Unreachable(CockpitError):
    """The agent can no longer get to the awaited activity or state."""


class TimedOut(CockpitError):
    """The agent did not get there in time."""


def check(repo: Repository, name: str, target: str) -> bool:
    """True when ``name`` is at ``target`` now, False when it may still get there. Raises
    :class:`Unreachable` when it cannot (discarded; ended, for an activity)."""
    agents = {a.name: a for a in roster.agents(repo)}
    record = repo.history().records.get(name)
    agent = agents.get(name)
    if agent is None or record is None or record.discarded:
        raise Unreachable(f"agent {name!r} no longer exists")
    ended = record.state not in LIVE and record.state != PENDING  # exited, failed, killed or halted, as recorded
    if target == "exited":
        return ended
    if target == "waiting" and agent.activity in NEEDS_USER:  # at its prompt until someone acts
        return True
    if target == "idle" and agent.activity in ("idle", "stalled"):
        return True
    if ended:
        raise Unreachable(f"agent {name!r} has ended ({agent.state}): it will not be {target}")
    return False


def wait_for(repo: Repository, name: str, target: str, timeout: float | None = None,
             poll: float = POLL) -> None:
    """Return once ``name`` is at ``target``; raise :class:`TimedOut` after ``timeout`` seconds
    (None: never), :class:`Unreachable` when it cannot get there, :class:`NotFound` for an
    unknown agent."""
    validate_name(name)
    if target not in TARGETS:
        raise CockpitError(f"--for must be one of {', '.join(TARGETS)}, not {target!r}")
    record = repo.history().records.get(name)
    if record is None or record.discarded:
        raise NotFound(f"no agent named {name!r} (see 'cockpit ls')")
    deadline = None if timeout is None else time.monotonic() + timeout
    while not check(repo, name, target):
        if deadline is not None and time.monotonic() >= deadline:
            raise TimedOut(f"timed out after {timeout:g}s waiting for {name} to be {target} ({_now(repo, name)})")
        pause = poll if deadline is None else min(poll, max(0.0, deadline - time.monotonic()))
        time.sleep(pause)


def _now(repo: Repository, name: str) -> str:
    """What ``name`` is doing, for a timeout's message (a paused agent never gets idle or to its
    prompt until someone resumes it: say so rather than leave the user guessing)."""
    agent = next((a for a in roster.agents(repo, observe=False) if a.name == name), None)
    if agent is None:
        return "it no longer exists"
    if agent.state == "paused":
        return "it is paused: 'cockpit resume' it first"
    return f"it is {agent.activity or agent.state}"
