"""The emulated screen: a pyte screen made for reading a log (see :class:`LogScreen`)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import pyte
from pyte import charsets, modes
from pyte.screens import Char, Margins, StaticDefaultDict

from cockpit.ui.internals import pyte_wcwidth
from cockpit.ui.terminal.to_rich import row_text

_ALTERNATE_SCREEN_MODES = frozenset({47, 1047, 1049})
# DECCOLM (?3) would resize the screen to 80/132 columns; the width is the caller's choice.
_IGNORED_PRIVATE_MODES = _ALTERNATE_SCREEN_MODES | {3}


def drawable(text: str) -> tuple[str, bool]:
    """Drop the characters pyte's ``draw`` cannot place; also say if all are one cell wide.

    pyte stops drawing at the first character whose width is 0 or -1 that is not a combining
    mark, and silently loses the rest of the text run: "⚠️ Warning" (with the emoji variation
    selector U+FE0F) would render as just "⚠", a zero-width space or a stray control byte
    would truncate a line.
    """
    if text.isascii() and text.isprintable():
        return text, True
    kept = []
    narrow = True
    for char in text:
        width = pyte_wcwidth(char)  # the same cached width function pyte draws with
        if width > 0 or unicodedata.combining(char):
            kept.append(char)
            narrow = narrow and width == 1
    return "".join(kept), narrow


_CELL_CACHE_SIZE = 256
_BLANKS: dict[bool, Char] = {}


class _Cells(dict):  # type: ignore[type-arg]
    """Screen cells by character for one set of attributes: a Char is an immutable tuple, so
    every "a" in the same colours can be the same object (pyte makes one per cell drawn)."""

    def __init__(self, attrs: tuple[Any, ...]) -> None:
        super().__init__()
        self.attrs = attrs

    def __missing__(self, char: str) -> Char:
        cell = self[char] = tuple.__new__(Char, (char, *self.attrs))
        return cell


class ScrollBuffer(MutableMapping[int, Any]):
    """pyte's screen buffer (row number -> row, rows made on first access as in pyte's
    ``defaultdict``) that can scroll the whole screen up by one in constant time.

    Rows are kept under ``y + base``; scrolling drops row 0 and moves ``base``. pyte itself
    scrolls by moving every row along the dict, a large share of the cost of emulating a log
    line."""

    def __init__(self, new_row: Callable[[], Any]) -> None:
        self._rows: dict[int, Any] = {}
        self._base = 0
        self._new_row = new_row

    def scroll_up(self) -> None:
        """Drop row 0; every other row moves up one, and the last row is new (empty)."""
        self._rows.pop(self._base, None)
        self._base += 1

    def __getitem__(self, y: int) -> Any:
        row = self._rows.get(y + self._base)
        if row is None:
            row = self._rows[y + self._base] = self._new_row()
        return row

    def get(self, y: int, default: Any = None) -> Any:  # type: ignore[override]
        return self._rows.get(y + self._base, default)

    def __setitem__(self, y: int, row: Any) -> None:
        self._rows[y + self._base] = row

    def __delitem__(self, y: int) -> None:
        del self._rows[y + self._base]

    def pop(self, y: int, *default: Any) -> Any:  # type: ignore[override]
        return self._rows.pop(y + self._base, *default)

    def __contains__(self, y: object) -> bool:
        return isinstance(y, int) and y + self._base in self._rows

    def __iter__(self) -> Iterator[int]:
        base = self._base
        return iter([key - base for key in self._rows])

    def __len__(self) -> int:
        return len(self._rows)

    def values(self):  # type: ignore[no-untyped-def, override]
        return self._rows.values()

    def clear(self) -> None:
        self._rows.clear()
        self._base = 0


class LogScreen(pyte.Screen):
    """A pyte screen that reports the rows it scrolls off the top, like a terminal's scrollback.

    Differences from ``pyte.Screen``, each because the input is a log, not a live terminal:

    * ``\\n`` also returns the carriage, so ``\\n`` and ``\\r\\n`` are both line ends (raw-mode
      programs write bare ``\\n``).
    * A row leaving the top of the screen goes to ``on_scroll``; so do the rows erased by
      ``ESC[2J``, as tmux does by default (``scroll-on-clear``).  ``ESC[3J`` (erase the
      scrollback) calls ``on_clear_history``: Ink-based agents clear and reprint their whole
      transcript that way, and honouring it avoids a copy of the transcript per redraw.
    * The alternate screen (``?1049h``...) is emulated: what a full-screen program draws
      there never reaches the history and the main screen comes back when it exits.
    * Parameters pyte would crash on (``ESC[5J``, ``ESC[3K``, line addressing in origin mode
      without margins) are ignored; DECCOLM does not resize.
    * Characters pyte cannot draw are dropped instead of cutting the text run (:func:`drawable`).

    ``draw`` and ``erase_in_line`` also have fast paths for their common cases; both leave
    the screen reading back exactly as pyte's own code would.  A scroll marks only the rows
    whose content changed as ``dirty``, not every row.
    """

    def __init__(
        self,
        columns: int,
        lines: int,
        on_scroll: Callable[[Mapping[int, Char] | None], None] | None = None,
        on_clear_history: Callable[[], None] | None = None,
    ) -> None:
        self._on_scroll = on_scroll
        self._on_clear_history = on_clear_history
        self._main: tuple[dict[int, Any], int, int] | None = None  # saved while alternate
        self._cells: dict[Char, _Cells] = {}
        super().__init__(columns, lines)
        self.buffer: ScrollBuffer = ScrollBuffer(self._new_row)

    @property
    def default_char(self) -> Char:
        # pyte makes a new blank for every row it creates; one per look will do.
        reverse = modes.DECSCNM in self.mode
        blank = _BLANKS.get(reverse)
        if blank is None:
            blank = _BLANKS[reverse] = Char(data=" ", fg="default", bg="default", reverse=reverse)
        return blank

    def _new_row(self) -> StaticDefaultDict:
        return StaticDefaultDict(self.default_char)

    def reset(self) -> None:
        super().reset()
        self._main = None

    def draw(self, data: str) -> None:
        data, narrow = drawable(data)
        if not narrow or self.charset or self.g0_charset is not charsets.LAT1_MAP or modes.IRM in self.mode:
            super().draw(data)
            return
        # Fast path for the common case, same result as pyte's per-character loop: characters
        # one cell wide each, no charset translation (LAT1 is the identity), replace mode.
        # Cells are written a row-slice at a time, not one namedtuple._replace() per character.
        cursor, columns = self.cursor, self.columns
        cells = self._cells.get(cursor.attrs)  # Char per character, in the cursor's attributes
        if cells is None:
            if len(self._cells) >= _CELL_CACHE_SIZE:
                self._cells.clear()
            cells = self._cells[cursor.attrs] = _Cells(tuple(cursor.attrs)[1:])
        wrap = modes.DECAWM in self.mode
        i = 0
        while i < len(data):
            if cursor.x == columns:
                if wrap:
                    self.dirty.add(cursor.y)
                    self.carriage_return()
                    self.linefeed()
                else:
                    cursor.x -= 1  # without autowrap, the last column is overwritten
            take = min(len(data) - i, columns - cursor.x)
            x = cursor.x
            self.buffer[cursor.y].update(zip(range(x, x + take), map(cells.__getitem__, data[i:i + take]), strict=True))
            cursor.x = x + take
            i += take
        self.dirty.add(cursor.y)

    def linefeed(self) -> None:
        super().linefeed()
        self.carriage_return()

    def index(self) -> None:
        top, bottom = self.margins or Margins(0, self.lines - 1)
        if self.cursor.y != bottom:
            super().index()
            return
        if top == 0 and self._main is None and self._on_scroll:
            self._on_scroll(self.buffer.get(0))
        # pyte marks every row dirty when it scrolls; keep ``dirty`` meaning "rows whose
        # content changed" instead (they moved up one, with the rows around them), so rendered
        # rows can be reused across scrolls (TerminalRenderer.lines).
        moved = {y - 1 if top < y <= bottom else y for y in self.dirty if y != top} | {bottom}
        if top == 0 and bottom == self.lines - 1:
            self.buffer.scroll_up()
        else:
            super().index()
        self.dirty = moved

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        if how == 3:
            if self._main is None and self._on_clear_history:
                self._on_clear_history()
            return
        if how == 2 and self._main is None and self._on_scroll:
            rows = [self.buffer.get(y) for y in range(self.lines)]
            while rows and not row_text(rows[-1], self.columns):
                rows.pop()
            for row in rows:  # copies: pyte erases these rows in place next
                self._on_scroll(RowCopy(row, row.default) if row else row)
        if how in (0, 1, 2):
            if self.cursor.attrs != self.default_char:  # (pyte restyles the cells a row has)
                rows = range(self.cursor.y + 1, self.lines) if how == 0 else range(self.cursor.y) if how == 1 \
                    else range(self.lines)
                for y in rows:
                    row = self.buffer.get(y)
                    if row is not None:
                        _restore_erased(row)
            super().erase_in_display(how)

    def erase_in_line(self, how: int = 0, private: bool = False) -> None:
        if how not in (0, 1, 2):
            return
        line = self.buffer[self.cursor.y]
        if self.cursor.attrs != line.default:  # type: ignore[attr-defined]  # StaticDefaultDict
            super().erase_in_line(how, private)
            return
        # Erasing to the row's blank: dropping the cells reads back the same and keeps the row
        # sparse, so it converts faster (agents send ESC[2K / ESC[K for every line they draw).
        # Where pyte would have kept blank cells is remembered (see _restore_erased).
        start = self.cursor.x if how == 0 else 0
        stop = self.cursor.x + 1 if how == 1 else self.columns
        for x in [x for x in line if start <= x < stop]:
            del line[x]
        if stop > start:
            line.erased = getattr(line, "erased", 0) | (((1 << (stop - start)) - 1) << start)  # type: ignore[attr-defined]
        self.dirty.add(self.cursor.y)

    def insert_characters(self, count: int | None = None) -> None:
        _restore_erased(self.buffer[self.cursor.y])
        super().insert_characters(count)

    def delete_characters(self, count: int | None = None) -> None:
        _restore_erased(self.buffer[self.cursor.y])
        super().delete_characters(count)

    def cursor_to_line(self, line: int | None = None) -> None:
        if modes.DECOM in self.mode and self.margins is None:  # pyte asserts margins exist
            self.cursor.y = (line or 1) - 1
            self.ensure_vbounds()
            return
        super().cursor_to_line(line)

    def set_mode(self, *modes_: int, **kwargs: Any) -> None:
        if kwargs.get("private"):
            if _ALTERNATE_SCREEN_MODES.intersection(modes_) and self._main is None:
                self._main = (dict(self.buffer), self.cursor.x, self.cursor.y)
                self.buffer.clear()
                self.margins = None
                self.dirty.update(range(self.lines))
            modes_ = tuple(m for m in modes_ if m not in _IGNORED_PRIVATE_MODES)
        super().set_mode(*modes_, **kwargs)

    def reset_mode(self, *modes_: int, **kwargs: Any) -> None:
        if kwargs.get("private"):
            if _ALTERNATE_SCREEN_MODES.intersection(modes_) and self._main is not None:
                rows, self.cursor.x, self.cursor.y = self._main
                self._main = None
                self.buffer.clear()
                self.buffer.update(rows)
                # A full-screen program's scroll region is sized to the pane, which may be
                # shorter than this screen: keep it from confining the log that follows.
                self.margins = None
                self.dirty.update(range(self.lines))
            modes_ = tuple(m for m in modes_ if m not in _IGNORED_PRIVATE_MODES)
        super().reset_mode(*modes_, **kwargs)


def _restore_erased(row: Any) -> None:
    """Give a row back the blank cells :meth:`LogScreen.erase_in_line` dropped and pyte would
    have kept. Most of pyte reads a missing cell as a blank one, but erasing the display restyles
    only the cells a row has, and inserting or deleting characters moves them: before those, the
    row must have the cells pyte's would have."""
    erased = row.__dict__.pop("erased", 0)
    blank = row.default
    x = 0
    while erased:
        if erased & 1 and x not in row:
            row[x] = blank
        erased >>= 1
        x += 1


class RowCopy(dict):  # type: ignore[type-arg]
    """A copy of a screen row's cells with the row's blank cell, as pyte's own rows have."""

    def __init__(self, cells: Mapping[int, Char], default: Char) -> None:
        super().__init__(cells)
        self.default = default
