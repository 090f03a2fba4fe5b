"""Token usage read incrementally from transcripts in Claude Code's JSONL format: split responses
counted once, errors free, a line being written left for later, rotation and truncation, and a
100 MB transcript read in bounded memory."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

from claude_support import assistant_line, user_line
from cockpit.core.transcript import MAX_LINE, Reader


def totals(reader: Reader) -> tuple[int, int, int, int]:
    return tuple(reader.totals)  # type: ignore[return-value]


def test_a_response_written_as_several_lines_counts_once_and_errors_count_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(user_line() + assistant_line("msg_1", 101, 41, cache_read=2001, cache_creation=50)
                    + assistant_line("msg_1", 101, 41, cache_read=2001, cache_creation=50)  # its tool_use block
                    + user_line("tool result")
                    + assistant_line("msg_2", 120, 60, cache_read=2020, cache_creation=50)
                    + assistant_line("err", 0, 0, synthetic=True)
                    + assistant_line("side", 10, 5, sidechain=True))
    reader = Reader(str(path))
    assert reader.advance()
    assert totals(reader) == (231, 106, 4021, 100) and reader.messages == 3
    assert reader.context == 120 + 50 + 2020  # the last main-chain message: what Claude's status line shows
    assert not reader.advance()  # nothing new


def test_a_later_line_of_the_same_message_replaces_the_earlier_one(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(assistant_line("m", 100, 2))  # older CLIs wrote a placeholder output count first
    reader = Reader(str(path))
    reader.advance()
    with path.open("a") as handle:
        handle.write(assistant_line("m", 100, 41))
    reader.advance()
    assert totals(reader) == (100, 41, 0, 0) and reader.messages == 1


def test_a_line_being_written_is_read_once_it_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    line = assistant_line("m1", 10, 5)
    path.write_text(assistant_line("m0", 1, 1) + line[:40])
    reader = Reader(str(path))
    reader.advance()
    assert totals(reader) == (1, 1, 0, 0)
    with path.open("a") as handle:
        handle.write(line[40:])
    assert reader.advance()
    assert totals(reader) == (11, 6, 0, 0)
    assert reader.offset == path.stat().st_size


def test_rotation_and_truncation_start_over(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(assistant_line("a", 10, 10) + assistant_line("b", 10, 10))
    reader = Reader(str(path))
    reader.advance()
    assert totals(reader)[0] == 20
    path.write_text(assistant_line("c", 5, 5))  # truncated and rewritten: shorter than the offset
    reader.advance()
    assert totals(reader) == (5, 5, 0, 0)
    replacement = tmp_path / "new.jsonl"
    replacement.write_text(assistant_line("d", 7, 7) + assistant_line("e", 1, 1) + assistant_line("f", 1, 1))
    os.replace(replacement, path)  # another file (inode) under the same name
    reader.advance()
    assert totals(reader) == (9, 9, 0, 0)


def test_where_reading_stopped_survives_a_round_trip_through_json(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(assistant_line("m", 100, 2))
    reader = Reader(str(path))
    reader.advance()
    again = Reader.from_json(json.loads(json.dumps(reader.to_json())))
    with path.open("a") as handle:
        handle.write(assistant_line("m", 100, 41) + assistant_line("n", 1, 1))
    again.advance()
    assert totals(again) == (101, 42, 0, 0)  # "m" de-duplicated across the two readers' lives


def test_a_missing_file_or_a_fifo_changes_nothing_and_never_blocks(tmp_path: Path) -> None:
    assert not Reader(str(tmp_path / "none.jsonl")).advance()
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    assert not Reader(str(fifo)).advance()


def test_an_over_long_line_is_skipped_without_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    huge = assistant_line("big", 5, 5, content="x" * (MAX_LINE + 1000))
    path.write_text(assistant_line("a", 1, 1) + huge + assistant_line("b", 2, 2))
    reader = Reader(str(path))
    reader.advance()
    assert totals(reader) == (3, 3, 0, 0) and reader.skipped == 1


def test_an_over_long_line_still_being_written_is_skipped_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    huge = assistant_line("big", 5, 5, content="x" * (MAX_LINE + 1000))
    path.write_text(assistant_line("a", 1, 1) + huge[:MAX_LINE + 500])
    reader = Reader(str(path))
    reader.advance()
    assert reader.long_line and reader.skipped == 1
    with path.open("a") as handle:
        handle.write(huge[MAX_LINE + 500:] + assistant_line("b", 2, 2))
    reader.advance()
    assert totals(reader) == (3, 3, 0, 0) and reader.skipped == 1 and not reader.long_line


def test_a_100_mb_transcript_is_read_in_bounded_memory_and_then_incrementally(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    filler = user_line("z" * 4000)  # tool results: most of a real transcript
    block = "".join(filler for _ in range(9)) + assistant_line("m", 1, 2, cache_read=3, cache_creation=4)
    with path.open("w") as handle:
        n = 0
        while handle.tell() < 100 * 1024 * 1024:
            handle.write(block.replace('"id":"m"', f'"id":"m{n}"'))
            n += 1
    reader = Reader(str(path))
    tracemalloc.start()
    try:
        reader.advance()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reader.messages == n and totals(reader) == (n, 2 * n, 3 * n, 4 * n)
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    with path.open("a") as handle:
        handle.write(assistant_line("last", 1, 1))
    offset = reader.offset
    reader.advance()
    assert reader.messages == n + 1 and reader.offset > offset
