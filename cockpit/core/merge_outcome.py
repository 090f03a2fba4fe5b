"""What the merge queue reports: an :class:`Outcome` per candidate that ended, and news on the
way. Views (``cockpit merge``, the TUI) show :attr:`Outcome.message` and choose how from
:attr:`Outcome.state` and :attr:`Outcome.succeeded`, never by reading the text."""

from __future__ import annotations

from dataclasses import dataclass

ENDINGS = ("merged", "blocked", "conflict", "rejected")
"""How a candidate ends (its ``merge.*`` event); the agent then leaves the queue."""
NEWS = ("rebuilding", "recovered", "abandoned", "predicted")
"""What the queue says on the way, the agent staying queued: base (or its branch) moved under
a candidate, which is built again; a dead runner's merge had landed and is being finished; a
dead runner's attempt was dropped; merge-tree predicts the candidate to conflict with base
(``paths``), or no longer (no paths)."""


@dataclass(frozen=True)
class Outcome:
    """What the queue reports about one agent: how its candidate ended (one of :data:`ENDINGS`,
    with the same fields as its ``merge.*`` event), or news on the way (one of :data:`NEWS`).
    Views decide how to show it from :attr:`state` and :attr:`succeeded`, never from the text."""

    name: str
    state: str
    reason: str | None = None
    paths: list[str] | None = None
    gate: str | None = None
    tail: str | None = None
    commit: str | None = None
    base: str = ""
    host: str | None = None
    """The host a remote agent runs on (its work landed here); None for this machine's agent."""

    @property
    def final(self) -> bool:
        """Whether the candidate ended (the agent left the queue), rather than news on the way."""
        return self.state in ENDINGS

    @property
    def succeeded(self) -> bool:
        """Whether the agent's work is in base now."""
        return self.state == "merged"

    @property
    def label(self) -> str:
        """``NAME``, or ``NAME@HOST`` for a remote agent (as ``cockpit queue`` names it)."""
        return self.name if self.host is None else f"{self.name}@{self.host}"

    @property
    def message(self) -> str:
        """:meth:`describe`: what a terminal or a notification shows."""
        return self.describe()

    def describe(self) -> str:
        """One line (and, for a red gate, the tail of its output) for a terminal."""
        if self.state == "merged":
            where = f"into {self.base} " if self.base else ""
            return f"{self.label}: merged {where}at {self.commit[:12] if self.commit else '?'}" + (
                f" ({self.reason})" if self.reason else "")
        if self.state == "conflict":
            return f"{self.label}: conflict in {', '.join(self.paths or [])}; base unchanged"
        if self.state == "rejected":
            head = f"{self.label}: rejected by gate {self.gate!r}: {self.reason}; base unchanged"
            tail = "\n".join("    " + line for line in (self.tail or "").splitlines()[-10:])
            return head + ("\n" + tail if tail else "")
        if self.state == "rebuilding":
            return f"{self.label}: {self.reason}; rebuilding on the new tip"
        if self.state == "recovered":
            return (f"{self.label}: the merge {self.reason} had landed: finished it "
                    f"({self.base} at {self.commit[:12] if self.commit else '?'})")
        if self.state == "predicted":
            when = f" ({self.reason})" if self.reason else ""
            if not self.paths:
                return f"{self.label}: no longer predicted to conflict with {self.base or 'base'}{when}"
            return f"{self.label}: predicted to conflict with {self.base or 'base'} in {', '.join(self.paths)}{when}"
        if self.state == "abandoned":
            return f"{self.label}: the merge {self.reason} was abandoned ({self.base} unchanged); it stays queued"
        return f"{self.label}: blocked: {self.reason}"
