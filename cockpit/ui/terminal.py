"""Render a raw terminal stream (an agent's ``session.log``) as Rich text lines.

``session.log`` holds whatever a program wrote to its tmux pane (``tmux pipe-pane``): text
mixed with colours, carriage returns, cursor motion, titles, mode switches.  Stripping the
escapes would be wrong: Claude Code, for one, places words with ``ESC[nG`` (cursor to column
n) instead of spaces, and progress bars redraw themselves with ``\\r``.  So the stream goes
through a terminal emulator, pyte, and the emulated screen is read back as
``rich.text.Text`` lines, colours and attributes kept.

What is guaranteed:

* Nothing raises on any input: invalid UTF-8 becomes U+FFFD, binary garbage and malformed
  sequences are absorbed.
* Control sequences leave no stray characters.  pyte 0.8.2 mis-parses a few kinds (private
  parameters such as kitty's ``ESC[<u``, DCS/APC strings...): a small byte-level pre-filter
  (``_FIXUP``) removes those first.  Everything else is pyte's work.
* A sequence or a UTF-8 character split across two ``feed()`` calls renders as if whole.
* Work is bounded.  Input is rendered lazily, by ``lines()``; of a big backlog it only parses
  the tail that can still show up in the answer (the last ``count`` lines plus one screen of
  slack), at most ``RETAIN_BYTES`` of it, and at most ``MAX_LINE_BYTES`` of any one line, so
  a single 10 MB line without a newline costs what a 16 KiB one does.
* Memory is bounded: ``history`` finished lines plus ``RETAIN_BYTES`` of raw input.

Measured (2-core AMD EPYC VM, CPython 3.11, pyte 0.8.2, median of 9) for the last 256 KiB of
a log rendered into 200 lines at width 200, by ``render(data, count=200)`` or by
``TerminalRenderer().feed(data); .lines(200)`` alike: Claude-Code-like output (each line 8
words placed with ``ESC[nG``, 16 truecolor SGRs from a small palette) 22 ms; the same with a
random colour per word 38 ms; plain text 15 ms; one 10 MB line 9 ms.  Asking a fresh
renderer for its whole 2000-line history (``lines()``) from such a backlog parses all of it:
85-250 ms.  Two shortcuts make this possible (``_FastStream``, ``_LogScreen.draw``); both
give pyte's own result, which the tests check against plain pyte.

Full-screen programs (``ESC[H``, ``ESC[2J``, the alternate screen) are emulated well enough
not to garble the log, but a log is not a screen: cockpit shows those programs with
``tmux capture-pane`` instead, through :func:`render_capture`.
"""

from __future__ import annotations

import codecs
import inspect
import itertools
import logging
import operator
import re
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from functools import lru_cache
from typing import Any

import pyte
from pyte import charsets, modes
from pyte.screens import Char, Margins, StaticDefaultDict
from rich.color import Color
from rich.style import Style
from rich.text import Span, Text

from cockpit.ui.internals import PYTE_BRIGHT_MAGENTA, between_sequences, pyte_wcwidth

__all__ = [
    "TerminalRenderer", "LineRenderer", "render", "render_capture", "RETAIN_BYTES", "FULL_RENDER_BYTES",
    "MAX_LINE_BYTES", "LINE_COLUMNS",
]

log = logging.getLogger(__name__)

#: Raw input kept per renderer; older input is never parsed.  Bounds memory and the work of
#: one ``lines()`` call (pyte parses roughly 1-1.5 MB/s, so this is a few hundred ms worst case).
RETAIN_BYTES = 512 * 1024
#: A backlog up to this size is always rendered in full, so that refreshing a view while
#: output streams in leaves no holes in the history.  A bigger one (the first read of a log,
#: a burst of output) is only rendered as far as the ``lines(count)`` call needs.
FULL_RENDER_BYTES = 64 * 1024
#: Bytes of a single line (between two ``\n``) given to the emulator; the line's tail is kept,
#: since the end of a ``\r``-redrawn line is its final state.  16 KiB is about 80 rows at 200
#: columns, or a full-width row with a colour change on every cell.
MAX_LINE_BYTES = 16 * 1024
#: How far ahead of a cut to look for a clean place (``\r``, ``\n``, ``ESC``) to resume parsing.
_RESYNC_WINDOW = 256
#: Shown where the head of an over-long line was dropped.
_CUT_MARK = "\u2026"


