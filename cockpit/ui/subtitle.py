"""A tile's status line (its border subtitle): the pieces, most important first, and as many of
them as fit the tile's width."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

from rich.text import Text

from cockpit.core.agent import Agent


def age(since: str | None, now: datetime) -> str | None:
    """``12s``, ``5m``, ``3h``, ``2d`` between an ISO timestamp and ``now``; None if unknown."""
    if not since:
        return None
    try:
        then = datetime.fromisoformat(since)
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def diff_text(diff: tuple[int, int, int] | None) -> str | None:
    """``3 files +40 −7`` (None when unknown)."""
    if diff is None:
        return None
    files, added, removed = diff
    return f"{files} file{'s' if files != 1 else ''} +{added} −{removed}"


MERGE_STATES = ("queued", "blocked", "merged", "conflict", "rejected")


def merge_detail(agent: Agent) -> str | None:
    """Why a merge ended as it did, in a few words: ``a.txt`` for a conflict, the gate and its
    reason for a rejection, the reason of a block. None when there is nothing to add."""
    if agent.state not in MERGE_STATES or not agent.merge or agent.state in ("queued", "merged"):
        return None
    merge = agent.merge
    if agent.state == "conflict" and merge.get("paths"):
        paths = [str(p) for p in merge["paths"]]
        return ", ".join(paths[:3]) + (f" +{len(paths) - 3}" if len(paths) > 3 else "")
    if agent.state == "rejected" and merge.get("gate"):
        reason = f" ({merge['reason']})" if merge.get("reason") else ""
        return f"{merge['gate']}{reason}"
    return str(merge["reason"]) if merge.get("reason") else None


def conflict_label(other: str, base: str) -> str:
    """Who a predicted conflict is with: the agent's name, or ``main (base)`` for its base
    branch (``":base"`` in the data: an agent may be named ``base``)."""
    return f"{base or 'base'} (base)" if other == ":base" else other


def conflict_badge(agent: Agent) -> str | None:
    """``⚔ api: src/auth.py``: the first merge conflict the conflict radar predicts for the
    agent, ``+2`` for the other files (with it or with others); None when it predicts none (or
    does not know)."""
    pairs = [(str(c.get("with")), str(path)) for c in agent.conflicts or [] for path in c.get("paths") or []]
    if not pairs:
        return None
    other, path = pairs[0]
    more = f" +{len(pairs) - 1}" if len(pairs) > 1 else ""
    return f"⚔ {conflict_label(other, agent.base)}: {path}{more}"


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


def subtitle_parts(agent: Agent, diff: tuple[int, int, int] | None, now: datetime | None,
                   pending: str | None = None, base_moved: int = 0) -> list[str]:
    """The pieces of a tile's subtitle as Textual markup, most important first.
    ``now=None`` leaves out the time-dependent pieces (for deterministic screenshots)."""
    detail = merge_detail(agent)
    label = f"{agent.state}: {_escape(detail)}" if detail else agent.state
    state = f"[bold $state-{agent.state}]● {label}[/]"
    if agent.process not in (agent.state, "running"):  # a merge state shown: the process's word beside it
        state += f" [$state-{agent.process}]{agent.process}[/]"
    if pending:
        state += f" [italic]{pending}…[/]"
    if agent.activity and agent.activity != agent.process and now is not None:  # time-dependent
        state += f" [$state-{agent.activity}]{_escape(agent.doing(48) or agent.activity)}[/]"  # and why
    parts = [state]
    if agent.state == "pending" and agent.blocked_by:
        parts.append(f"[$state-pending]waits for {_escape(agent.blocked_by)}[/]")
    elif agent.state == "unknown" and agent.reason:
        parts.append(f"[$state-unknown]{_escape(agent.reason)}[/]")
    elif agent.process in ("failed", "halted", "missing") and (agent.reason or "").startswith("setup: "):
        parts.append(f"[$state-failed]{_escape(agent.reason or '')}[/]")  # its setup failed: the agent never ran
    badge = conflict_badge(agent)
    if badge:  # before the rest: on a narrow tile this is what should still show
        parts.append(f"[bold $error]{_escape(badge)}[/]")
    parts.append(f"try {agent.tries}")  # explained in help (TRIES_LEGEND)
    if agent.tokens:  # what it costs (claude-code agents: from its transcripts)
        parts.append(agent.tokens)
    if agent.ports:
        parts.append(f"port {agent.ports[0]}" + (f" (+{len(agent.ports) - 1})" if len(agent.ports) > 1 else ""))
    if agent.out_of_scope:
        parts.append(f"[bold $error]⚠ {len(agent.out_of_scope)} out of scope[/]")
    if agent.collisions:
        # (an agent it is predicted to conflict with is named by the ⚔ badge already)
        clashing = {c.get("with") for c in agent.conflicts or []}
        others = sorted({o for c in agent.collisions for o in c["agents"]} - clashing)
        if others:
            parts.append(f"[bold $warning]⚠ collides with {', '.join(others)}[/]")
    if base_moved > 0:
        parts.append(f"[$warning]base +{base_moved}[/]")
    in_state = age(agent.state_since, now) if now is not None else None
    active = age(agent.last_activity, now) if now is not None else None
    if active:
        parts.append(f"{active} ago")
    text = diff_text(diff)
    if text:
        parts.append(text)
    if in_state:
        parts.append(f"for {in_state}")
    if agent.branch:
        parts.append(agent.branch)
    return parts


SUBTITLE_SEPARATOR = " · "


def fit_subtitle(parts: list[str], width: int) -> str:
    """Join as many leading parts as fit in ``width`` cells."""
    shown: list[str] = []
    used = 0
    for part in parts:
        cells = markup_cells(part) + (len(SUBTITLE_SEPARATOR) if shown else 0)
        if shown and used + cells > width:
            break
        shown.append(part)
        used += cells
    return SUBTITLE_SEPARATOR.join(shown)


@lru_cache(maxsize=4096)
def markup_cells(markup: str) -> int:
    """The width in cells of one subtitle part (its tags are balanced, so widths add up).
    Cached: parsing markup is slow, and every poll measures every tile's parts."""
    return Text.from_markup(_plain_markup(markup)).cell_len


def _plain_markup(markup: str) -> str:
    """Textual markup with ``$variable`` styles replaced, so Rich can measure it."""
    return re.sub(r"\[[^\]]*\$[^\]]*\]", "[b]", markup)
