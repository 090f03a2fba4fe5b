"""ssh to a ``[[host]]``: argument lists, one multiplexed connection per host, JSON on stdin.

The engine on a host is cockpit itself: every request runs ``COCKPIT _remote`` there (fixed words;
``COCKPIT`` is the host's validated ``cockpit`` command) and hands it one JSON object on stdin that
carries everything the user wrote — spec, task, env, ``pass_env`` values, the repository path —
so no remote shell ever reads a user's value. ssh runs with ``BatchMode=yes`` (never a prompt)
and the user's own host key checking (never turned off); connections are shared through an
OpenSSH ``ControlMaster`` whose socket lives in a private directory of this user
(``/tmp/cockpit-UID/ssh/%C``: well under ssh's ~90-byte limit).

Exit status 255 is ssh's own failure (refused, timed out, key rejected): :class:`HostUnreachable`.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cockpit import __version__
from cockpit.core.errors import CockpitError
from cockpit.core.host_table import HostSpec
from cockpit.core.server import ensure_private_dir, socket_dir

CONTROL_PERSIST_S = 600
"""How long a host's shared connection outlives its last use."""
PROTOCOL = 1
"""The version of the JSON requests ``cockpit _remote`` understands (see cockpit/cli_remote.py)."""
MISMATCH_EXIT = 3
"""``cockpit _remote`` exits with this when it is not the version of the cockpit asking."""
MISSING_COMMAND_EXIT = 127
ONE_SHOT_OPS = frozenset({"follow", "serve"})
"""Requests that never go over a kept session: a stream holds its own (see :class:`Session`)."""
SESSIONS_PER_HOST = 3
"""Kept sessions per host. A request that finds them all busy (a long ``respawn`` with its setup,
the TUI's poll of the host) runs as a one-shot ``cockpit _remote`` instead of waiting."""


class HostUnreachable(CockpitError):
    """ssh could not reach the host (exit 255): the host's agents are unknown, not gone."""

    def __init__(self, host: str, detail: str) -> None:
        super().__init__(f"host {host} unreachable: {detail}")
        self.host = host
        self.detail = detail


class RemoteMismatch(CockpitError):
    """The host runs no cockpit, or another version than this one."""


def control_dir() -> Path:
    """The private directory of this user's ssh control sockets."""
    directory = socket_dir() / "ssh"
    ensure_private_dir(socket_dir())
    ensure_private_dir(directory)
    return directory