# --------------------------------------------------------------------------------------------
# Byte-level pre-filter for the sequences pyte 0.8.2 gets wrong
# --------------------------------------------------------------------------------------------

# pyte's CSI parser knows "?" as a private marker and digits as parameters; any other byte
# ends the sequence early and the rest is printed: ``ESC[<u`` prints "u", ``ESC[>4;1m`` (">"
# is skipped) even turns on underline and bold.  It also prints the payload of DCS/APC/PM/SOS
# strings and the tail of unknown nF escapes, and raises on some malformed input.  So only
# the CSI sequences pyte parses right, ``ESC [ digits ; ? final``, reach it; each alternative
# below is one of the gaps, everything not matched goes to pyte untouched.
_FIXUP = re.compile(
    rb"""
    \x1b (?:
        # any other well-formed CSI: private parameters (kitty keyboard ESC[<u ESC[>4;1m,
        # XTVERSION ESC[>0q), intermediates (cursor shape ESC[2 q, DECRQM ESC[?2026$p),
        # colon sub-parameters (ESC[4:3m, ESC[38:2::255:135:0m: those SGRs are rewritten)
        \[ (?! [0-9;?]* [\x40-\x7e] ) (?P<params> [\x30-\x3f]* ) [\x20-\x2f]* (?P<final> [\x40-\x7e])
        # a CSI broken off by a byte that cannot continue it (ESC, CAN, a control, a non-ASCII
        # byte): dropped; pyte would print the rest, or raise (on U+00B2 as a digit, say)
      | \[ [\x30-\x3f]*+ [\x20-\x2f]*+ (?! [\x40-\x7e] )
        # string controls DCS, OSC, SOS, PM, APC, up to BEL or ST (CAN/SUB abort, and another
        # ESC ends them too, so a stray "ESC ]" in garbage cannot swallow the rest of the log)
      | [P\]X^_] [^\x07\x18\x1a\x1b]* (?: [\x07\x18\x1a] | \x1b\\ )?
        # nF escapes pyte does not know (ESC SP F, ESC * 0 ...; it handles ESC # % ( ) and
        # one byte after them), and broken ones
      | [\x20-\x22\x24\x26\x27\x2a-\x2f] [\x20-\x2f]* [\x30-\x7e]
      | [\x20-\x2f]++ (?! [\x30-\x7e] )
        # ESC before a control or a non-ASCII byte is abandoned (pyte would swallow that byte,
        # and print what follows a second ESC)
      | (?= [\x00-\x1f\x7f-\xff] )
    )
    """,
    re.VERBOSE,
)
# A sequence cut by the end of a feed: held back until the next one completes it.
_OPEN_SEQUENCE = re.compile(rb"\x1b(?:\[[\x20-\x3f]*|[\x20-\x2f]*)")
_OPEN_STRING = re.compile(rb"\x1b[P\]X^_][^\x07\x18\x1a\x1b]*")
_STRING_END = re.compile(rb"[\x07\x18\x1a\x1b]")
_MAX_OPEN_SEQUENCE = 256  # longer "incomplete sequences" are garbage: let them through
_SGR_PARAMS = re.compile(rb"[0-9:;]*")


def _colon_sgr(params: bytes) -> bytes:
    """Rewrite SGR colon sub-parameters into the semicolon form pyte understands.

    ``38:2::R:G:B`` and ``38:2:R:G:B`` become ``38;2;R;G;B``, ``38:5:N`` becomes ``38;5;N``
    (likewise 48), ``4:0`` becomes ``24`` and ``4:N`` (curly, dotted... underline) ``4``.
    Other groups with sub-parameters (underline colour ``58:...``) are dropped.
    """
    out: list[bytes] = []
    for group in params.split(b";"):
        head, *rest = group.split(b":")
        rest = [part or b"0" for part in rest]
        if not rest:
            out.append(group)
        elif head in (b"38", b"48") and rest[0] == b"5" and len(rest) >= 2:
            out += [head, b"5", rest[1]]
        elif head in (b"38", b"48") and rest[0] == b"2" and len(rest) >= 4:
            out += [head, b"2", *(rest[2:5] if len(rest) >= 5 else rest[1:4])]
        elif head == b"4":
            out.append(b"24" if int(rest[0]) == 0 else b"4")
    return b";".join(out)


