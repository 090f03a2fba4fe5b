"""What the views call: :class:`TerminalRenderer` (a tile's newest lines, fed as the log grows),
:class:`LineRenderer` (any one line of a log), :func:`render_capture` (a tmux screen), and the
bounds that keep the work proportional to what is shown."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping

from pyte import modes
from pyte.screens import Char
from rich.text import Text

from cockpit.ui.terminal.screen import LogScreen
from cockpit.ui.terminal.stream import Pipeline
from cockpit.ui.terminal.to_rich import row_text

#: Raw input kept per renderer; older input is never parsed.  Bounds memory and the work of
#: one ``lines()`` call (pyte is slow: parsing all of it takes a noticeable part of a second).
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
        self._screen = LogScreen(self.width, self.rows, self._scrolled, self._lines.clear)
        self._pipeline = Pipeline(self._screen)
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
                text = row_text(row, self.width)
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
                    history[i] = line = row_text(line, self.width)
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
    docstring for the bounds; bench/ui-figures.md for the measured cost).
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
        self._screen = LogScreen(columns, 1)
        self._pipeline = Pipeline(self._screen)

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
        return row_text(screen.buffer.get(0), self.columns)


def render_capture(lines: list[str]) -> list[Text]:
    """Lines from ``tmux capture-pane -p -e`` (SGR escapes only, one screen row per line).

    Returns exactly one Text per input line.  Attributes carry over from one line to the next,
    as they do in capture-pane's output; a line wider than the screen is cut, not wrapped.
    """
    if not lines:
        return []
    # Each character takes at most two cells, escapes none: 2 * len is a safe width.
    columns = min(max(1, max(2 * len(line) for line in lines)), 4096)
    screen = LogScreen(columns, len(lines) + 1)
    screen.mode.discard(modes.DECAWM)
    Pipeline(screen).feed("\r\n".join(lines).encode("utf-8", "replace"))
    return [row_text(screen.buffer.get(y), columns) for y in range(len(lines))]
