"""Tests for cockpit.ui.terminal: a raw tmux pane stream rendered as Rich lines via pyte."""

from __future__ import annotations

import logging
import random
from collections import defaultdict

import pyte
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyte.screens import StaticDefaultDict
from rich.color import ColorType
from rich.style import Style
from rich.text import Text

from cockpit.ui import terminal
from cockpit.ui.terminal import MAX_LINE_BYTES, RETAIN_BYTES, TerminalRenderer, render, render_capture
from cockpit.ui.terminal.screen import LogScreen, drawable
from cockpit.ui.terminal.stream import FastStream
from cockpit.ui.terminal.to_rich import row_text

ESC = b"\x1b"


def plain(lines: list[Text]) -> list[str]:
    return [line.plain for line in lines]


def style_of(line: Text, word: str) -> Style:
    """The style of the span covering ``word`` exactly (it must be one span)."""
    start = line.plain.index(word)
    spans = [s for s in line.spans if s.start <= start and s.end >= start + len(word)]
    assert len(spans) == 1, (line.plain, line.spans)
    style = spans[0].style
    assert isinstance(style, Style)
    return style


def snapshot(lines: list[Text]) -> list[tuple[str, list[tuple[int, int, str]]]]:
    return [(line.plain, [(s.start, s.end, str(s.style)) for s in line.spans]) for line in lines]


@pytest.fixture
def no_emulator_errors(caplog: pytest.LogCaptureFixture):
    """The last-resort guard in the module must not have been needed."""
    with caplog.at_level(logging.WARNING, logger=terminal.__name__):
        yield
    assert not [r for r in caplog.records if r.name == terminal.__name__]


# --------------------------------------------------------------------------- cursor motion


def test_claude_code_places_words_with_cursor_to_column():
    # Claude Code writes "Welcome to Claude Code" as words at absolute columns, no spaces.
    data = (b"\x1b[38;2;215;119;87m\x1b[1G*\x1b[3GWelcome\x1b[11Gto\x1b[14G\x1b[1mClaude"
            b"\x1b[21GCode\x1b[22m\x1b[39m\r\n")
    [line] = render(data)
    assert line.plain == "* Welcome to Claude Code"
    assert style_of(line, "Claude").bold
    assert style_of(line, "Claude").color.triplet == (215, 119, 87)
    assert not style_of(line, "Welcome").bold