@dataclass(frozen=True)
class Transport:
    """How to reach one host. Cheap to make; the connection itself is ssh's ControlMaster."""

    host: HostSpec

    def ssh_options(self) -> list[str]:
        """The ssh options of every connection to this host (no destination, no command)."""
        config = ["-F", os.path.expanduser(self.host.ssh_config)] if self.host.ssh_config else []
        return [*config, "-o", "BatchMode=yes", "-o", "ControlMaster=auto",
                "-o", f"ControlPath={control_dir()}/%C", "-o", f"ControlPersist={CONTROL_PERSIST_S}",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]

    def argv(self, words: Sequence[str], tty: bool = False) -> list[str]:
        """``ssh OPTIONS -T|-t -- DESTINATION WORDS``. ssh joins ``words`` with spaces for the
        remote shell: callers pass only fixed words and values cockpit validated."""
        return ["ssh", *self.ssh_options(), "-t" if tty else "-T", "--", self.host.ssh, *words]

    def cockpit_argv(self, *words: str, tty: bool = False) -> list[str]:
        """ssh running the host's cockpit (``~/`` in its path expands there)."""
        return self.argv([self.host.cockpit, *words], tty=tty)

    def git_ssh_command(self) -> str:
        """``GIT_SSH_COMMAND`` for git over this host's shared connection. git hands it to a
        local shell, so every word is quoted (:func:`shlex.join`)."""
        import shlex
        return shlex.join(["ssh", *self.ssh_options()])

    def git_url(self, path: str) -> str:
        """A git URL of ``path`` (relative to the host user's home; cockpit-made, never a user's
        value) on this host."""
        if self.host.ssh.startswith("ssh://"):
            return f"{self.host.ssh.rstrip('/')}/~/{path}"
        return f"{self.host.ssh}:{path}"

    def request(self, op: str, payload: dict[str, Any] | None = None, *, timeout: float | None = 60,
                stdout: int | IO[Any] | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
        """Run ``cockpit _remote`` on the host with ``{"op", "repo", "version", ...payload}`` on
        stdin. ``stdout=None`` lets the host's output through to ours as it comes (``logs -f``).
        Raises :class:`HostUnreachable` and :class:`RemoteMismatch`; any other exit status is the
        remote cockpit's own and is returned."""
        body = json.dumps({"protocol": PROTOCOL, "version": __version__, "op": op, "repo": self.host.repo,
                           **(payload or {})})
        pool = _pool
        if pool is not None and stdout is subprocess.PIPE and op not in ONE_SHOT_OPS:
            answer = pool.call(self, body, timeout)
            if answer is not None:
                self.raise_for(answer)
                return answer
        # stderr goes to a file, not a pipe: a ControlPersist master forks off and would keep a
        # pipe open until it exits, so reading a pipe to its end would wait for it
        with tempfile.TemporaryFile() as err:
            try:
                result = subprocess.run(self.cockpit_argv("_remote"), input=body, stdout=stdout, stderr=err,
                                        text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise HostUnreachable(self.host.name, f"no answer within {timeout:g}s") from None
            err.seek(0)
            result.stderr = err.read().decode(errors="replace")
        self.raise_for(result)
        return result

    def run(self, words: Sequence[str], *, input: str | None = None, timeout: float | None = 60,
            stdin: IO[bytes] | None = None) -> subprocess.CompletedProcess[str]:
        """Run fixed ``words`` on the host (no cockpit needed: probes, the installer). Raises
        :class:`HostUnreachable` only."""
        with tempfile.TemporaryFile() as err:
            try:
                if stdin is not None:
                    raw = subprocess.run(self.argv(words), stdin=stdin, stdout=subprocess.PIPE, stderr=err,
                                         timeout=timeout)
                    result = subprocess.CompletedProcess(raw.args, raw.returncode,
                                                         raw.stdout.decode(errors="replace"), "")
                else:
                    result = subprocess.run(self.argv(words), input=input or "", stdout=subprocess.PIPE,
                                            stderr=err, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise HostUnreachable(self.host.name, f"no answer within {timeout:g}s") from None
            err.seek(0)
            result.stderr = err.read().decode(errors="replace")
        if result.returncode == 255:
            raise HostUnreachable(self.host.name, last_line(result.stderr) or "ssh failed")
        return result

    def raise_for(self, result: subprocess.CompletedProcess[str]) -> None:
        """ssh's failures and a cockpit that cannot serve this one, as errors; else nothing."""
        stderr = result.stderr or ""
        if result.returncode == 255:
            raise HostUnreachable(self.host.name, last_line(stderr) or "ssh failed")
        install = f"run 'cockpit hosts install {self.host.name}'"
        if result.returncode == MISSING_COMMAND_EXIT:
            raise RemoteMismatch(f"host {self.host.name}: no cockpit at {self.host.cockpit!r} there ({install}, "
                                 "or set cockpit = \"PATH\" in its [[host]] table)")
        if result.returncode == MISMATCH_EXIT and "cockpit version" in stderr:
            raise RemoteMismatch(f"host {self.host.name}: {last_line(stderr).removeprefix('cockpit: ')} ({install})")
        if result.returncode == 2 and "_remote" in stderr and "invalid choice" in stderr:
            raise RemoteMismatch(f"host {self.host.name}: its cockpit is older than {__version__} and cannot serve "
                                 f"this one ({install})")


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def close(host: HostSpec) -> None:
    """End the shared connection to ``host`` (``ssh -O exit``), if there is one."""
    transport = Transport(host)
    subprocess.run(["ssh", *transport.ssh_options(), "-O", "exit", "--", host.ssh], stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=10)


class Session:
    """One ``cockpit _remote`` kept running on a host (op ``serve``) for a long-lived process: a
    request is one line of JSON there and one line back, over the host's open connection, so a key
    on a remote agent costs one round trip and the command's own work, not a new ssh session, a
    Python start-up and cockpit's imports on the host (~150-250 ms measured: docs/hosts.md).

    Used by one request at a time (:class:`SessionPool` hands it out). A session that ended while
    idle (the host dropped, ControlPersist expired, the host's cockpit was replaced) is started
    again on the next request; one that ends during a request is that request's failure, never
    retried (the command may have run)."""

    def __init__(self, link: Transport) -> None:
        self.link = link
        self.proc: subprocess.Popen[bytes] | None = None
        self.err: IO[bytes] | None = None
        self.buffer = b""

    def _start(self, timeout: float | None) -> None:
        self.close()
        self.err = tempfile.TemporaryFile()  # a file, not a pipe: see Transport.request
        self.proc = subprocess.Popen(self.link.cockpit_argv("_remote"), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, bufsize=0)
        self.buffer = b""
        hello = {"protocol": PROTOCOL, "version": __version__, "op": "serve", "repo": self.link.host.repo}
        answer = self._exchange(json.dumps(hello), timeout, starting=True)
        if answer.get("ready") is not True:
            self.close()
            raise CockpitError(f"host {self.link.host.name}: its cockpit did not start a session")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def call(self, body: str, timeout: float | None) -> subprocess.CompletedProcess[str]:
        """Send one request (``body``: what a one-shot ``_remote`` reads on stdin); its answer as
        the one-shot's would be. Raises :class:`HostUnreachable` when the host does not answer."""
        if not self.alive():
            self._start(timeout)
        answer = self._exchange(body, timeout)
        return subprocess.CompletedProcess(["_remote"], int(answer["status"]), str(answer.get("stdout", "")),
                                           str(answer.get("stderr", "")))

    def _exchange(self, line: str, timeout: float | None, starting: bool = False) -> dict[str, Any]:
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        data = memoryview(line.encode() + b"\n")
        try:
            while data:
                data = data[proc.stdin.write(data) or 0:]
        except OSError:  # BrokenPipeError: it ended while idle, before reading this
            self._ended("the session ended", starting)
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = proc.stdout.fileno()
        readable = select.poll()  # not select.select: a TUI watching many logs may hold fds past 1024
        readable.register(fd, select.POLLIN)
        while b"\n" not in self.buffer:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                self.close()
                raise HostUnreachable(self.link.host.name, f"no answer within {timeout:g}s")
            if not readable.poll(None if left is None else max(1, int(left * 1000))):
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self._ended("the connection ended during the request", starting)
            self.buffer += chunk
        frame, _, self.buffer = self.buffer.partition(b"\n")
        try:
            answer = json.loads(frame)
        except ValueError:
            self.close()
            raise CockpitError(f"host {self.link.host.name}: its cockpit answered something else than JSON") from None
        if not isinstance(answer, dict):
            self.close()
            raise CockpitError(f"host {self.link.host.name}: its cockpit answered something else than JSON")
        return answer

    def _ended(self, what: str, starting: bool) -> None:
        """The session's process is gone (or going): ssh's failure, a cockpit that cannot serve
        this one (the one-shot's errors, from its exit status and stderr), else ``what``."""
        proc, err = self.proc, self.err
        assert proc is not None and err is not None
        try:
            status = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = proc.wait()
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        self.close()
        result = subprocess.CompletedProcess(["_remote"], status, "", stderr)
        self.link.raise_for(result)
        if starting and last_line(stderr):
            raise CockpitError(f"host {self.link.host.name}: {last_line(stderr).removeprefix('cockpit: ')}")
        raise HostUnreachable(self.link.host.name, what)

    def close(self) -> None:
        """End the session: its cockpit there reads the end of its input and exits."""
        proc, self.proc = self.proc, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.err is not None:
            self.err.close()
            self.err = None


class SessionPool:
    """The kept sessions of a long-lived process, at most :data:`SESSIONS_PER_HOST` per host."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: dict[HostSpec, list[Session]] = {}
        self.busy: dict[HostSpec, int] = {}
        self.closed = False

    def call(self, link: Transport, body: str, timeout: float | None) -> subprocess.CompletedProcess[str] | None:
        """The answer to ``body`` over a kept session of ``link``'s host; ``None`` when all of
        them are busy (the caller runs a one-shot request)."""
        with self.lock:
            if self.closed:
                return None
            idle = self.idle.setdefault(link.host, [])
            if idle:
                session = idle.pop()
            elif self.busy.get(link.host, 0) < SESSIONS_PER_HOST:
                session = Session(link)
            else:
                return None
            self.busy[link.host] = self.busy.get(link.host, 0) + 1
        ok = False
        try:
            answer = session.call(body, timeout)
            ok = True
            return answer
        finally:
            with self.lock:
                self.busy[link.host] -= 1
                keep = ok and not self.closed and session.alive()
                if keep:
                    self.idle[link.host].append(session)
            if not keep:
                session.close()

    def close(self) -> None:
        """End the idle sessions (a busy one ends when its request is answered). In a thread of
        its own: each may take a moment to exit, and the caller is the TUI quitting."""
        with self.lock:
            self.closed = True
            sessions = [s for idle in self.idle.values() for s in idle]
            self.idle.clear()
        if sessions:
            threading.Thread(target=_close_all, args=(sessions,), daemon=True, name="cockpit-close-sessions").start()


def _close_all(sessions: list[Session]) -> None:
    for session in sessions:
        session.close()


_pool: SessionPool | None = None


def keep_sessions() -> None:
    """From now on, requests from this process go over kept sessions (the TUI: its keys on remote
    agents, its polls of the hosts). A CLI command makes one request per host and keeps none."""
    global _pool
    if _pool is None:
        _pool = SessionPool()


def close_sessions() -> None:
    """End every kept session (the TUI on its way out); requests go one-shot again."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.close()
