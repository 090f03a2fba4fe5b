"""Command palette (``ctrl+p``): every action for every agent by name — "discard beta",
"pause alpha", "fail beta", "diff beta", "merge beta" — plus a new agent, help, quit, and a switch to
every cockpit theme. Textual's own commands are not offered (see ``CockpitApp.COMMANDS``).

The provider asks the app for the list (:meth:`CockpitApp.palette_commands`), so the palette
always matches the agents on screen and never touches the engine itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from textual.command import DiscoveryHit, Hit, Hits, Provider

AGENT_VERBS: tuple[tuple[str, str, str], ...] = (
    ("pause", "pause", "Freeze the agent's processes in place"),
    ("resume", "resume", "Continue a paused agent"),
    ("kill", "kill", "End the agent's processes and session (asks first)"),
    ("discard", "discard", "Archive, then remove worktree and branch (asks first)"),
    ("respawn", "respawn", "Start the next attempt"),
    ("fail", "mark_failed", "Mark the agent failed: counts towards max_failures (asks first)"),
    ("attach", "attach", "Attach this terminal to the agent's tmux session"),
    ("zoom", "zoom", "Show the agent full-screen"),
    ("diff", "diff", "Show what the agent changed against base"),
    ("merge", "merge", "Queue the agent for merging into base and run the queue"),
    ("screen view", "toggle_screen", "Switch between its log and its tmux screen"),
)
"""``(words in the palette, app agent action, help)`` offered for every agent."""


@dataclass(frozen=True)
class PaletteCommand:
    """One palette entry."""

    title: str
    help: str
    run: Callable[[], object]


class CockpitCommands(Provider):
    """Agent actions, fleet actions and themes."""

    def _commands(self) -> list[PaletteCommand]:
        return list(self.app.palette_commands())  # type: ignore[attr-defined]

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(command.title, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.run, help=command.help)
