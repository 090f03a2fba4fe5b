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
  (:mod:`.prefilter`) removes those first.  Everything else is pyte's work.
* A sequence or a UTF-8 character split across two ``feed()`` calls renders as if whole.
* Work is bounded.  Input is rendered lazily, by ``lines()``; of a big backlog it only parses
  the tail that can still show up in the answer (the last ``count`` lines plus one screen of
  slack), at most ``RETAIN_BYTES`` of it, and at most ``MAX_LINE_BYTES`` of any one line, so
  a single 10 MB line without a newline costs what a 16 KiB one does.
* Memory is bounded: ``history`` finished lines plus ``RETAIN_BYTES`` of raw input.

pyte alone parses a character at a time, too slow for a screenful of agent output per frame;
two shortcuts (:class:`~cockpit.ui.terminal.stream.FastStream` for CSI sequences,
:meth:`LogScreen.draw <cockpit.ui.terminal.screen.LogScreen.draw>` for plain text) make it
fast enough, and both give pyte's own result, which the tests check against plain pyte.
(Measured costs: ``bench/ui-figures.md``.)

One stage per module: :mod:`.prefilter` (bytes pyte would get wrong), :mod:`.screen` (the
emulated screen), :mod:`.stream` (the parser and the pipeline of stages), :mod:`.to_rich`
(screen rows as Rich text), :mod:`.renderer` (what the views call, and the bounds on work).

Full-screen programs (``ESC[H``, ``ESC[2J``, the alternate screen) are emulated well enough
not to garble the log, but a log is not a screen: cockpit shows those programs with
``tmux capture-pane`` instead, through :func:`render_capture`.
"""

from cockpit.ui.terminal.renderer import (
                                          FULL_RENDER_BYTES,
                                          LINE_COLUMNS,
                                          MAX_LINE_BYTES,
                                          RETAIN_BYTES,
                                          LineRenderer,
                                          TerminalRenderer,
                                          render,
                                          render_capture,
)

__all__ = [
    "TerminalRenderer", "LineRenderer", "render", "render_capture", "RETAIN_BYTES", "FULL_RENDER_BYTES",
    "MAX_LINE_BYTES", "LINE_COLUMNS",
]
