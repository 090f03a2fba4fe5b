"""The byte-level candidate scan behind the zoomed view's search: every line whose visible text
holds the word, newest first or oldest first, whatever the chunking and line lengths."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cockpit.core import log_search
from cockpit.core.log_search import candidates, key_word

WORDS = [b"alpha", b"Beta", b"gamma", b"needle", b"hay", b"\xc3\x9cber"]


def make_log(rng: random.Random, lines: int) -> bytes:
    out = []
    for i in range(lines):
        kind = rng.randrange(5)
        words = rng.sample(WORDS, 3)
        if kind == 0:  # Claude-like: words placed at columns, coloured
            line = b"".join(b"\x1b[38;5;%dm\x1b[%dG%s" % (rng.randrange(256), 1 + 10 * j, w)
                            for j, w in enumerate(words))
        elif kind == 1:  # a progress line redrawn with \r
            line = b"\r".join(b"%d%% %s" % (p, words[0]) for p in (10, 50, 100))
        elif kind == 2:  # a colour change inside a word
            line = words[0][:2] + b"\x1b[1m" + words[0][2:] + b"\x1b[0m " + words[1]
        elif kind == 3:
            line = b"L" * rng.randrange(3000, 9000) + b" " + words[0]  # longer than a (test) chunk
        else:
            line = b" ".join(words) + b"\r"
        out.append(b"%d " % i + line)
    return b"\n".join(out) + b"\n"


def naive(data: bytes, word: str) -> list[int]:
    found, offset = [], 0
    for line in data.split(b"\n")[:-1]:
        if word.lower() in log_search._visible(line).decode("utf-8", "replace").lower():
            found.append(offset)
        offset += len(line) + 1
    return found


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("query", ["needle", "BETA", "gamma alpha", "über", "mma"])
def test_candidates_are_the_lines_whose_visible_text_holds_the_word(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, query: str) -> None:
    monkeypatch.setattr(log_search, "CHUNK", 4096)  # many chunks, lines longer than one
    rng = random.Random(seed)
    data = make_log(rng, 400)
    log = tmp_path / "session.log"
    log.write_bytes(data)
    word = key_word(query)
    expected = naive(data, word)
    assert expected
    forward = list(candidates(log, query, 0, len(data)))
    backward = list(candidates(log, query, 0, len(data), backwards=True))
    assert [offset for offset, _ in forward] == expected
    assert [offset for offset, _ in backward] == expected[::-1]
    for offset, line in forward:  # each line's bytes (of a long line: its end, at least a chunk)
        whole = data[offset:data.index(b"\n", offset)]
        assert whole.endswith(line) and (line == whole or len(line) == 4096 - 1)


def test_a_range_is_searched_alone_and_stop_ends_it(tmp_path: Path) -> None:
    data = b"".join(b"line %d needle\n" % i for i in range(1000))
    log = tmp_path / "session.log"
    log.write_bytes(data)
    start = data.index(b"line 100 ")
    end = data.index(b"line 200 ")
    found = list(candidates(log, "needle", start, end))
    assert len(found) == 100 and found[0][1] == b"line 100 needle"
    seen: list[int] = []
    assert list(candidates(log, "needle", 0, len(data), stop=lambda: True)) == []
    list(candidates(log, "needle", 0, len(data), progress=seen.append))
    assert seen[-1] == len(data)
    assert list(candidates(log, "absent", 0, len(data))) == []
