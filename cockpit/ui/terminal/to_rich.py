"""pyte's screen cells as Rich text: colours and attributes kept, trailing blanks dropped."""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pyte.screens import Char
from rich.color import Color
from rich.style import Style
from rich.text import Span, Text

from cockpit.ui.internals import PYTE_BRIGHT_MAGENTA

_ANSI_NAMES = {
    "black": "black", "red": "red", "green": "green", "brown": "yellow",
    "blue": "blue", "magenta": "magenta", "cyan": "cyan", "white": "white",
}
_HEX_COLOR = re.compile(r"[0-9a-fA-F]{6}")


def _color(name: str) -> Color | None:
    """pyte colour -> Rich colour: "red"/"brightred" are the 16 theme colours, 256-colour and
    truecolor arrive from pyte as "rrggbb"; "default" (and anything malformed) is None."""
    if name == "default":
        return None
    if name == PYTE_BRIGHT_MAGENTA:  # sic: pyte's name for SGR 105
        name = "brightmagenta"
    bright = name.startswith("bright")
    base = _ANSI_NAMES.get(name[6:] if bright else name)
    if base is not None:
        return Color.parse(f"bright_{base}" if bright else base)
    if _HEX_COLOR.fullmatch(name):  # pyte formats out-of-range truecolor as e.g. "3e8000ff"
        return Color.from_rgb(int(name[0:2], 16), int(name[2:4], 16), int(name[4:6], 16))
    return None


@lru_cache(maxsize=4096)
def _style(attrs: tuple[Any, ...]) -> Style | None:
    """Style for pyte's ``Char`` fields after ``data``; None when it is the default look."""
    fg, bg, bold, italics, underscore, strikethrough, reverse, blink = attrs
    style = Style(
        color=_color(fg), bgcolor=_color(bg),
        bold=bold or None, italic=italics or None, underline=underscore or None,
        strike=strikethrough or None, reverse=reverse or None, blink=blink or None,
    )
    return style or None


_EMPTY_CELL = Char(" ")
_DATA = operator.itemgetter(0)
_ATTRS = operator.itemgetter(1, 2, 3, 4, 5, 6, 7, 8)  # Char fields after data, as a tuple


@lru_cache(maxsize=4096)
def _shows_background(attrs: tuple[Any, ...]) -> bool:
    """Whether a space with these attributes looks any different from an empty cell."""
    _fg, bg, _bold, _italics, underscore, strikethrough, reverse, _blink = attrs
    return bg != "default" or underscore or strikethrough or reverse



def row_text(row: Mapping[int, Char] | None, columns: int) -> Text:
    """One screen row as Text; trailing spaces are dropped unless they show a colour."""
    if not row:
        return Text()
    width = min(max(row) + 1, columns)
    empty = getattr(row, "default", _EMPTY_CELL)  # pyte's rows know their blank (reverse screen)
    cells = map(row.get, range(width), itertools.repeat(empty, width))
    # Runs of equal attributes; the "" cells after wide characters vanish in the join.
    runs = [(attrs, "".join(map(_DATA, group))) for attrs, group in itertools.groupby(cells, _ATTRS)]
    while runs and not _shows_background(runs[-1][0]):
        attrs, text = runs[-1]
        text = text.rstrip(" ")
        if text:
            runs[-1] = (attrs, text)
            break
        runs.pop()
    spans: list[Span] = []
    offset = 0
    for attrs, text in runs:
        style = _style(attrs)
        if style is not None and text:
            spans.append(Span(offset, offset + len(text), style))
        offset += len(text)
    return Text("".join(text for _attrs, text in runs), spans=spans)
