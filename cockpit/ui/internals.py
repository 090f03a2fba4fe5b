"""Every place cockpit leans on Textual's or pyte's internals, in one module.

cockpit pins textual and pyte exactly. Where their public API is not enough (a footer that does
not rebuild on every focus move, tile rows that leave no cyclic garbage, a parser shortcut), the
private name is touched here and only here, and :data:`ASSUMPTIONS` says what is assumed, why,
and which canary test checks it against the installed library: an upgrade that breaks one fails
its canary by name (``make test-latest`` runs the suite against the newest Textual).

``COCKPIT_STOCK_WIDGETS=1`` runs the TUI without any of the Textual ones: Textual's own
:class:`~textual.widgets.Footer` and default screen, plain strips, tiles painted the way Textual
paints any widget, CPython's own garbage-collector settings. It is slower under load, and the
footer may cut help and quit off a narrow terminal; it is there to keep cockpit usable after an
upgrade broke an assumption, until cockpit catches up. (The snapshot tests are taken without it.)
pyte has no such switch: it is pinned exactly, and its canaries guard a deliberate upgrade.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.reactive import Reactive
from textual.screen import Screen
from textual.strip import Strip

if TYPE_CHECKING:
    from textual.widget import Widget

STOCK_ENV = "COCKPIT_STOCK_WIDGETS"


def stock_widgets() -> bool:
    """Whether to run on Textual's stock behaviour only (``COCKPIT_STOCK_WIDGETS`` set, and not
    to ``0``). Read when the app, a tile or a footer is made."""
    return os.environ.get(STOCK_ENV, "") not in ("", "0")


@dataclass(frozen=True)
class Assumption:
    """One thing cockpit relies on that the library does not promise."""

    name: str
    library: str
    relies_on: str
    why: str
    canary: str
    """``tests/FILE.py::test_name``: fails when the installed library no longer does this."""


TEXTUAL = "textual"
PYTE = "pyte"

ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption(
        "footer-key", TEXTUAL,
        "FooterKey, the widget Footer.compose yields per key, lives in the private module "
        "textual.widgets._footer",
        "KeyFooter (cockpit.ui.footer) puts help and quit first and builds keys in the footer's size",
        "tests/test_internals.py::test_footer_composes_footer_keys_from_the_private_module"),
    Assumption(
        "footer-compact-binding", TEXTUAL,
        "a FooterKey data-bound to its footer's compact has 'compact' in its private _reactive_connect "
        "(every key but the command palette's)",
        "KeyFooter sets those keys' compact before they mount, so their CSS is applied once, not twice",
        "tests/test_internals.py::test_footer_keys_bound_to_compact_show_in_reactive_connect"),
    Assumption(
        "footer-rebuilds", TEXTUAL,
        "Footer.bindings_changed(screen) recomposes the whole footer, even when nothing it shows changed, "
        "and Footer.compose yields nothing until bindings_changed first ran",
        "KeyFooter skips the rebuild when its keys are unchanged (every focus move asked for one)",
        "tests/test_internals.py::test_footer_rebuilds_on_every_bindings_change"),
    Assumption(
        "strip-divide-cycle", TEXTUAL,
        "Strip.divide caches [self] inside the strip (its private _divide_cache) for a cut at its end",
        "that cache is a reference cycle per painted row; CycleFreeStrip answers the cut without it",
        "tests/test_ui_paint.py::test_painted_rows_leave_no_cyclic_garbage"),
    Assumption(
        "default-screen-id", TEXTUAL,
        "App.get_default_screen() returns a Screen with the id '_default'",
        "the grid's own screen replaces it and keeps its id",
        "tests/test_internals.py::test_the_default_screen_id"),
    Assumption(
        "screen-focused-reactive", TEXTUAL,
        "Screen.focused is a Reactive that repaints the whole screen on change, and its watcher "
        "(_watch_focused) still runs when a subclass redeclares it with repaint=False",
        "QuietFocusScreen: a focus move repaints only the two tiles involved, not every tile",
        "tests/test_internals.py::test_a_redeclared_focused_still_refreshes_bindings_without_a_repaint"),
    Assumption(
        "whole-refresh-on-frame-change", TEXTUAL,
        "Textual refreshes a widget as a whole (refresh() without regions) when its border title or "
        "subtitle change, and refreshes it so or calls notify_style_update() when its styles change "
        "(focus, theme); the compositor paints a widget through Widget.render_lines(crop)",
        "a tile paints its border and padding from a cached frame (cockpit.ui.tile_rows), rebuilt only then",
        "tests/test_internals.py::test_textual_refreshes_a_widget_whole_when_its_frame_changes"),
    Assumption(
        "pyte-parser-state", PYTE,
        "Stream._taking_plain_text (private) is true exactly when the parser is between sequences",
        "the CSI shortcut (cockpit.ui.terminal.stream.FastStream) parses a sequence itself only then",
        "tests/test_internals.py::test_pyte_parser_state_says_when_it_is_between_sequences"),
    Assumption(
        "pyte-wcwidth", PYTE,
        "pyte.screens.wcwidth is the cached wcwidth.wcwidth that Screen.draw measures characters with",
        "characters pyte cannot place are dropped before drawing, by the same measure",
        "tests/test_internals.py::test_pyte_measures_characters_with_wcwidth"),
    Assumption(
        "pyte-sgr-105-name", PYTE,
        "pyte names the colour of SGR 105 'bfightmagenta' (sic)",
        "the conversion to Rich reads it as bright magenta",
        "tests/test_internals.py::test_pyte_misspells_bright_magenta"),
    Assumption(
        "pyte-buffer-mapping", PYTE,
        "pyte's Screen reads and writes Screen.buffer only through the mapping protocol, and rows "
        "are pyte.screens.StaticDefaultDict with a .default cell",
        "the log screen scrolls its buffer in O(1) instead of moving every row",
        "tests/test_terminal.py::test_fast_paths_match_pyte"),
    Assumption(
        "pyte-missing-cells", PYTE,
        "pyte reads a missing cell as the row's blank, except where it walks a row's cells: erasing "
        "the display restyles only the cells a row has, inserting and deleting characters move them",
        "the line-erase shortcut drops erased cells and gives them back before those operations",
        "tests/test_terminal.py::test_the_line_erase_shortcut_matches_pyte_when_the_screen_is_cleared_later"),
)
"""Everything above, one entry each; ``tests/test_internals.py`` checks each names a canary."""


# -- Textual: the footer -----------------------------------------------------------------------
def _footer_key_type() -> type[Widget] | None:
    try:
        from textual.widgets._footer import FooterKey
    except ImportError:  # moved: the footer-key canary fails; KeyFooter steps aside
        return None
    return FooterKey


FooterKey: type[Widget] | None = _footer_key_type()
"""Textual's FooterKey (private module), or None when it is gone."""


