"""The host side of a remote agent's log stream (``cockpit _remote`` with a ``follow`` request),
run here as a plain process on a real repository: no ssh, no tmux. The stream's poll timer is
set to an hour, so what arrives can only have been woken by its log watcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from cockpit import __version__
from cockpit.core.transport import PROTOCOL
from devsupport.polling import wait_until

PROJECT = Path(__file__).resolve().parent.parent
HOST_SIDE = ("import sys; from cockpit import cli_remote; from cockpit.cli import main; "
             "cli_remote.FOLLOW_POLL_S = 3600; sys.exit(cli_remote.main(sys.stdin.read(), main))")


class Frames:
    """Reads the stream's frames in a thread: each agent's bytes, the event log's bytes."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.logs: dict[str, bytes] = {}
        self.events = b""
        self.proc = proc
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while header := self.proc.stdout.readline():
            frame = json.loads(header)
            data = self.proc.stdout.read(int(frame.get("n") or 0)) if frame.get("n") else b""
            if frame.get("events"):
                self.events += data
            elif "name" in frame:
                self.logs[frame["name"]] = self.logs.get(frame["name"], b"") + data


def test_a_write_to_a_followed_log_wakes_the_stream_not_its_poll_timer(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "--quiet", str(repo)], check=True)
    agents = repo / ".cockpit" / "agents"
    (agents / "a").mkdir(parents=True)
    log = agents / "a" / "session.log"
    log.write_bytes(b"first\n")
    (repo / ".cockpit" / "events.jsonl").write_bytes(b"")
    request = {"protocol": PROTOCOL, "version": __version__, "op": "follow", "repo": str(repo), "offsets": {},
               "first": 1024, "events_offset": -1}
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    proc = subprocess.Popen([sys.executable, "-c", HOST_SIDE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(request).encode())
        proc.stdin.close()
        frames = Frames(proc)
        wait_until(lambda: frames.logs.get("a") == b"first\n", 30, message="the log as it was")
        with open(log, "ab") as f:
            f.write(b"second\n")
        wait_until(lambda: frames.logs.get("a") == b"first\nsecond\n", 30, message="the appended line")
        # a new agent: its log is found when the event log (which a spawn appends to) wakes the stream
        (agents / "b").mkdir()
        (agents / "b" / "session.log").write_bytes(b"from b\n")
        with open(repo / ".cockpit" / "events.jsonl", "ab") as f:
            f.write(b'{"seq": 1, "kind": "spawned", "agent": "b"}\n')
        wait_until(lambda: frames.logs.get("b") == b"from b\n" and b'"spawned"' in frames.events, 30,
                   message="the new agent's log and the event")
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)
