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
import subprocess
import tempfile
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
