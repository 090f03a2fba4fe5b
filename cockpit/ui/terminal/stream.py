"""pyte's parser with a shortcut for the commonest sequences (:class:`FastStream`), and the
pipeline of stages from raw bytes to the screen (:class:`Pipeline`)."""

from __future__ import annotations

import codecs
import inspect
import logging
import re
from functools import cache

import pyte
from pyte import modes
from pyte.screens import Char

from cockpit.ui.internals import between_sequences
from cockpit.ui.terminal.prefilter import C1_INTRODUCERS, SequenceFilter
from cockpit.ui.terminal.screen import LogScreen

log = logging.getLogger(__package__)  # the terminal emulation's one logger


_SIMPLE_CSI = re.compile(r"\x1b\[([0-9;?]*)([\x40-\x7e])")


@cache
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


class FastStream(pyte.Stream):
    """``pyte.Stream`` with a shortcut for the most common sequences, and no exceptions.

    pyte's parser is a generator fed one character at a time; agent output is
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


class Pipeline:
    """Bytes -> pre-filter -> incremental UTF-8 decoder -> pyte stream -> screen.

    Every stage keeps state across feeds, so a sequence or a multi-byte character split
    between two feeds renders as if it had arrived whole.
    """

    def __init__(self, screen: LogScreen) -> None:
        self._screen = screen
        self.restart()

    def restart(self) -> None:
        """Forget half-read sequences and characters (after input was skipped)."""
        self._filter = SequenceFilter()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stream = FastStream(self._screen)

    def feed(self, data: bytes) -> None:
        text = self._decoder.decode(self._filter.feed(data))
        if "\x9b" in text or "\x9d" in text:
            text = text.translate(C1_INTRODUCERS)
        self.feed_text(text)

    def feed_text(self, text: str) -> None:
        if text:
            self._stream.feed(text)