def _fixup(match: re.Match[bytes]) -> bytes:
    """Replacement for a ``_FIXUP`` match: nothing, or an SGR pyte can read."""
    sub = match.group("params")
    # [2:-1] is parameters and intermediates: only plain "digits ; :" SGRs are rewritten
    if match.group("final") == b"m" and b":" in sub and _SGR_PARAMS.fullmatch(match.group()[2:-1]):
        params = _colon_sgr(sub)
        if params:  # an empty result must not become ESC[m, which would reset all attributes
            return b"\x1b[" + params + b"m"
    return b""


class _SequenceFilter:
    """Stateful wrapper around ``_FIXUP`` for input that arrives in arbitrary pieces.

    A sequence split across two feeds is held back until it is complete; the payload of a
    string control (OSC, DCS...) that spans feeds is dropped as it arrives, never buffered.
    """

    def __init__(self) -> None:
        self._carry = b""
        self._in_string = False

    def feed(self, data: bytes) -> bytes:
        if self._carry:
            data, self._carry = self._carry + data, b""
        if self._in_string:
            end = _STRING_END.search(data)
            if end is None:
                return b""
            self._in_string = False
            # BEL/CAN/SUB end the string and go; an ESC is kept: it is the first half of ST
            # (ESC \, harmless to pyte) or the start of the next sequence.
            data = data[end.start() + (data[end.start()] != 0x1B):]
        esc = data.rfind(b"\x1b")
        if esc >= 0:
            if _OPEN_STRING.fullmatch(data, esc):
                self._in_string = True
                data = data[:esc]
            elif len(data) - esc <= _MAX_OPEN_SEQUENCE and _OPEN_SEQUENCE.fullmatch(data, esc):
                self._carry = data[esc:]
                data = data[:esc]
        return _FIXUP.sub(_fixup, data)


# Decoded C1 controls that pyte would take as CSI and OSC introducers (UTF-8 "\xc2\x9b"...);
# no program writes them to a UTF-8 terminal, so they only come from garbage.
_C1_INTRODUCERS = {0x9B: None, 0x9D: None}


# --------------------------------------------------------------------------------------------
# The emulated screen
# --------------------------------------------------------------------------------------------

_ALTERNATE_SCREEN_MODES = frozenset({47, 1047, 1049})
# DECCOLM (?3) would resize the screen to 80/132 columns; the width is the caller's choice.
_IGNORED_PRIVATE_MODES = _ALTERNATE_SCREEN_MODES | {3}


def _drawable(text: str) -> tuple[str, bool]:
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


class _ScrollBuffer(MutableMapping[int, Any]):
    """pyte's screen buffer (row number -> row, rows made on first access as in pyte's
    ``defaultdict``) that can scroll the whole screen up by one in constant time.

    Rows are kept under ``y + base``; scrolling drops row 0 and moves ``base``. pyte itself
    scrolls by moving every row along the dict, which was about a third of the cost of
    emulating a log line."""

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


