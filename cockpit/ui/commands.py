"""Command palette (``ctrl+p``): every action for every agent by name — "discard beta",
"pause alpha", "fail beta", "diff beta", "merge beta" — plus a new agent, help, quit, and a switch to
every cockpit theme. Textual's own commands are not offered (see ``CockpitApp.COMMANDS``).

Textual makes the provider and hands it the app; the provider asks it for the list (a
:class:`PaletteSource`, i.e. :meth:`CockpitApp.palette_commands`), so the palette always matches
the agents on screen and never touches the engine itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class PaletteCommand:
    """One palette entry."""

    title: str
    help: str
    run: Callable[[], object]


@runtime_checkable
class PaletteSource(Protocol):
    """What the palette needs of the app."""

    def palette_commands(self) -> list[PaletteCommand]: ...


class CockpitCommands(Provider):
    """Agent actions, fleet actions and themes."""

    def _commands(self) -> list[PaletteCommand]:
        source = self.app
        assert isinstance(source, PaletteSource)
        return list(source.palette_commands())

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(command.title, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.run, help=command.help)