def test_carriage_return_collapses_a_progress_bar():
    data = b"".join(b"\r[%-10s] %3d%%" % (b"#" * (i // 10), i) for i in range(101)) + b"\r\n"
    assert plain(render(data)) == ["[##########] 100%"]


def test_carriage_return_overwrites_only_what_is_written():
    assert plain(render(b"downloading\rdone")) == ["doneloading"]  # as on a terminal
    assert plain(render(b"downloading\r\x1b[Kdone")) == ["done"]


def test_erase_in_line_variants():
    assert plain(render(b"abcdef\r\x1b[Kxy\n")) == ["xy"]
    assert plain(render(b"abcdef\x1b[3G\x1b[1K\n")) == ["   def"]
    assert plain(render(b"abcdef\x1b[2Kxy\n")) == ["      xy"]  # cursor stays in column 7


def test_cursor_forward_and_backspace():
    assert plain(render(b"a\x1b[3Cb\n")) == ["a   b"]
    assert plain(render(b"abc\x08X\n")) == ["abX"]
    assert plain(render(b"abc\x08\x08\x08\x08\x08Z\n")) == ["Zbc"]  # stops at column 1
    assert plain(render(b"a\tb\n")) == ["a       b"]


def test_surplus_parameters_are_ignored_per_sequence():
    # ESC[1;5A is "up 1" (pyte would raise on the extra parameter); ESC[1;5H is row 1, column 5.
    assert plain(render(b"ab\r\ncd\x1b[1;5Ax\x1b[1;5Hy\n")) == ["abx y", "cd"]


def test_newline_and_crlf_both_end_lines():
    assert plain(render(b"one\ntwo\r\nthree\n")) == ["one", "two", "three"]


def test_long_lines_wrap_at_width():
    assert plain(render(b"x" * 25 + b"\n", width=10)) == ["x" * 10, "x" * 10, "x" * 5]


def test_trailing_blank_lines_dropped_interior_kept():
    assert plain(render(b"a\n\nb\n\n\n\n")) == ["a", "", "b"]
    assert plain(render(b"a   \n")) == ["a"]
    assert render(b"") == []


def test_wide_and_combining_characters():
    assert plain(render("中文 ok\n".encode())) == ["中文 ok"]
    assert plain(render("e\u0301t\u00e9\n".encode())) == ["\u00e9t\u00e9"]


def test_zero_width_characters_do_not_truncate_the_line():
    # pyte alone stops drawing at U+FE0F (emoji presentation selector) and loses the rest.
    assert plain(render("\u26a0\ufe0f Warning: disk\u200b full\n".encode())) == ["\u26a0 Warning: disk full"]
    assert plain(render(b"a\x01b\x18c\n")) == ["abc"]


# --------------------------------------------------------------------------- SGR


def test_sgr_16_colours_and_attributes():
    data = (b"\x1b[31mred\x1b[0m \x1b[91mbright\x1b[0m \x1b[44mbg\x1b[0m \x1b[1mbold\x1b[22m "
            b"\x1b[3mital\x1b[23m \x1b[4munder\x1b[24m \x1b[7mrev\x1b[27m \x1b[9mstrike\x1b[29m "
            b"\x1b[33myellow\x1b[0m \x1b[105mpink\x1b[0m plain\n")
    [line] = render(data)
    assert line.plain == "red bright bg bold ital under rev strike yellow pink plain"
    red = style_of(line, "red")
    assert red.color.name == "red" and red.color.type == ColorType.STANDARD
    assert style_of(line, "bright").color.name == "bright_red"
    assert style_of(line, "bg").bgcolor.name == "blue"
    assert style_of(line, "bold").bold
    assert style_of(line, "ital").italic
    assert style_of(line, "under").underline
    assert style_of(line, "rev").reverse
    assert style_of(line, "strike").strike
    assert style_of(line, "yellow").color.name == "yellow"  # pyte calls it "brown"
    assert style_of(line, "pink").bgcolor.name == "bright_magenta"  # pyte: "bfightmagenta"
    assert not [s for s in line.spans if s.start >= line.plain.index("plain")]


def test_sgr_256_colours():
    [line] = render(b"\x1b[38;5;208morange\x1b[48;5;22m on green\x1b[0m\n")
    assert style_of(line, "orange").color.triplet == (255, 135, 0)
    assert style_of(line, "green").bgcolor.triplet == (0, 95, 0)
    assert style_of(line, "green").color.triplet == (255, 135, 0)


def test_sgr_truecolor_semicolon_and_colon_forms():
    [line] = render(b"\x1b[38;2;10;20;30ma\x1b[0m \x1b[48;2;1;2;3mb\x1b[0m "
                    b"\x1b[38:2::200:100:50mc\x1b[0m \x1b[38:2:7:8:9md\x1b[0m \x1b[38:5:208me\x1b[0m\n")
    assert line.plain == "a b c d e"
    assert style_of(line, "a").color.triplet == (10, 20, 30)
    assert style_of(line, "b").bgcolor.triplet == (1, 2, 3)
    assert style_of(line, "c").color.triplet == (200, 100, 50)
    assert style_of(line, "d").color.triplet == (7, 8, 9)
    assert style_of(line, "e").color.triplet == (255, 135, 0)


def test_sgr_colon_underline_styles_and_unknown_subparameters():
    [line] = render(b"\x1b[4:3mcurly\x1b[4:0m off \x1b[1;58:2::255:0:0mbold\x1b[0m\n")
    assert line.plain == "curly off bold"
    assert style_of(line, "curly").underline
    assert "off" not in [line.plain[s.start:s.end] for s in line.spans]
    assert style_of(line, "bold").bold  # the underline colour is dropped, the bold kept


def test_out_of_range_truecolor_does_not_break_styles():
    [line] = render(b"\x1b[38;2;999;0;0mx\x1b[0m\n")
    assert line.plain == "x"


def test_erase_with_background_keeps_the_colour():
    [line] = render(b"\x1b[41mab\x1b[K\x1b[0m\n", width=10)
    assert line.plain == "ab" + " " * 8
    assert style_of(line, "ab" + " " * 8).bgcolor.name == "red"


# --------------------------------------------------------------------------- removed sequences


@pytest.mark.parametrize("seq", [
    b"\x1b[<u", b"\x1b[>1u", b"\x1b[=5;1u", b"\x1b[?u", b"\x1b[<1u",    # kitty keyboard protocol
    b"\x1b[>4;1m", b"\x1b[>4;2m", b"\x1b[>0q", b"\x1b[>c",              # modifyOtherKeys, XTVERSION, DA2
    b"\x1b[2 q", b"\x1b[!p", b"\x1b[?2026$p", b"\x1b[0\"q",             # intermediates
    b"\x1b]0;a title\x07", b"\x1b]2;t\x1b\\", b"\x1b]133;A\x07",        # OSC: titles, prompt marks
    b"\x1bP+q544e\x1b\\", b"\x1b_Gi=1;AAAA\x1b\\", b"\x1b^pm\x1b\\",     # DCS, APC (kitty graphics), PM
    b"\x1b[?2004h", b"\x1b[?2004l", b"\x1b[?25l", b"\x1b[?1h\x1b=",     # bracketed paste, cursor, keypad
    b"\x1b[?1000h\x1b[?1006h", b"\x1b[?2026h", b"\x1b[?6n", b"\x1b[c",  # mouse, sync output, queries
    b"\x1b(B", b"\x1b)0", b"\x1b7\x1b8", b"\x1b F", b"\x1b*0",           # charsets, save/restore, nF
])
def test_other_sequences_leave_no_stray_characters(seq: bytes, no_emulator_errors: None):
    [line] = render(b"x" + seq + b"y\n")
    assert line.plain == "xy"
    assert not line.spans  # and change no attribute


def test_osc_hyperlink_keeps_its_text():
    [line] = render(b"see \x1b]8;;https://example.com\x1b\\the docs\x1b]8;;\x1b\\.\n")
    assert line.plain == "see the docs."


def test_unterminated_string_control_ends_at_next_escape():
    # A stray "ESC ]" in garbage must not swallow the rest of the log.
    assert plain(render(b"a\x1b]0;junk\x1b[31mred\x1b[0m\n")) == ["ared"]


# --------------------------------------------------------------------------- robustness


def test_invalid_utf8_is_replaced():
    assert plain(render(b"a\xffb\xc3(c\xed\xa0\x80d\n")) == ["a\ufffdb\ufffd(c\ufffd\ufffd\ufffdd"]


@pytest.mark.parametrize("seq", [
    b"\x1b[5J", b"\x1b[3K", b"\x1b[\xc2\xb2m", b"\x1b[?6h\x1b[5d", b"\x1b[1;5A", b"\x1b[?6n",
    b"\x1b[1;2;3@", b"\x1b[?5m", b"\xc2\x9b31m", b"\xc2\x9d0;x\x07", b"\x1b[9999;9999H",
    b"\x1b[38;5;9999m", b"\x1b[38;2m", b"\x1b[?3h", b"\x1b#8", b"\x1bc", b"\x1b[1\r\x1b[?\x18",
])
def test_inputs_that_crash_plain_pyte(seq: bytes, no_emulator_errors: None):
    render(b"before " + seq + b" after\n", width=30)


def test_binary_garbage_never_raises(no_emulator_errors: None):
    rng = random.Random(7)
    garbage = bytes(range(256)) * 4 + bytes(rng.randrange(256) for _ in range(200_000))
    render(garbage)
    renderer = TerminalRenderer(width=80, history=100)
    pos = 0
    while pos < len(garbage):
        step = rng.randint(1, 5000)
        renderer.feed(garbage[pos:pos + step])
        pos += step
        if rng.random() < 0.1:
            renderer.lines(20)
    assert all(isinstance(line, Text) for line in renderer.lines())


_ATOMS = st.sampled_from([
    b"\x1b", b"[", b"]", b"?", b"<", b">", b";", b":", b"1", b"38", b"2", b"5", b"m", b"H", b"J",
    b"K", b"G", b"A", b"h", b"l", b"u", b"P", b"_", b"\\", b"\x07", b"\x18", b"\r", b"\n", b"\x08",
    b"\t", b"x", b" ", b"$", b"(", b"#", b"%", b"9999", b"1049", b"\xc2\xb2", b"\xc2\x9b", b"\xff",
    b"\xe4\xb8", b"\xad", b"\xef\xb8\x8f", b"\x00", b"\x7f",
])


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.lists(_ATOMS, max_size=40).map(b"".join), max_size=8),
       width=st.integers(1, 30), rows=st.integers(1, 6), history=st.integers(0, 10))
def test_arbitrary_input_and_splits_never_raise(chunks, width, rows, history, no_emulator_errors):
    renderer = TerminalRenderer(width, history, rows=rows)
    for chunk in chunks:
        renderer.feed(chunk)
        renderer.lines(3)
    for line in renderer.lines():
        assert isinstance(line, Text) and len(line) <= width * 2


# --------------------------------------------------------------------------- incremental feeding


STREAM = (
    "\x1b]0;\u2733 claude\x07\x1b[?2004h\x1b[>1u\x1b[?25l"
    "\x1b[38;2;215;119;87m\u273b\x1b[39m \x1b[1mWelcome\x1b[22m\x1b[11Gto\x1b[14GClaude\x1b[21GCode\r\n"
    "\u2733 Thinking\u2026\r\n"
    "\x1b[2K\x1b[1A\x1b[2K\x1b[G\u23fa \x1b[38;5;208mRead\x1b[0m(src/m\u00e9tier.py)\r\n"
    "  \u23bf  50%\r  \u23bf  100% \u4e2d\u6587\x1b[K\r\n"
    "\x1bP+q544e\x1b\\\x1b[4:3mcurly\x1b[4:0m \x1b[38:2::1:2:3mrgb\x1b[0m\x1b[<u\n"
).encode() + b"bad \xff utf8\r\n"


def test_every_split_renders_the_same():
    """A multi-byte character or a sequence cut in two by the feeds renders as if whole."""
    expected = snapshot(render(STREAM))
    assert [text for text, _ in expected] == [
        "\u273b Welcome to Claude Code",
        "\u23fa Read(src/m\u00e9tier.py)",
        "  \u23bf  100% \u4e2d\u6587",
        "curly rgb",
        "bad \ufffd utf8",
    ]
    for cut in range(1, len(STREAM)):
        renderer = TerminalRenderer()
        renderer.feed(STREAM[:cut])
        renderer.lines()  # forces the first half through the emulator on its own
        renderer.feed(STREAM[cut:])
        assert snapshot(renderer.lines()) == expected, f"split at byte {cut}"


def test_split_multibyte_character_and_escape_explicitly():
    renderer = TerminalRenderer()
    pieces = [b"caf\xc3", b"\xa9 \xf0\x9f", b"\x98", b"\x80 \x1b[3", b"1mred\x1b", b"[0m x\x1b[<", b"u\n"]
    for piece in pieces:
        renderer.feed(piece)
        renderer.lines()
    [line] = renderer.lines()
    assert line.plain == "caf\u00e9 \U0001f600 red x"
    assert style_of(line, "red").color.name == "red"


def test_lines_count_and_copies():
    renderer = TerminalRenderer()
    renderer.feed(b"".join(b"line %d\n" % i for i in range(10)))
    assert plain(renderer.lines(3)) == ["line 7", "line 8", "line 9"]
    assert renderer.lines(0) == []
    assert len(renderer.lines()) == 10
    renderer.lines()[0].stylize("bold")
    renderer.lines()[0].append("!")
    assert renderer.lines()[0].plain == "line 0" and not renderer.lines()[0].spans


def test_history_is_bounded():
    renderer = TerminalRenderer(width=40, history=100, rows=10)
    for i in range(1000):
        renderer.feed(b"line %d\r\n" % i)
        if i % 50 == 0:
            renderer.lines(5)
    lines = plain(renderer.lines())
    assert len(lines) == 100 + 10 - 1  # history + screen rows, less the empty cursor row
    assert lines[-1] == "line 999"
    assert lines[0] == f"line {1000 - len(lines)}"
    renderer.feed(b"x" * (3 * RETAIN_BYTES))
    assert len(renderer._raw) <= RETAIN_BYTES


def test_a_large_backlog_is_only_parsed_as_far_as_needed():
    data = b"".join(b"\x1b[32mline %d\x1b[0m\r\n" % i for i in range(20_000))
    assert plain(render(data, count=3)) == ["line 19997", "line 19998", "line 19999"]
    renderer = TerminalRenderer(history=2000)
    renderer.feed(data)
    assert plain(renderer.lines(5))[-1] == "line 19999"
    assert len(renderer.lines()) < 2000  # the skipped head of the backlog never enters history


def test_ten_megabyte_line_without_newline_is_bounded():
    lines = render(b"x" * 10_000_000, width=200)
    assert lines and len(lines) <= MAX_LINE_BYTES // 200 + 2
    assert all(len(line) <= 200 for line in lines)
    assert lines[-1].plain.strip("x") == ""
    assert lines[0].plain.startswith("\u2026")  # marks the dropped head


def test_ten_megabyte_progress_line_shows_its_last_state():
    data = b"".join(b"\rprogress %8d" % i for i in range(700_000))  # ~11 MB, one line
    assert len(data) > 10_000_000
    assert plain(render(data)) == ["progress   699999"]


def test_ten_megabytes_fed_in_pieces_is_bounded():
    renderer = TerminalRenderer(width=100, history=500)
    for _ in range(10):
        renderer.feed(b"y" * 1_000_000)
        assert len(renderer.lines(50)) == 50
    lines = renderer.lines()
    assert len(lines) <= 500 + 50
    assert all(len(line) <= 100 for line in lines)


def test_reset_forgets_everything():
    renderer = TerminalRenderer()
    renderer.feed(b"old\r\n\x1b[31m")
    renderer.lines()
    renderer.reset()
    assert renderer.lines() == []
    renderer.feed(b"new\n")
    [line] = renderer.lines()
    assert line.plain == "new" and not line.spans  # the red from before the reset is gone


def test_resize_re_renders_retained_input():
    renderer = TerminalRenderer(width=10)
    renderer.feed(b"abcdefghijklmnop\r\n\x1b[31mred\x1b[0m\r\n")
    assert plain(renderer.lines()) == ["abcdefghij", "klmnop", "red"]
    renderer.resize(20)
    lines = renderer.lines()
    assert plain(lines) == ["abcdefghijklmnop", "red"]
    assert style_of(lines[1], "red").color.name == "red"
    renderer.feed(b"more\n")
    assert plain(renderer.lines())[-1] == "more"


# --------------------------------------------------------------------------- full screen


def test_full_screen_addressing_does_not_crash():
    cells = b"".join(b"\x1b[%d;%dHcell" % (y, x) for y in range(1, 60) for x in (1, 150, 999))
    data = b"\x1b[H\x1b[2J" + cells
    lines = render(data, width=200)
    assert lines and all(len(line) <= 200 for line in lines)
    assert lines[0].plain.startswith("cell")


def test_alternate_screen_is_set_aside():
    data = (b"before\r\n\x1b[?1049h\x1b[H\x1b[2Jvim buffer\r\n~\r\n~\x1b[?1049l"
            b"after\r\n")
    assert plain(render(data)) == ["before", "after"]
    renderer = TerminalRenderer()
    renderer.feed(b"before\r\n\x1b[?1049h\x1b[Hfull screen")
    assert plain(renderer.lines()) == ["full screen"]  # the live alternate screen is shown


def test_clear_screen_keeps_the_log_and_erase_scrollback_clears_it():
    # ESC[2J pushes the screen to the history (tmux's scroll-on-clear) ...
    assert plain(render(b"one\r\ntwo\r\n\x1b[2J\x1b[Hthree\r\n")) == ["one", "two", "three"]
    # ... ESC[3J drops it, as Ink-based agents expect before reprinting their transcript.
    reprinted = b"one\r\ntwo\r\n\x1b[2J\x1b[3J\x1b[Hone\r\ntwo\r\nthree\r\n"
    assert plain(render(reprinted)) == ["one", "two", "three"]


def test_cursor_up_redraw_in_place():
    # Spinner-style redraw: move up, erase, rewrite; only the final state remains.
    data = b"header\r\n\xe2\x9c\xbb Thinking\xe2\x80\xa6\r\n"
    for i in range(5):
        data += b"\x1b[1A\x1b[2K\x1b[G\xe2\x9c\xbb Thinking %d\r\n" % i
    data += b"\x1b[1A\x1b[2K\x1b[Gdone\r\n"
    assert plain(render(data)) == ["header", "done"]


def test_deccolm_does_not_change_the_width():
    lines = render(b"\x1b[?3h" + b"z" * 150 + b"\n", width=100)
    assert plain(lines) == ["z" * 100, "z" * 50]


# --------------------------------------------------------------------------- render_capture


def test_render_capture():
    captured = ["\x1b[31mred\x1b[0m plain", "", "\x1b[1mbold\x1b[0m and \x1b[38;5;208morange", "still", ""]
    lines = render_capture(captured)
    assert plain(lines) == ["red plain", "", "bold and orange", "still", ""]  # one Text per row
    assert style_of(lines[0], "red").color.name == "red"
    assert style_of(lines[2], "bold").bold
    assert style_of(lines[3], "still").color.triplet == (255, 135, 0)  # attributes carry over
    assert render_capture([]) == []


def test_render_capture_wide_rows_are_not_wrapped():
    lines = render_capture(["\u4e2d" * 100, "x" * 300])
    assert plain(lines) == ["\u4e2d" * 100, "x" * 300]


# --------------------------------------------------------------------------- fast paths


class _ReferenceScreen(LogScreen):
    """The module's screen, but drawing through pyte's own per-character loop and scrolling
    pyte's way, row by row, in pyte's own buffer."""

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self.buffer = defaultdict(lambda: StaticDefaultDict(self.default_char))

    def index(self) -> None:
        pyte.Screen.index(self)

    def draw(self, data: str) -> None:
        pyte.Screen.draw(self, drawable(data)[0])

    def erase_in_line(self, how: int = 0, private: bool = False) -> None:
        pyte.Screen.erase_in_line(self, how, private)


_TEXT_ATOMS = st.sampled_from([
    "a", "bc", "hello world ", "\u4e2d", "\u00e9", "e\u0301", "\u2500\u256d\u2502", "\u23fa x",
    "\r", "\n", "\x08", "\t",
    "\x1b[31m", "\x1b[1;4m", "\x1b[0m", "\x1b[m", "\x1b[38;5;208m", "\x1b[48;2;1;2;3m", "\x1b[7m",
    "\x1b[5G", "\x1b[3C", "\x1b[2D", "\x1b[A", "\x1b[2B", "\x1b[K", "\x1b[1K", "\x1b[2K", "\x1b[J",
    "\x1b[2;3H", "\x1b[H", "\x1b[2@", "\x1b[P", "\x1b[X", "\x1b[L", "\x1b[M", "\x1b[4h", "\x1b[4l",
    "\x1b[?7l", "\x1b[?7h", "\x1b[?25l", "\x1b[;5H", "\x1b[2;4r", "\x1b[r", "\x1b[3d", "\x1b7", "\x1b8",
    "\n\n\n", "\x1bD", "\x1bM", "\x1b[2J", "\x1b[?1049h", "\x1b[?1049l",
])


@settings(max_examples=400, deadline=None, derandomize=True)
@given(pieces=st.lists(_TEXT_ATOMS, max_size=60), width=st.integers(1, 12))
def test_fast_paths_match_pyte(pieces, width):
    """The CSI and ASCII-drawing shortcuts give exactly pyte's screen."""
    text = "".join(pieces)
    fast = LogScreen(width, 4)
    FastStream(fast).feed(text)
    reference = _ReferenceScreen(width, 4)
    pyte.Stream(reference).feed(text)
    for y in range(4):
        assert snapshot([row_text(fast.buffer.get(y), width)]) == snapshot(
            [row_text(reference.buffer.get(y), width)])
    assert (fast.cursor.x, fast.cursor.y, fast.cursor.attrs) == (reference.cursor.x, reference.cursor.y,
                                                                 reference.cursor.attrs)


@pytest.mark.parametrize("text", [
    "\x1b[K\x1b[48;2;1;2;3m\x1b[2J",  # a line erased, then the screen cleared in a colour
    "\x1b[2B\x1b[K\x1b[2;3H\x1b[48;2;1;2;3m\x1b[J",
    "ab\x1b[K\x1b[1;4m\x1b[2J\x1b[5Gx",  # cleared in bold underline, then drawn on
    "abc\x1b[1G\x1b[K\x1b[41m\x1b[2P\x1b[2@\x1b[2J",  # (what is remembered follows deleted, inserted cells)
])
def test_the_line_erase_shortcut_matches_pyte_when_the_screen_is_cleared_later(text):
    """The shortcut drops a line's erased cells where pyte keeps blank ones; clearing the display
    restyles the cells a row has (found by test_fast_paths_match_pyte with another seed)."""
    for width in (1, 4, 12):
        fast = LogScreen(width, 4)
        FastStream(fast).feed(text)
        reference = _ReferenceScreen(width, 4)
        pyte.Stream(reference).feed(text)
        for y in range(4):
            assert snapshot([row_text(fast.buffer.get(y), width)]) == snapshot(
                [row_text(reference.buffer.get(y), width)]), (width, y)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(chunks=st.lists(st.lists(_TEXT_ATOMS, max_size=20).map("".join), min_size=1, max_size=10),
       count=st.integers(1, 6))
def test_rows_rendered_earlier_are_reused_only_while_unchanged(chunks, count):
    """lines() reuses a screen row's Text until pyte marks the row changed (a scroll moves
    rows without changing them): asking again with the cache emptied gives the same lines."""
    renderer = TerminalRenderer(width=12, history=5, rows=4)
    for chunk in chunks:
        renderer.feed(chunk.encode())
        reused = snapshot(renderer.lines(count))
        renderer._row_cache.clear()
        assert reused == snapshot(renderer.lines(count))


def test_scrolling_keeps_only_the_screen_rows():
    """Scrolling is constant-time (rows are kept under a moving base): the rows that leave the
    top must still be dropped, or a long log would grow the buffer without end."""
    renderer = TerminalRenderer(width=20, history=10, rows=5)
    renderer.feed(b"".join(b"line %d\n" % i for i in range(1000)))
    assert plain(renderer.lines(2)) == ["line 998", "line 999"]
    screen = renderer._screen
    assert len(screen.buffer) <= screen.lines
    assert sorted(screen.buffer) == [y for y in range(screen.lines) if y in screen.buffer]


def test_lines_without_copies_are_reused_while_unchanged():
    renderer = TerminalRenderer(width=20, history=10, rows=5)
    renderer.feed(b"one\ntwo\n")
    first = renderer.lines(2, copy=False)
    renderer.feed(b"three\n")
    second = renderer.lines(2, copy=False)
    assert plain(second) == ["two", "three"]
    assert second[0] is first[1], "an unchanged line is the same object"
    assert plain(renderer.lines(2)) == ["two", "three"] and renderer.lines(2)[0] is not second[0]


# --------------------------------------------------------------------------- one line at a time


def test_line_renderer_leaves_a_line_as_a_terminal_would():
    from cockpit.ui.terminal import LineRenderer
    renderer = LineRenderer()
    claude = (b"\x1b[38;2;215;119;87m\x1b[1G*\x1b[3GWelcome\x1b[11Gto\x1b[14G\x1b[1mClaude"
              b"\x1b[21GCode\x1b[22m\x1b[39m\r")
    line = renderer.render(claude)
    assert line.plain == "* Welcome to Claude Code" and style_of(line, "Claude").bold
    assert renderer.render(b"50%\r100%\r").plain == "100%"
    assert renderer.render(b"plain, trailing spaces   \r").plain == "plain, trailing spaces"
    assert renderer.render(b"a\tb").plain == "a       b"
    # each line starts afresh: a colour left on does not leak into the next line
    assert style_of(renderer.render(b"\x1b[31mred"), "red").color.name == "red"
    assert renderer.render(b"after").spans == []
    # no wrap: a line is one row, however long
    assert renderer.render(b"x" * 300).plain == "x" * 300
    cut = renderer.render(b"tail of a long line", cut=True)
    assert cut.plain == "\u2026tail of a long line"
    long = renderer.render(b"y" * 3000 + b" end")
    assert long.plain == "y" * 3000 + " end"
    huge = renderer.render(b"y" * (MAX_LINE_BYTES * 3) + b" end")  # only the end is emulated, on one row
    assert huge.plain.startswith("\u2026y") and len(huge.plain) == terminal.LINE_COLUMNS


@given(st.binary(max_size=300))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_line_renderer_plain_path_matches_the_emulator(data):
    from cockpit.ui.terminal import LineRenderer
    renderer = LineRenderer()
    line = renderer.render(data)  # never raises
    if data.isascii() and all(0x20 <= b < 0x7F for b in data.rstrip(b"\r")):  # the shortcut was taken
        assert line.plain == render(data.rstrip(b"\r") + b"\n")[0].plain if data.strip(b" \r") else line.plain == ""
