"""Remote agents' session logs, streamed live: one ``cockpit _remote`` follow per host, over the
host's shared ssh connection.

The host's cockpit reads every agent's ``session.log`` as it grows and writes frames: a JSON
header line ``{"name", "offset", "reset", "n"}`` then ``n`` raw bytes. :class:`HostLogStream`
reads them in a thread of its own and hands each agent's bytes to its :class:`RemoteTail`, which
a view reads exactly as it reads a local :class:`~cockpit.core.session_log.LogTail`
(``read_new``, ``was_reset``). When the stream breaks (the host dropped), the tails say why
(``read_new`` raises :class:`OSError`) and the stream starts again with backoff, from the offsets
already received: nothing is shown twice, nothing between is lost (up to the first read's limit).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from collections.abc import Callable

from cockpit import __version__
from cockpit.core.events import Event, parse
from cockpit.core.hosts import RETRY_MAX_S, RETRY_MIN_S, mark_reachable, transport
from cockpit.core.repository import Repository
from cockpit.core.transport import PROTOCOL, last_line

FOLLOW_TAIL_BYTES = 256 * 1024
"""How much of a log the host sends first for an agent seen for the first time."""


class RemoteTail:
    """One remote agent's log as received: the :class:`~cockpit.core.session_log.LogTail`
    interface a view reads (thread-safe)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.offset: int | None = None
        """The end of what was received (None: nothing yet): where a new stream starts."""
        self.was_reset = False
        self.error: str | None = None
        self._buffer = bytearray()
        self._reset = False
        self._lock = threading.Lock()

    def push(self, offset: int, reset: bool, data: bytes) -> None:
        with self._lock:
            if reset:
                self._buffer.clear()
                self._reset = True
            self._buffer += data
            self.offset = offset + len(data)
            self.error = None

    def fail(self, error: str | None) -> None:
        with self._lock:
            self.error = error

    def read_new(self, limit: int | None = None) -> bytes:
        """What arrived since the last call (its last ``limit`` bytes at most). Raises
        :class:`OSError` while the host cannot be reached and nothing new is here."""
        with self._lock:
            data = bytes(self._buffer if limit is None else self._buffer[-limit:])
            self._buffer.clear()
            self.was_reset, self._reset = self._reset, False
            if not data and self.error:
                raise OSError(self.error)
            return data


class HostLogStream:
    """Every remote agent's log of one host, through one long-running request over its ssh
    connection. ``on_data(name)`` is called (from this stream's thread) when ``name``'s tail got
    bytes or an error."""

    def __init__(self, repo: Repository, host: str, on_data: Callable[[str], None]) -> None:
        self.repo = repo
        self.host = host
        self.on_data = on_data
        self.tails: dict[str, RemoteTail] = {}
        self.error: str | None = None
        self.events_offset = -1
        """Where the host's event log was left (-1: follow it from its end, as a local view does)."""
        self.last_seq = 0
        self._events: list[Event] = []
        self.connected = False
        """Whether the stream is up (its first frame came and it has not ended since)."""
        self.delays: list[float] = []
        """The waits before each new attempt, newest last (a few): the backoff, observable."""
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name=f"logs-{host}", daemon=True)
        self._lock = threading.Lock()

    def tail(self, name: str) -> RemoteTail:
        with self._lock:
            found = self.tails.get(name)
            if found is None:
                found = self.tails[name] = RemoteTail(name)
            return found

    def drain_events(self) -> list[Event]:
        """The host's events received since the last call, each once (by sequence number, even
        across reconnections)."""
        with self._lock:
            found, self._events = self._events, []
            return found

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            got = self._follow_once()
            if self._stop.is_set():
                return
            failures = 0 if got else failures + 1
            delay = min(RETRY_MAX_S, RETRY_MIN_S * 2 ** min(failures, 16))
            self.delays = [*self.delays[-9:], delay]
            self._stop.wait(delay)

    def _take_events(self, offset: int, data: bytes) -> None:
        with self._lock:
            if offset < self.events_offset:  # the host's log was replaced: its numbers start again
                self.last_seq = 0
            self.events_offset = offset + len(data)
            for line in data.splitlines():
                event = parse(line)
                if event is not None and event.seq > self.last_seq:
                    self._events.append(event)
                    self.last_seq = event.seq

    def _follow_once(self) -> bool:
        """One stream until it ends; whether any frame came."""
        link = transport(self.repo, self.host)
        with self._lock:
            offsets = {name: tail.offset for name, tail in self.tails.items() if tail.offset is not None}
        request = json.dumps({"protocol": PROTOCOL, "version": __version__, "op": "follow", "repo": link.host.repo,
                              "offsets": offsets, "first": FOLLOW_TAIL_BYTES,
                              "events_offset": self.events_offset})
        got = False
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(link.cockpit_argv("_remote"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err)
            self._proc = proc
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(request.encode())
                proc.stdin.close()
                while not self._stop.is_set():
                    header = proc.stdout.readline()
                    if not header:
                        break
                    frame = json.loads(header)
                    data = proc.stdout.read(int(frame.get("n") or 0)) if frame.get("n") else b""
                    if not got:
                        got = self.connected = True
                        self.error = None
                        mark_reachable(self.repo, self.host, True)
                    if frame.get("events"):
                        self._take_events(int(frame["offset"]), data)
                    elif "name" in frame:
                        self.tail(str(frame["name"])).push(int(frame["offset"]), bool(frame.get("reset")), data)
                        self.on_data(str(frame["name"]))
            except (OSError, ValueError):
                pass
            finally:
                self.connected = False
                if proc.poll() is None:
                    proc.terminate()
                code = proc.wait()
                err.seek(0)
                detail = last_line(err.read().decode(errors="replace"))
        if self._stop.is_set():
            return got
        unreachable = code == 255
        self.error = (f"host {self.host} unreachable: {detail or 'ssh failed'}" if unreachable
                      else f"host {self.host}: log stream ended: {detail or f'exit {code}'}")
        if unreachable:
            mark_reachable(self.repo, self.host, False)
        with self._lock:
            tails = list(self.tails.values())
        for tail in tails:
            tail.fail(self.error)
            self.on_data(tail.name)
        return got