class _LogScreen(pyte.Screen):
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
    * Characters pyte cannot draw are dropped instead of cutting the text run (``_drawable``).

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
        self.buffer: _ScrollBuffer = _ScrollBuffer(self._new_row)

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
        data, narrow = _drawable(data)
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
            self.buffer[cursor.y].update(zip(range(x, x + take), map(cells.__getitem__, data[i:i + take])))
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
            while rows and not _row_text(rows[-1], self.columns):
                rows.pop()
            for row in rows:  # copies: pyte erases these rows in place next
                self._on_scroll(_Row(row, row.default) if row else row)
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
    """Give a row back the blank cells :meth:`_LogScreen.erase_in_line` dropped and pyte would
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


_SIMPLE_CSI = re.compile(r"\x1b\[([0-9;?]*)([\x40-\x7e])")


@lru_cache(maxsize=None)
def _handler_shape(screen_type: type, name: str) -> tuple[int | None, bool]:
    """(how many parameters a screen handler takes, None for any; whether it takes private=)."""
    params = [p for p in inspect.signature(getattr(screen_type, name)).parameters.values()
              if p.name != "self"]
    kinds = {p.kind for p in params}
    takes_private = any(p.name == "private" for p in params) or inspect.Parameter.VAR_KEYWORD in kinds
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return None, takes_private
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in positional and p.name != "private" for p in params), takes_private


class _FastStream(pyte.Stream):
    """``pyte.Stream`` with a shortcut for the most common sequences, and no exceptions.

    pyte's parser is a generator fed one character at a time, about 1.5 MB/s; agent output is
    mostly SGR and cursor sequences, so that parser dominated the cost of a render.  Complete
    ``ESC [ digits;... final`` sequences met in the ground state are parsed here with one
    regex and handed to the very handler pyte's parser would call, with pyte's parameter rules
    (empty = 0, capped at 9999, a ``?`` anywhere = ``private=True``); everything else goes
    through pyte's parser.  The outcome of pyte's SGR handler, a pure function of (attributes,
    parameters, reverse-screen mode), is memoised.

    Where pyte raises, terminals ignore: surplus parameters are dropped (pyte raises TypeError
    on ``ESC[1;5A``), private sequences whose handler takes no ``private`` flag are ignored
    (``ESC[?6n``).  Should pyte still raise on something, the error is logged and only the
    text up to the next CSI sequence is lost.
    """

    _CACHE_SIZE = 4096

    def attach(self, screen: pyte.Screen) -> None:
        super().attach(screen)
        self._handlers = {final: getattr(screen, name) for final, name in self.csi.items()}
        self._shapes = {final: _handler_shape(type(screen), name) for final, name in self.csi.items()}
        self._params: dict[str, list[int]] = {}
        self._sgr: dict[tuple[Char, str, bool], Char] = {}

    def feed(self, data: str) -> None:
        pos = 0
        for match in _SIMPLE_CSI.finditer(data):
            start = match.start()
            if start > pos:
                self._parse(data[pos:start])
            pos = match.end()
            if between_sequences(self):
                self._dispatch(*match.groups())
            else:  # pyte is in the middle of another sequence: let it decide
                self._parse(match.group())
        if pos < len(data):
            self._parse(data[pos:])

    def _parse(self, text: str) -> None:
        try:
            super().feed(text)
        except Exception:
            # Last resort: the input is whatever an arbitrary program printed, and pyte raises
            # on some malformed sequences (the known ones are filtered or patched here).  A
            # log view must not die on them; pyte has already reset its parser.
            log.warning("terminal emulator rejected input, dropped %d characters", len(text), exc_info=True)

    def _dispatch(self, digits: str, final: str) -> None:
        handler = self._handlers.get(final)
        if handler is None:
            return  # pyte ignores unknown finals too (Screen.debug)
        limit, takes_private = self._shapes[final]
        private = "?" in digits
        if private and not takes_private:
            return
        params = self._params.get(digits)
        if params is None:
            if len(self._params) >= self._CACHE_SIZE:
                self._params.clear()
            params = [min(int(p or 0), 9999) for p in digits.replace("?", "").split(";")]
            self._params[digits] = params
        if limit is not None:
            params = params[:limit]
        screen = self.listener
        assert screen is not None  # attach() ran
        try:
            if private:
                handler(*params, private=True)
            elif final == "m":
                key = (screen.cursor.attrs, digits, modes.DECSCNM in screen.mode)
                attrs = self._sgr.get(key)
                if attrs is None:
                    handler(*params)
                    if len(self._sgr) >= self._CACHE_SIZE:
                        self._sgr.clear()
                    self._sgr[key] = screen.cursor.attrs
                else:
                    screen.cursor.attrs = attrs
            else:
                handler(*params)
        except Exception:
            log.warning("terminal emulator rejected CSI %r%s", digits, final, exc_info=True)


class _Pipeline:
    """Bytes -> pre-filter -> incremental UTF-8 decoder -> pyte stream -> screen.

    Every stage keeps state across feeds, so a sequence or a multi-byte character split
    between two feeds renders as if it had arrived whole.
    """

    def __init__(self, screen: _LogScreen) -> None:
        self._screen = screen
        self.restart()

    def restart(self) -> None:
        """Forget half-read sequences and characters (after input was skipped)."""
        self._filter = _SequenceFilter()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stream = _FastStream(self._screen)

    def feed(self, data: bytes) -> None:
        text = self._decoder.decode(self._filter.feed(data))
        if "\x9b" in text or "\x9d" in text:
            text = text.translate(_C1_INTRODUCERS)
        self.feed_text(text)

    def feed_text(self, text: str) -> None:
        if text:
            self._stream.feed(text)


# --------------------------------------------------------------------------------------------
# pyte cells -> Rich text
# --------------------------------------------------------------------------------------------

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


class _Row(dict):  # type: ignore[type-arg]
    """A screen row's cells with the row's blank cell, as pyte's own rows have."""

    def __init__(self, cells: Mapping[int, Char], default: Char) -> None:
        super().__init__(cells)
        self.default = default




def _row_text(row: Mapping[int, Char] | None, columns: int) -> Text:
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


# --------------------------------------------------------------------------------------------
# Bounding the work
# --------------------------------------------------------------------------------------------

def _start_of_last_lines(data: bytes, count: int) -> int:
    """Offset where the last ``count`` lines of ``data`` begin (0 when it has fewer)."""
    pos = len(data)
    for _ in range(count):
        pos = data.rfind(b"\n", 0, pos)
        if pos < 0:
            return 0
    return pos + 1


def _resync(data: bytes, at: int) -> int:
    """A place at or after ``at`` to resume parsing from after skipping input.

    Prefer the next ``\\r``, ``\\n`` or ``ESC`` (a clean boundary, so no half sequence is
    printed); otherwise at least do not start inside a UTF-8 character.
    """
    window = data[at:at + _RESYNC_WINDOW]
    found = [i for i in (window.find(b"\r"), window.find(b"\n"), window.find(b"\x1b")) if i >= 0]
    if found:
        return at + min(found)
    while at < len(data) and 0x80 <= data[at] < 0xC0:
        at += 1
    return at


def _cap_long_lines(data: bytes) -> Iterator[tuple[bool, bytes]]:
    """Split ``data`` into pieces to emulate; ``(True, piece)`` follows a dropped line head.

    Only the last ``MAX_LINE_BYTES`` of each longer line are kept.
    """
    if len(data) <= MAX_LINE_BYTES or max(map(len, data.split(b"\n"))) <= MAX_LINE_BYTES:
        yield False, data
        return
    done = pos = 0
    while pos <= len(data):
        newline = data.find(b"\n", pos)
        end = len(data) if newline < 0 else newline
        if end - pos > MAX_LINE_BYTES:
            if done < pos:
                yield False, data[done:pos]
            yield True, data[_resync(data, end - MAX_LINE_BYTES):end]
            done = end
        pos = end + 1
    if done < len(data):
        yield False, data[done:]


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

class TerminalRenderer:
    """Incremental: feed bytes as they arrive, ask for the last lines.

    ``feed()`` only stores bytes; ``lines()`` emulates what arrived since the last call and
    returns finished lines (rows that scrolled off the emulated screen, at most ``history``
    of them) followed by the screen's rows.  Input that cannot show up in the answer is
    skipped unparsed: lines beyond ``history`` + ``rows`` always, and, when the backlog is
    bigger than ``FULL_RENDER_BYTES`` (the first read of a log, a burst of output), lines
    beyond ``count`` + ``rows``.  So a call costs what it shows, not what the log holds;
    skipped lines never enter the history.

    ``rows`` is the height of the emulated screen and should be at least the tmux pane's
    height, so that programs moving the cursor up to redraw (spinners, Ink's live area) stay
    inside it.  cockpit's panes are 50 rows high.
    """

    def __init__(self, width: int = 200, history: int = 2000, *, rows: int = 50) -> None:
        if width < 1 or rows < 1 or history < 0:
            raise ValueError(f"bad terminal size: width={width} rows={rows} history={history}")
        self.width = width
        self.history = history
        self.rows = rows
        self._raw = bytearray()  # the last RETAIN_BYTES of input, for lazy parsing and resize()
        self._done = 0           # how much of _raw the emulator has seen
        self._gap = False        # input just before _raw[_done] was dropped unparsed
        self._trimmed = False    # _raw no longer starts where the input started
        self._new_screen()

    def _new_screen(self) -> None:
        # Finished lines, oldest first: a row of the screen as it scrolled off (made into Text
        # only when asked for, since most are never shown) or its Text.
        self._lines: deque[Text | Mapping[int, Char] | None] = deque(maxlen=self.history)
        self._screen = _LogScreen(self.width, self.rows, self._scrolled, self._lines.clear)
        self._pipeline = _Pipeline(self._screen)
        # Screen rows already rendered, by row object: a row keeps its object when the screen
        # scrolls, and pyte marks the position of every row it changes as dirty.
        self._row_cache: dict[int, tuple[Mapping[int, Char], Text]] = {}

    def _scrolled(self, row: Mapping[int, Char] | None) -> None:
        if self.history:
            # The row itself, converted only if it is ever shown (under a flood most lines
            # scroll by unseen): it has left the screen, and nothing changes it any more.
            self._lines.append(row or None)

    def feed(self, data: bytes) -> None:
        """Append raw terminal output; any split of the stream across calls renders the same."""
        if len(data) > RETAIN_BYTES:  # only the tail can be parsed anyway
            data = memoryview(data)[-RETAIN_BYTES:]
            self._raw.clear()
            self._done = 0
            self._gap = self._trimmed = True
        self._raw += data
        excess = len(self._raw) - RETAIN_BYTES
        if excess > 0:
            del self._raw[:excess]
            self._trimmed = True
            if excess > self._done:
                self._gap = True
            self._done = max(0, self._done - excess)

    def lines(self, count: int | None = None, *, copy: bool = True) -> list[Text]:
        """The last ``count`` lines (all kept lines if None), trailing blank lines dropped.

        The Text objects are fresh copies; mutating them does not affect the renderer. With
        ``copy=False`` they are the renderer's own (reused from call to call while a line is
        unchanged): for a caller that only reads them, many times a second.
        """
        self._catch_up(count)
        if count is not None and count <= 0:
            return []
        # Converted bottom-up, and only as far as the answer reaches: a tile asks for its
        # height in lines many times a second, and the screen has ``rows`` rows.
        out: list[Text] = []
        screen = self._screen
        buffer, cache = screen.buffer, self._row_cache
        for y in screen.dirty:
            changed = buffer.get(y)
            if changed is not None:
                cache.pop(id(changed), None)
        screen.dirty.clear()
        if len(cache) > 2 * self.rows:  # rows that left the screen
            alive = {id(row) for row in buffer.values()}
            for key in [key for key in cache if key not in alive]:
                del cache[key]
        for y in range(self.rows - 1, -1, -1):
            row = buffer.get(y)
            if not row and not out:  # a trailing blank row, cheap to see
                continue
            hit = cache.get(id(row)) if row is not None else None
            if hit is not None and hit[0] is row:
                text = hit[1]
            else:
                text = _row_text(row, self.width)
                if row is not None:
                    cache[id(row)] = (row, text)
            if text or out:
                out.append(text.copy() if copy else text)
                if count is not None and len(out) >= count:
                    break
        if count is None or len(out) < count:
            history = self._lines
            wanted = len(history) if count is None else count - len(out)
            for i in range(len(history) - 1, -1, -1):
                line = history[i]
                if not isinstance(line, Text):  # converted once, when first asked for
                    history[i] = line = _row_text(line, self.width)
                if not out and not line:
                    continue
                out.append(line.copy() if copy else line)
                wanted -= 1
                if wanted <= 0:
                    break
        out.reverse()
        return out

    def reset(self) -> None:
        """Forget everything (the log was truncated or re-created)."""
        self._raw.clear()
        self._done = 0
        self._gap = self._trimmed = False
        self._new_screen()

    def resize(self, width: int) -> None:
        """Change the width by re-rendering the retained raw input (``RETAIN_BYTES``).

        The re-rendering is lazy, like any backlog: the next ``lines(count)`` parses what it
        needs.  History older than the retained input is lost.
        """
        if width < 1:
            raise ValueError(f"bad terminal width: {width}")
        if width == self.width:
            return
        self.width = width
        self._new_screen()
        self._done = 0
        self._gap = self._trimmed

    def _catch_up(self, count: int | None) -> None:
        """Emulate the unprocessed input, skipping what cannot show up in ``lines(count)``."""
        if self._done >= len(self._raw):
            return
        batch = bytes(self._raw[self._done:])
        self._done = len(self._raw)
        wanted = self.history
        if count is not None and len(batch) > FULL_RENDER_BYTES:
            wanted = min(max(count, 0), self.history)
        start = _start_of_last_lines(batch, wanted + self.rows)
        if start == 0 and self._gap:
            start = _resync(batch, 0)
        if start > 0 or self._gap:
            self._pipeline.restart()
        self._gap = False
        for cut, piece in _cap_long_lines(batch[start:]):
            if cut:
                self._pipeline.restart()
                self._pipeline.feed_text(_CUT_MARK)
            self._pipeline.feed(piece)


def render(data: bytes, width: int = 200, count: int | None = None) -> list[Text]:
    """One-shot convenience over :class:`TerminalRenderer`: the last ``count`` lines of ``data``.

    Only the tail of ``data`` that can produce those lines is parsed (see the module
    docstring for the bounds and the measured cost).
    """
    history = 2000 if count is None else max(count, 0)
    renderer = TerminalRenderer(width, history)
    renderer.feed(data)
    return renderer.lines(count)


LINE_COLUMNS = 4096
"""Columns of the row :class:`LineRenderer` draws one log line on: no wrap, so a line is one
row; text beyond it overwrites the last column (as on a terminal without autowrap)."""
_PLAIN_LINE = re.compile(rb"[\x20-\x7e]*\r?")


class LineRenderer:
    """One log line at a time — the bytes between two ``\n`` of ``session.log`` — as a terminal
    would leave that row: its ``\r`` rewrites, erasures and ``ESC[nG`` column placements applied,
    colours kept, on one row without wrap.

    Each line starts from a fresh terminal state, so a line renders the same whatever was read
    before it: what the zoomed view shows and what its search matches agree, and any window of
    a huge log can be rendered on its own. (Cursor motion to other rows does not carry across
    lines, nor do colours left on at a line's end: the screen view shows full-screen programs.)
    Only the last ``MAX_LINE_BYTES`` of a longer line are emulated. Not thread-safe: one per
    thread."""

    def __init__(self, columns: int = LINE_COLUMNS) -> None:
        self.columns = columns
        self._screen = _LogScreen(columns, 1)
        self._pipeline = _Pipeline(self._screen)

    def render(self, data: bytes, cut: bool = False) -> Text:
        """The line ``data`` (without its ``\n``); ``cut``: its head was dropped before, so it
        starts with a mark saying so."""
        if len(data) > MAX_LINE_BYTES:
            data = data[_resync(data, len(data) - MAX_LINE_BYTES):]
            cut = True
        if not cut and _PLAIN_LINE.fullmatch(data) and len(data) <= self.columns:  # most lines: no emulation
            return Text(data.rstrip(b"\r").decode("ascii").rstrip(" "))
        screen = self._screen
        screen.reset()
        screen.mode.discard(modes.DECAWM)
        self._pipeline.restart()
        if cut:
            self._pipeline.feed_text(_CUT_MARK)
        self._pipeline.feed(data)
        return _row_text(screen.buffer.get(0), self.columns)


def render_capture(lines: list[str]) -> list[Text]:
    """Lines from ``tmux capture-pane -p -e`` (SGR escapes only, one screen row per line).

    Returns exactly one Text per input line.  Attributes carry over from one line to the next,
    as they do in capture-pane's output; a line wider than the screen is cut, not wrapped.
    """
    if not lines:
        return []
    # Each character takes at most two cells, escapes none: 2 * len is a safe width.
    columns = min(max(1, max(2 * len(line) for line in lines)), 4096)
    screen = _LogScreen(columns, len(lines) + 1)
    screen.mode.discard(modes.DECAWM)
    _Pipeline(screen).feed("\r\n".join(lines).encode("utf-8", "replace"))
    return [_row_text(screen.buffer.get(y), columns) for y in range(len(lines))]
