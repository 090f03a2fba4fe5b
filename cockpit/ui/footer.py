"""The key bar at the bottom of every screen.

Textual's :class:`~textual.widgets.Footer` rebuilds all its key widgets (and re-applies CSS to
them) whenever the bindings *may* have changed, which includes every focus move. Moving between
tiles with the arrow keys changes nothing in the bar, but the rebuild made each such key cost a
full re-layout: under a log flood, most of a key press's time to the screen. This footer
rebuilds only when what it would show differs.

Help and quit come first, so a narrow terminal never cuts them off.

It also builds its keys already in the footer's size: Textual's keys start ``compact`` and are
then bound to the footer's setting, so each key had its CSS applied twice (about 1 ms a key,
most of the bar's cost at start-up).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


def shown_bindings(screen: Screen) -> tuple[tuple[object, ...], ...]:
    """What a footer on ``screen`` shows: each shown binding with its state, in order."""
    return tuple(
        (binding.key, binding.action, binding.description, binding.key_display, binding.group,
         enabled, tooltip)
        for (_node, binding, enabled, tooltip) in screen.active_bindings.values()
        if binding.show
    )


ALWAYS_SHOWN = ("help", "quit")
"""Actions the bar shows first, whatever the width (the app's ``?`` and ``q``, remapped or not)."""


class KeyFooter(Footer):
    """A :class:`~textual.widgets.Footer` that rebuilds only when its keys change."""

    _shown: tuple[tuple[object, ...], ...] | None = None

    def bindings_changed(self, screen: Screen) -> None:
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            shown = shown_bindings(screen)
            if self._bindings_ready and shown == self._shown:
                return
            self._shown = shown
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        widgets = []
        for widget in super().compose():
            # (only the keys bound to the footer's ``compact``: the palette key keeps its own)
            if isinstance(widget, FooterKey) and "compact" in (widget._reactive_connect or {}):
                widget.set_reactive(FooterKey.compact, self.compact)
            widgets.append(widget)
        # Help and quit first: a narrow terminal cuts the bar's end, and those two must show.
        first = [w for w in widgets if isinstance(w, FooterKey) and w.action in ALWAYS_SHOWN]
        yield from first
        yield from (w for w in widgets if not any(w is f for f in first))
