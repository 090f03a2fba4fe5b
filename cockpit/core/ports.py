"""A block of free TCP ports per agent (``[worktree] ports = N``), never shared on this machine.

Two agents that start their app's dev server both try port 3000. With ``ports = N`` each agent
gets N consecutive TCP ports that were free when it was spawned, exported as ``COCKPIT_PORT``
(the first) and ``COCKPIT_PORTS`` (all, space-separated), and holds them from spawn until
discard: a killed agent keeps them, ``respawn --keep`` reuses them.

"Never shared" holds across every fleet of this user on the machine: the blocks are recorded in
one registry, ``/tmp/cockpit-<uid>/ports.json`` (the directory of the fleets' tmux sockets:
private, and the same path from a login shell, cron or an agent, unlike ``$HOME`` or
``$TMPDIR``), read and written under an ``flock`` on ``ports.lock`` beside it. A port is free
when nobody's block holds it and a server could bind it now (IPv4 and IPv6). Blocks of a
repository whose ``.cockpit/`` is gone are dropped on the next allocation.

Ports come from :data:`PORT_RANGE`, below Linux's ephemeral range (32768-60999 by default), so
the kernel never hands one of them to an outgoing connection meanwhile.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cockpit.core.errors import CockpitError
from cockpit.core.lock import repo_lock
from cockpit.core.server import ensure_private_dir, socket_dir

PORT_RANGE = (20000, 32767)
"""The ports blocks are taken from (first, last), both included."""
REGISTRY = "ports.json"
LOCK = "ports.lock"


class PortsExhausted(CockpitError):
    """No block of the wanted size is free: the message says how many are held and how to fix it."""


def registry_path() -> Path:
    return socket_dir() / REGISTRY


def _load(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError):  # a torn or foreign file: start over rather than refuse every spawn
        return []
    blocks = data.get("blocks") if isinstance(data, dict) else None
    if not isinstance(blocks, list):
        return []
    return [b for b in blocks if isinstance(b, dict) and isinstance(b.get("repo"), str)
            and isinstance(b.get("agent"), str) and isinstance(b.get("ports"), list)
            and all(isinstance(p, int) for p in b["ports"])]


def _save(path: Path, blocks: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f"{REGISTRY}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": 1, "blocks": blocks}, indent=1) + "\n")
    os.replace(tmp, path)


@contextmanager
def _registry() -> Iterator[list[dict[str, Any]]]:
    """The registry's blocks, under its lock; what the block leaves in the list is saved."""
    directory = socket_dir()
    ensure_private_dir(directory)
    with repo_lock(directory / LOCK, timeout=30):
        path = directory / REGISTRY
        loaded = _load(path)
        blocks = [b for b in loaded if (Path(b["repo"]) / ".cockpit").is_dir()]
        yield blocks
        if blocks != loaded:
            _save(path, blocks)


def _key(root: Path) -> str:
    return str(Path(root).resolve())


def bindable(port: int) -> bool:
    """Whether a server could listen on ``port`` now, on every address (IPv4 and, where the
    machine has it, IPv6). ``SO_REUSEADDR`` as servers set it: connections in TIME_WAIT from an
    earlier server do not make a port busy, a listening socket does."""
    import socket  # (here: of every command that imports this module, only a spawn probes a port)
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            probe = socket.socket(family, socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this machine
            continue
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind((address, port))
            except OSError as exc:
                if family == socket.AF_INET6 and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    continue
                return False
    return True


def held(root: Path, name: str) -> list[int]:
    """The block the agent ``name`` of the repository at ``root`` holds ([] if none)."""
    with _registry() as blocks:
        return next((list(b["ports"]) for b in blocks if b["repo"] == _key(root) and b["agent"] == name), [])


def _find(count: int, taken: set[int], prefer: Iterable[int]) -> list[int] | None:
    wanted = sorted(set(prefer))
    if len(wanted) == count and not taken & set(wanted) and all(bindable(p) for p in wanted):
        return wanted
    first, last = PORT_RANGE
    port = first
    while port + count - 1 <= last:
        block = list(range(port, port + count))
        clash = next((p for p in reversed(block) if p in taken or not bindable(p)), None)
        if clash is None:
            return block
        port = clash + 1
    return None


def allocate(root: Path, name: str, count: int, prefer: Iterable[int] = ()) -> list[int]:
    """The agent's block of ``count`` ports: the one it holds when that has the right size,
    else a new one (``prefer``'s numbers when they are all free, else the first free block of
    :data:`PORT_RANGE`). ``count`` 0 releases what it held and returns []. Raises
    :class:`PortsExhausted` (nothing changed) when no block is free."""
    key = _key(root)
    with _registry() as blocks:
        mine = next((b for b in blocks if b["repo"] == key and b["agent"] == name), None)
        if mine is not None and len(mine["ports"]) == count:
            return list(mine["ports"])
        others = [b for b in blocks if b is not mine]
        if count <= 0:
            blocks[:] = others
            return []
        taken = {p for b in others for p in b["ports"]}
        found = _find(count, taken, prefer or (mine["ports"] if mine else ()))
        if found is None:
            first, last = PORT_RANGE
            raise PortsExhausted(
                f"no block of {count} free TCP port(s) left in {first}-{last} for agent {name!r} "
                f"({len(taken)} held by cockpit agents on this machine, see {registry_path()}; the rest in use): "
                "lower [worktree] ports in cockpit.toml, or discard agents you no longer need")
        blocks[:] = others + [{"repo": key, "agent": name, "ports": found,
                               "since": datetime.now(UTC).isoformat(timespec="seconds")}]
        return found


def release(root: Path, name: str) -> list[int]:
    """Give the agent's block back; returns the ports it held ([] if none)."""
    key = _key(root)
    with _registry() as blocks:
        mine = [b for b in blocks if b["repo"] == key and b["agent"] == name]
        blocks[:] = [b for b in blocks if b not in mine]
        return [p for b in mine for p in b["ports"]]


def release_repository(root: Path) -> list[int]:
    """Give back every block of the repository at ``root`` (its fleet is gone for good)."""
    key = _key(root)
    with _registry() as blocks:
        mine = [b for b in blocks if b["repo"] == key]
        blocks[:] = [b for b in blocks if b["repo"] != key]
        return [p for b in mine for p in b["ports"]]


def available(counts: list[int]) -> bool:
    """Whether new blocks of each of ``counts`` ports could be allocated now, all at once (for the
    pre-spawn checklist; nothing is held)."""
    wanted = [count for count in counts if count > 0]
    if not wanted:
        return True
    with _registry() as blocks:
        taken = {p for b in blocks for p in b["ports"]}
        for count in wanted:
            found = _find(count, taken, ())
            if found is None:
                return False
            taken.update(found)
        return True


def describe(ports: list[int]) -> str:
    """``20000-20002`` for a consecutive block, else the numbers."""
    if not ports:
        return ""
    if len(ports) > 1 and ports == list(range(ports[0], ports[0] + len(ports))):
        return f"{ports[0]}-{ports[-1]}"
    return " ".join(str(p) for p in ports)
