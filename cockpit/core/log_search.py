"""Finding the lines of a ``session.log`` that may contain a word, in bytes, without a terminal.

A terminal log stores text with escape sequences in it: colours inside words, ``ESC[nG``
cursor placements instead of spaces, ``\\r`` redraws. So a word is looked for in each chunk
with those sequences and control bytes removed, which keeps every word's letters together;
the lines where it appears are *candidates*, to be rendered by a terminal emulator and checked
on their rendered text by the caller (the view shows rendered text, and the search must agree
with it). A chunk that lacks one of the word's bytes altogether is skipped unread by the
expensive part: most chunks of a big log, for most words.

Chunks are read backwards from the end (newest lines first) or forwards, one at a time, so a
1 GiB log is searched in bounded memory and the caller can stop between chunks.
No Textual or Rich here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from cockpit.core.session_log import open_regular

CHUNK = 1024 * 1024
"""Bytes searched at a time (whole lines: a chunk ends at a line end)."""

_SEQUENCE = re.compile(
    rb"\x1b(?:\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"  # CSI
    rb"|[\]PX^_][^\x07\x1b\n]*(?:\x07|\x1b\\)?"  # OSC, DCS, SOS, PM, APC strings
    rb"|[\x20-\x2f]*[\x30-\x7e])?"  # other escapes (or a lone ESC)
)
_CONTROLS = bytes(range(0x09)) + bytes(range(0x0B, 0x20)) + b"\x7f"  # all but \t and \n


def key_word(query: str) -> str:
    """The word of ``query`` its candidates are found by: the longest one (a rendered space may
    be a cursor motion in the file, so words are looked for one at a time)."""
    words = query.split()
    return max(words, key=len) if words else ""


def _visible(chunk: bytes) -> bytes:
    """``chunk`` with escape sequences and control bytes (but ``\\n`` and ``\\t``) removed."""
    if b"\x1b" in chunk:
        chunk = _SEQUENCE.sub(b"", chunk)
    return chunk.translate(None, _CONTROLS)


def _line_numbers(chunk: bytes, word: str) -> list[int]:
    """Indexes (in ``chunk.split(b"\\n")``) of the lines whose visible text contains ``word``,
    case-insensitively."""
    needle = word.lower()
    if needle.isascii():
        raw = chunk.lower()
        encoded = needle.encode()
        if any(raw.find(bytes([b])) < 0 for b in set(encoded)):  # a letter missing: no match here
            return []
        text: bytes | str = _visible(raw)
        target: bytes | str = encoded
    else:
        text = _visible(chunk).decode("utf-8", "replace").lower()
        target = needle
    found: list[int] = []
    at = text.find(target)  # type: ignore[arg-type]
    line = counted = 0
    while at >= 0:
        line += text.count(b"\n" if isinstance(text, bytes) else "\n", counted, at)  # type: ignore[arg-type]
        counted = at
        if not found or found[-1] != line:
            found.append(line)
        next_line = text.find(b"\n" if isinstance(text, bytes) else "\n", at)  # type: ignore[arg-type]
        if next_line < 0:
            break
        at = text.find(target, next_line)  # type: ignore[arg-type]
    return found


def candidates(path: Path | str, query: str, start: int, end: int, *, backwards: bool = False,
               stop: Callable[[], bool] = lambda: False,
               progress: Callable[[int], None] | None = None) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` for every line in ``[start, end)`` whose visible text may contain
    ``query``'s key word, newest first when ``backwards``. ``start`` and ``end`` must be line
    boundaries (``end`` just after a ``\\n``). ``progress`` gets the bytes searched so far."""
    word = key_word(query)
    if not word or end <= start:
        return
    opened = open_regular(Path(path))
    if opened is None:
        return
    fd, _st = opened
    try:
        done = 0
        low, high = start, end
        while low < high and not stop():
            if backwards:
                at = max(low, high - CHUNK)
                chunk = os.pread(fd, high - at, at)
                if at > low:  # begin at a line start: the first partial line goes to the next chunk
                    cut = chunk.find(b"\n", 0, len(chunk) - 1)
                    if cut < 0:  # the last line is longer than a chunk: its start, and its end only
                        at = _line_start_before(fd, low, at)
                    else:
                        at, chunk = at + cut + 1, chunk[cut + 1:]
                searched, high = high - at, at
            else:
                at = low
                chunk = os.pread(fd, min(CHUNK, high - low), low)
                searched = len(chunk)
                if low + len(chunk) < high:  # end at a line end
                    cut = chunk.rfind(b"\n")
                    if cut < 0:  # the first line is longer than a chunk: its end only
                        searched = _line_end_after(fd, low + len(chunk), high) - low
                        chunk = os.pread(fd, CHUNK, low + searched - CHUNK)
                    else:
                        chunk = chunk[:cut + 1]
                        searched = len(chunk)
                low += searched
            if not chunk:
                break
            body = chunk[:-1] if chunk.endswith(b"\n") else chunk
            numbers = _line_numbers(body, word)
            if numbers:
                lines = body.split(b"\n")
                offsets = [at]
                for line in lines[:-1]:
                    offsets.append(offsets[-1] + len(line) + 1)
                for number in (reversed(numbers) if backwards else numbers):
                    yield offsets[number], lines[number]
            done += searched
            if progress is not None:
                progress(done)
    finally:
        os.close(fd)


def _line_start_before(fd: int, low: int, pos: int) -> int:
    """The start of the line that contains ``pos`` (not before ``low``)."""
    while pos > low:
        step = min(CHUNK, pos - low)
        newline = os.pread(fd, step, pos - step).rfind(b"\n")
        if newline >= 0:
            return pos - step + newline + 1
        pos -= step
    return low


def _line_end_after(fd: int, pos: int, high: int) -> int:
    """The offset just after the first ``\\n`` at or after ``pos`` (``high`` if none)."""
    while pos < high:
        data = os.pread(fd, min(CHUNK, high - pos), pos)
        newline = data.find(b"\n")
        if newline >= 0:
            return pos + newline + 1
        pos += len(data)
    return high
