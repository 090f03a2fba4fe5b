"""The machine-wide port registry against real sockets: blocks that are free, held, never shared."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.core import ports
from cockpit.core.ports import PortsExhausted


@pytest.fixture
def repos(tmp_path: Path) -> tuple[Path, Path]:
    """Two repositories with a .cockpit/ (the registry drops blocks of repositories without one)."""
    found = []
    for name in ("one", "two"):
        root = tmp_path / name
        (root / ".cockpit").mkdir(parents=True)
        found.append(root)
    return found[0], found[1]


@pytest.fixture
def port_range(monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """A private stretch of 40 ports for this test, all free now: a window above the default range
    (which other tests' agents use at the same time), picked at random among those that are free."""
    import random
    held = {p for b in ports._load(ports.registry_path()) for p in b["ports"]}
    for _ in range(100):
        first = random.randrange(33000, 60000, 40)
        window = range(first, first + 40)
        if not held & set(window) and all(ports.bindable(p) for p in window):
            monkeypatch.setattr(ports, "PORT_RANGE", (first, first + 39))
            return first, first + 39
    pytest.fail("no window of 40 free ports found")


def test_blocks_are_consecutive_free_and_never_shared(repos, port_range) -> None:
    one, two = repos
    a = ports.allocate(one, "web", 3)
    b = ports.allocate(two, "web", 3)  # the same agent name in another repository: another block
    c = ports.allocate(one, "api", 2)
    assert len(a) == 3 and a == list(range(a[0], a[0] + 3))
    assert not set(a) & set(b) and not set(a) & set(c) and not set(b) & set(c)
    assert all(port_range[0] <= p <= port_range[1] for p in a + b + c)
    for port in a + b + c:  # each was free: a server can listen on it
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen()
    assert ports.held(one, "web") == a and ports.allocate(one, "web", 3) == a  # held: the same block again


def test_a_port_something_listens_on_is_skipped(repos, port_range) -> None:
    first, _ = port_range
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", first + 1))
        busy.listen()
        block = ports.allocate(repos[0], "web", 2)
    assert first + 1 not in block and block == [first + 2, first + 3]


def test_release_frees_the_block_and_a_later_block_may_prefer_it(repos, port_range) -> None:
    one, two = repos
    a = ports.allocate(one, "web", 2)
    ports.allocate(two, "x", 2)
    assert ports.release(one, "web") == a and ports.held(one, "web") == []
    again = ports.allocate(one, "web", 2, prefer=a)
    assert again == a
    ports.allocate(two, "y", 2, prefer=a)  # taken: another block, never the same numbers
    assert not set(ports.held(two, "y")) & set(a)


def test_exhausted_says_so_and_changes_nothing(repos, port_range) -> None:
    one, _ = repos
    ports.allocate(one, "big", 30)
    before = json.loads(ports.registry_path().read_text())
    with pytest.raises(PortsExhausted) as info:
        ports.allocate(one, "more", 20)
    message = str(info.value)
    assert "no block of 20 free TCP port(s)" in message and "lower [worktree] ports" in message and "\n" not in message
    assert json.loads(ports.registry_path().read_text()) == before
    assert not ports.available([20]) and ports.available([5, 5]) and not ports.available([5, 5, 5])


def test_blocks_of_a_repository_that_is_gone_are_dropped(repos, port_range) -> None:
    one, two = repos
    a = ports.allocate(one, "web", 40)  # the whole range
    (one / ".cockpit").rmdir()
    assert ports.allocate(two, "web", 40) == a


def test_the_registry_holds_between_processes(repos, port_range) -> None:
    """Two processes allocating at once (the flock): blocks never overlap."""
    one, two = repos
    script = ("import sys; from pathlib import Path; from cockpit.core import ports; "
              f"ports.PORT_RANGE = {port_range!r}; "
              "print(' '.join(map(str, ports.allocate(Path(sys.argv[1]), sys.argv[2], 4))))")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(root), f"a{i}"], stdout=subprocess.PIPE, text=True)
             for i in range(3) for root in (one, two)]
    blocks = [set(map(int, p.communicate(timeout=60)[0].split())) for p in procs]
    assert all(len(b) == 4 for b in blocks)
    assert len(set().union(*blocks)) == 24  # no port in two blocks


def test_describe() -> None:
    assert ports.describe([20000, 20001, 20002]) == "20000-20002"
    assert ports.describe([20000]) == "20000" and ports.describe([1, 5]) == "1 5" and ports.describe([]) == ""
