"""How a tile paints its rows fast: :class:`RowCache`.

A log tile repaints many times a second with all its body rows moved up by one, and Textual's
per-row styling costs several times a cached row. So the frame (the border rows, and the border
and padding around a body row) comes from Textual's own renderer only when the tile was
refreshed as a whole; a body row is that frame around a strip cached per log line. (That relies
on when Textual refreshes a widget: see :mod:`cockpit.ui.internals`.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.color import Color
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from cockpit.ui.internals import CycleFreeStrip


@dataclass(frozen=True)
class Frame:
    """A tile's frame as Textual rendered it: every row (border rows as they are), and the
    border and padding on either side of a body row, with what body rows are styled with."""

    size: tuple[int, int]
    rows: list[Strip | None]
    """Every row of the tile; body rows other than the first are None (never drawn by Textual)."""
    prefix: Strip
    suffix: Strip
    style: Style
    background: Color
    filters: tuple[object, ...]

    @property
    def body(self) -> tuple[object, ...]:
        """What a body row's look depends on: when it is unchanged, cached rows stay valid."""
        return (self.size[0], tuple(self.prefix), tuple(self.suffix), self.style, self.background,
                self.filters)

    @classmethod
    def of(cls, widget: Widget, rows: list[Strip | None]) -> Frame:
        width, height = widget.outer_size
        gutter = widget.styles.gutter
        empty_body_row = rows[gutter.top]  # the widget draws every body row blank for its frame
        assert empty_body_row is not None
        return cls((width, height), rows, empty_body_row.crop(0, gutter.left),
                   empty_body_row.crop(width - gutter.right, width), widget.rich_style,
                   widget.background_colors[1], tuple(widget.get_line_filters()))


class RowCache:
    """One tile's frame and its body rows as last painted."""

    def __init__(self) -> None:
        self.frame: Frame | None = None
        """The border and padding as last rendered (None: render again)."""
        self._strips: dict[object, Strip] = {}
        """Body rows as last painted, by their line's content (what the next paint reuses)."""

    def invalidate(self) -> None:
        """The frame may have changed (a whole refresh, new styles): render it again."""
        self.frame = None

    def paint(self, widget: Widget, crop: Region, shown: list[Text], console: Console,
              render_frame: Callable[[Region], list[Strip]]) -> list[Strip]:
        """The rows of ``widget`` in ``crop``: ``shown`` as its body, top to bottom.
        ``render_frame`` is Textual's own renderer of the widget (whose body rows are blank)."""
        width, height = widget.outer_size
        gutter = widget.styles.gutter
        top, bottom = gutter.top, height - gutter.bottom
        content_width = width - gutter.left - gutter.right
        if bottom <= top or content_width <= 0:
            return render_frame(crop)
        frame = self.frame
        if frame is None or frame.size != (width, height):
            # The border rows above, one (empty) body row, the border rows below: Textual
            # styles each row it draws, so the body rows between are not asked for.
            rows = [*render_frame(Region(0, 0, width, top + 1)),
                    *([None] * (bottom - top - 1)),
                    *render_frame(Region(0, bottom, width, height - bottom))]
            rows = [None if row is None else CycleFreeStrip.join([row]) for row in rows]
            old, frame = frame, Frame.of(widget, rows)
            if old is None or old.body != frame.body:  # e.g. focus: not a new subtitle
                self._strips.clear()
            self.frame = frame
        strips = []
        painted: dict[object, Strip] = {}
        for y in crop.line_range:
            if top <= y < bottom:
                strips.append(self._body_row(shown, y - top, frame, content_width, painted, console))
            else:
                strips.append(frame.rows[y])  # type: ignore[arg-type]  # a border row
        if crop.line_range == range(height):
            # Keep only the rows painted now: the next paint shows most of them again, one or
            # two rows up; older rows would only keep strips (each with caches of its own)
            # alive for the garbage collector to walk through.
            self._strips = painted
        if crop.column_span != (0, width):
            strips = [strip.crop(crop.x, crop.right) for strip in strips]
        return strips

    def _body_row(self, shown: list[Text], index: int, frame: Frame, width: int, painted: dict[object, Strip],
                  console: Console) -> Strip:
        line = shown[index] if index < len(shown) else None
        key = None if line is None else (line.plain, tuple(line.spans), line.style)
        row = self._strips.get(key)
        if row is None:  # built from segments: under a flood every row of every tile is new
            style = frame.style
            if line is None:
                body = [Segment(" " * width, style)]
            else:
                body = Segment.adjust_line_length(
                    list(Segment.apply_style(line.render(console), style)), width, style)
            for line_filter in frame.filters:
                body = line_filter.apply(body, frame.background)
            row = CycleFreeStrip([*frame.prefix, *body, *frame.suffix], frame.size[0])
            self._strips[key] = row
        painted[key] = row
        return row
