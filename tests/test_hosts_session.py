"""Kept sessions (cockpit/core/transport.py's Session): a long-lived process (the TUI) sends its
requests to a host over one ``cockpit _remote`` kept running there, against real hosts (a Unix
user and an sshd of its own per host, tests/hosts_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cockpit.core import hosts as remote
from cockpit.core import transport
from cockpit.core.errors import CockpitError
from cockpit.core.fleet import Fleet
from cockpit.core.transport import HostUnreachable
from conftest import wait_until
from hosts_support import Host, Lab
from test_hosts import cockpit, configure, ok

pytestmark = [pytest.mark.ssh, pytest.mark.tmux]


def serving(host: Host) -> list[int]:
    """The pids of the kept sessions on ``host``: ``cockpit _remote`` processes of its user that
    outlive a request."""
    return sorted(p.pid for p in host.processes() if "_remote" in p.argv and "python" in p.command)


def state(host: Host, marker: tuple[str, ...]) -> str:
    found = [p.state for p in host.processes() if p.argv == marker]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def kept() -> Iterator[None]:
    transport.keep_sessions()
    try:
        yield
    finally:
        transport.close_sessions()


def test_keys_on_a_remote_agent_go_over_one_kept_session(hosts: Lab, repo: Path, kept: None) -> None:
    big, = hosts.up("big")
    hosts.install_cockpit(big)
    configure(repo, hosts, big)
    ok(cockpit(repo, "spawn", "b1", "--command", "sleep 4341", "--host", "big"))
    marker = ("sleep", "4341")
    wait_until(lambda: any(p.argv == marker for p in big.processes()), message="the agent on big")
    fleet = Fleet(repo)
    fleet.pause("b1")
    assert state(big, marker) == "T"
    session = serving(big)
    assert len(session) == 1, "one session kept on the host after the first key"
    for _ in range(3):
        fleet.resume("b1")
        assert state(big, marker) in ("S", "R")
        fleet.pause("b1")
        assert state(big, marker) == "T"
    assert serving(big) == session, "every later key went over the same session"
    # a refusal is the same one line as a one-shot request's
    with pytest.raises(CockpitError) as over_session:
        remote.run_checked(fleet, "big", ["pause", "ghost"])
    transport.close_sessions()
    wait_until(lambda: not serving(big), message="the session to end with its input")
    with pytest.raises(CockpitError) as one_shot:
        remote.run_checked(fleet, "big", ["pause", "ghost"])
    assert str(over_session.value) == str(one_shot.value) == \
        "host big: no agent named 'ghost' (see 'cockpit ls')"
    assert not serving(big), "without kept sessions a request leaves nothing running there"
    fleet.resume("b1")


def test_a_host_that_drops_fails_its_request_and_a_new_session_starts_when_it_is_back(
        hosts: Lab, repo: Path, kept: None) -> None:
    big, = hosts.up("big")
    hosts.install_cockpit(big)
    configure(repo, hosts, big)
    ok(cockpit(repo, "spawn", "b1", "--command", "sleep 4342", "--host", "big"))
    marker = ("sleep", "4342")
    fleet = Fleet(repo)
    fleet.pause("b1")
    first = serving(big)
    assert len(first) == 1
    big.stop_sshd()  # the connection drops, the kept session with it
    wait_until(lambda: not serving(big), message="the session to end with the connection")
    with pytest.raises(HostUnreachable) as dropped:
        fleet.resume("b1")
    assert "host big unreachable" in str(dropped.value)
    assert state(big, marker) == "T", "the agent stays as it was there"
    big.start_sshd()
    fleet.resume("b1")
    assert state(big, marker) in ("S", "R")
    second = serving(big)
    assert len(second) == 1 and second != first
