"""The event log: durable appends with increasing seq; a torn line is skipped, never fatal."""

import json
import threading
from pathlib import Path

from cockpit.core.events import EventLog


def test_append_and_read(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    first = log.append("spawned", "a", attempt=1)
    second = log.append("paused", "a")
    assert (first.seq, second.seq) == (1, 2)
    events = log.all()
    assert [e.type for e in events] == ["spawned", "paused"]
    assert events[0].data == {"attempt": 1}
    line = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[0])
    assert set(line) == {"seq", "ts", "type", "agent", "data"} and line["ts"].endswith("+00:00")


def test_torn_last_line_is_skipped_and_next_append_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.append("spawned", "a")
    with path.open("ab") as handle:
        handle.write(b'{"seq": 2, "ts": "2026-')  # a crash mid-write
    assert [e.type for e in log.all()] == ["spawned"]
    event = log.append("killed", "a")
    assert event.seq == 2
    assert [e.type for e in log.all()] == ["spawned", "killed"]


def test_garbage_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'not json\n\xff\xfe\n{"seq": 5, "ts": "x", "type": "t", "agent": "a", "data": {}}\n')
    log = EventLog(path)
    assert [e.seq for e in log.all()] == [5]
    assert log.append("u", "a").seq == 6


def test_incremental_read_does_not_consume_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.append("a", "x")
    events, offset = log.read(0)
    with path.open("ab") as handle:
        handle.write(b'{"seq": 2')
    more, offset2 = log.read(offset)
    assert more == [] and offset2 == offset


def test_concurrent_appends_keep_unique_seq(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")

    def worker() -> None:
        for _ in range(50):
            EventLog(tmp_path / "events.jsonl").append("tick", "a")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seqs = [e.seq for e in log.all()]
    assert sorted(seqs) == list(range(1, 201))
