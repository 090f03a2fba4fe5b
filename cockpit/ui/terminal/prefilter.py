"""Byte-level pre-filter for the sequences pyte 0.8.2 gets wrong, before they reach it.

pyte's CSI parser knows "?" as a private marker and digits as parameters; any other byte ends
the sequence early and the rest is printed: ``ESC[<u`` prints "u", ``ESC[>4;1m`` (">" is
skipped) even turns on underline and bold.  It also prints the payload of DCS/APC/PM/SOS
strings and the tail of unknown nF escapes, and raises on some malformed input.  So only the
CSI sequences pyte parses right, ``ESC [ digits ; ? final``, reach it; each alternative of
``_FIXUP`` is one of the gaps, everything not matched goes to pyte untouched.
"""

from __future__ import annotations

import re

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


class SequenceFilter:
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
C1_INTRODUCERS = {0x9B: None, 0x9D: None}