def follows_footer_compact(key: Widget) -> bool:
    """Whether a footer key is data-bound to its footer's ``compact`` (all but the palette key)."""
    return "compact" in (getattr(key, "_reactive_connect", None) or {})


# -- Textual: painting -------------------------------------------------------------------------
class CycleFreeStrip(Strip):
    """A painted row of a tile.

    Textual's ``Strip.divide`` answers a cut at the strip's own end with ``[self]`` and caches
    that list in the strip: a reference cycle, which only a full garbage collection frees. The
    compositor makes that cut on every row of every tile, and tiles make and drop rows many
    times a second, so under a log flood that was most of the app's cyclic garbage (see
    :mod:`cockpit.ui.collector`). This strip answers that cut without the cache."""

    __slots__ = ()

    def divide(self, cuts: Iterable[int]) -> Sequence[Strip]:
        cuts = [cut for cut in cuts if cut <= self.cell_length]
        if cuts == [self.cell_length]:
            return [self]
        return super().divide(cuts)


# -- Textual: screens --------------------------------------------------------------------------
DEFAULT_SCREEN_ID = "_default"
"""The id Textual gives the app's default screen (``App.get_default_screen``)."""


class QuietFocusScreen(Screen):
    """A screen that does not repaint itself as a whole when its focus moves.

    Textual repaints a whole screen when its focus moves; in cockpit's grid only the two tiles
    involved need it (their ``:focus`` style). Under a flood of log output that full-screen
    frame was most of what an arrow key cost before it showed."""

    focused: Reactive[Widget | None] = Reactive(None, repaint=False)


# -- pyte ----------------------------------------------------------------------------------------
def between_sequences(stream: Any) -> bool:
    """Whether a pyte stream's parser is in its ground state (not inside an escape sequence)."""
    return bool(stream._taking_plain_text)


def _pyte_wcwidth() -> Any:
    from pyte.screens import wcwidth
    return wcwidth


pyte_wcwidth = _pyte_wcwidth()
"""The character-width function pyte draws with (``pyte.screens.wcwidth``)."""

PYTE_BRIGHT_MAGENTA = "bfightmagenta"
"""pyte 0.8.2's name for the colour of SGR 105 (sic)."""
