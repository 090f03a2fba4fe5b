"""The line at the top of the grid: repository, base, agents per state, who needs the user, the
merge queue, and how many tiles are scrolled out of sight."""

from __future__ import annotations

from collections import Counter

from textual.widgets import Static

from cockpit.core.agent import Agent, short_count

STATE_ORDER = ("pending", "running", "paused", "unknown", "exited", "failed", "killed", "halted", "missing")


class FleetHeader(Static):
    """Repository, base, agents per state and how many tiles are scrolled off the top (↑) and the
    bottom (↓) of the grid."""

    DEFAULT_CSS = """
    FleetHeader { dock: top; height: 1; background: $panel; color: $foreground; padding: 0 1; }
    """

    _shown = ""

    def show(self, repo: str, agents: list[Agent], hidden: tuple[int, int], activity: bool = True,
             queue: list[str] | None = None) -> None:
        bases = Counter(a.base for a in agents if a.base)
        base = f" · base [b]{bases.most_common(1)[0][0]}[/]" if bases else ""
        counts = Counter(a.state for a in agents)
        states = sorted(counts, key=lambda s: STATE_ORDER.index(s) if s in STATE_ORDER else 99)
        summary = "  ".join(f"[$state-{s}]●[/] {counts[s]} {s}" for s in states) or "no agents (n: new)"
        needs = ("waiting", "rate-limited", "error", "stalled")  # who needs the user (w focuses them)
        attention = Counter(a.activity for a in agents if a.activity in needs)
        if attention and activity:  # time-dependent
            summary += " │ " + "  ".join(f"[b $state-{k}]{attention[k]} {k}[/]" for k in needs if attention[k])
        spent = [a.usage for a in agents if a.usage]
        if spent:  # what the fleet costs
            summary += f" │ Σ {short_count(sum(u.get('counted_tokens', 0) for u in spent))} tokens"
        if queue:  # the merge queue, in order
            summary += " │ merge queue: " + " → ".join(queue[:5]) + (f" +{len(queue) - 5}" if len(queue) > 5 else "")
        above, below = hidden  # tiles scrolled off the top, off the bottom
        arrows = " ".join(filter(None, (f"↑ {above}" if above else "", f"↓ {below}" if below else "")))
        more = f"  [b]{arrows} more[/]" if arrows else ""
        text = f"[b]cockpit[/] · {repo}{base} │ {summary}{more}"
        if text != self._shown:  # called every frame: repaint only on change
            self._shown = text
            self.update(text)
