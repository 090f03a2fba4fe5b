"""LineIndex: random access to the lines of a log of any size, read from the file on demand,
checked against ``bytes.split`` of the same file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from cockpit.core.log_index import LineIndex


def truth(data: bytes) -> list[bytes]:
    """The lines of ``data`` as the index numbers them: a final newline starts no line."""
    if not data:
        return []
    lines = data.split(b"\n")
    return lines[:-1] if data.endswith(b"\n") else lines


def random_log(rng: random.Random, lines: int, long_every: int = 50, long_size: int = 3000) -> bytes:
    out = []
    for i in range(lines):
        if i % long_every == 7:
            out.append(b"L" * rng.randrange(long_size // 2, long_size))
        else:
            out.append(b"line %d " % i + b"x" * rng.randrange(0, 40) + (b"\r" if i % 3 else b""))
    return b"\n".join(out) + (b"\n" if rng.random() < 0.5 else b"")


def check_reads(index: LineIndex, expected: list[bytes], rng: random.Random, cap: int = 1 << 20) -> None:
    assert index.lines == len(expected)
    for _ in range(40):
        first = rng.randrange(0, len(expected) + 2)
        count = rng.randrange(1, 30)
        got = index.read(first, count, cap=cap)
        want = expected[first:first + count]
        assert [line.data for line in got] == [w[-cap:] for w in want], (first, count)
        assert [line.cut for line in got] == [len(w) > cap for w in want]


@pytest.mark.parametrize("seed", range(4))
def test_reads_match_the_file_whatever_the_window(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data = random_log(rng, 2000)
    log = tmp_path / "session.log"
    log.write_bytes(data)
    index = LineIndex(log, step=256)  # small steps: many checkpoints, many lines longer than one
    assert index.open(tail=1 << 30) and index.complete
    check_reads(index, truth(data), rng)
    check_reads(index, truth(data), rng, cap=100)
    offsets = [line.offset for line in index.read(0, len(truth(data)))]
    assert offsets == [sum(len(line) + 1 for line in truth(data)[:i]) for i in range(len(truth(data)))]


def test_opens_on_the_tail_then_indexes_the_head_and_renumbers(tmp_path: Path) -> None:
    rng = random.Random(7)
    data = random_log(rng, 3000)
    log = tmp_path / "session.log"
    log.write_bytes(data)
    index = LineIndex(log, step=512)
    index.open(tail=4000)
    expected = truth(data)
    assert not index.complete and 0 < index.lines < len(expected)
    tail_lines = index.lines
    assert [line.data for line in index.read(0, tail_lines)] == expected[-tail_lines:]
    numbering = index.numbering
    shift = index.scan_head()
    assert index.complete and index.numbering > numbering
    assert shift == len(expected) - tail_lines
    check_reads(index, expected, rng)


def test_follows_appends_and_starts_over_when_truncated_or_replaced(tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    index = LineIndex(log, step=64)
    assert not index.open() and index.lines == 0
    log.write_bytes(b"one\ntw")
    assert index.extend() and index.lines == 2 and index.finished_lines == 1
    assert [row.data for row in index.read(0, 5)] == [b"one", b"tw"]  # the live line is readable
    with open(log, "ab") as handle:
        handle.write(b"o\nthree\n" + b"".join(b"more %d\n" % i for i in range(100)))
    assert index.extend()
    assert not index.extend()  # nothing new
    assert [line.data for line in index.read(0, 3)] == [b"one", b"two", b"three"]
    assert index.lines == 103 == index.finished_lines
    generation = index.generation
    log.write_bytes(b"fresh\n")  # truncated and rewritten
    assert index.extend() and index.generation > generation
    assert [line.data for line in index.read(0, 5)] == [b"fresh"]
    os.rename(log, tmp_path / "old.log")
    log.write_bytes(b"a\nb\nc\nd\ne\nf\ng\n")  # re-created: a new inode, bigger than before
    assert index.extend() and [line.data for line in index.read(5, 5)] == [b"f", b"g"]


def test_a_tail_that_is_one_long_line_still_opens(tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    data = b"".join(b"early %d\n" % i for i in range(1000)) + b"P" * 300_000
    log.write_bytes(data)
    index = LineIndex(log, step=1024)
    index.open(tail=1000)
    assert index.lines >= 1
    last = index.read(index.lines - 1, 1, cap=50)[0]
    assert last.data == b"P" * 50 and last.cut
    index.scan_head()
    check_reads(index, truth(data), random.Random(1), cap=500)


def test_a_huge_sparse_log_opens_on_its_tail_and_reads_its_first_line_cheaply(tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    text = b"".join(b"line %06d of a long session log\n" % i for i in range(4000))
    with open(log, "wb") as handle:
        handle.truncate((1 << 30) - len(text))  # 1 GiB of NUL bytes: one line, read only at its end
        handle.seek(0, os.SEEK_END)
        handle.write(text)
    index = LineIndex(log)
    index.open()
    assert not index.complete and index.read(index.lines - 1, 1)[0].data == b"line 003999 of a long session log"
    assert index.scan_head() == 1 and index.lines == 4000  # the NUL bytes and "line 000000 ..." are one line
    first = index.read(0, 2, cap=64)
    assert first[0].cut and first[0].data == b"\0" * 31 + b"line 000000 of a long session log"
    assert first[1].data == b"line 000001 of a long session log"


def test_line_of_and_finished_end(tmp_path: Path) -> None:
    rng = random.Random(3)
    data = random_log(rng, 1500) + b"live line, no newline yet"
    log = tmp_path / "session.log"
    log.write_bytes(data)
    index = LineIndex(log, step=300)
    index.open(tail=5000)
    index.scan_head()
    lines = index.read(0, index.lines)
    assert [index.line_of(line.offset) for line in lines] == list(range(len(lines)))
    assert index.line_of(lines[5].offset + 1) is None
    assert index.finished_end == lines[-1].offset == len(data) - len(b"live line, no newline yet")
    assert index.finished_lines == index.lines - 1 and lines[-1].end == len(data)
