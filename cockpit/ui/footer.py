"""The key bar at the bottom of every screen.

Textual's :class:`~textual.widgets.Footer` rebuilds all its key widgets (and re-applies CSS to
them) whenever the bindings *may* have changed, which includes every focus move. Moving between
tiles with the arrow keys changes nothing in the bar, but the rebuild made each such key cost a
full re-layout: under a log flood, most of a key press's time to the screen. This footer
rebuilds only when what it would show differs.

Help and quit come first, so a narrow terminal never cuts them off.

It also builds its keys already in the footer's size: Textual's keys start ``compact`` and are
then bound to the footer's setting, so each key had its CSS applied twice (most of the bar's
cost at start-up).

Both rely on how Textual's Footer works inside (:mod:`cockpit.ui.internals`); with
``COCKPIT_STOCK_WIDGETS=1``, :func:`key_footer` gives Textual's own Footer instead.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from cockpit.ui import internals


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
    _built = False
    """Footer's own bindings_changed has run once (before that, Footer composes nothing)."""

    def bindings_changed(self, screen: Screen) -> None:
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            shown = shown_bindings(screen)
            if self._built and shown == self._shown:
                return
            self._shown = shown
        super().bindings_changed(screen)
        self._built = True

    def compose(self) -> ComposeResult:
        key_type = internals.FooterKey
        assert key_type is not None  # (key_footer() gives a stock Footer otherwise)
        widgets = []
        for widget in super().compose():
            # (only the keys bound to the footer's ``compact``: the palette key keeps its own)
            if isinstance(widget, key_type) and internals.follows_footer_compact(widget):
                widget.set_reactive(key_type.compact, self.compact)  # type: ignore[attr-defined]
            widgets.append(widget)
        # Help and quit first: a narrow terminal cuts the bar's end, and those two must show.
        first = [w for w in widgets if isinstance(w, key_type) and w.action in ALWAYS_SHOWN]  # type: ignore[attr-defined]
        yield from first
        yield from (w for w in widgets if not any(w is f for f in first))


def key_footer() -> Footer:
    """The footer for a screen: :class:`KeyFooter`, or Textual's own with stock widgets (or
    when Textual's FooterKey has moved)."""
    if internals.stock_widgets() or internals.FooterKey is None:
        return Footer()
    return KeyFooter()
