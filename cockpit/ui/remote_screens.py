"""The screen view of remote tiles: their hosts' tmux captures, fetched in workers.

A local tile in screen view is captured by every fleet poll (0.5 s). A remote tile's capture
costs a round trip and the capture on its host (over the app's kept session there), so
:class:`RemoteScreens` asks each host
at most every :data:`~cockpit.core.remote_screens.INTERVAL_S`, for all of that host's tiles in
screen view in one request, one worker per host (a slow host holds up neither the fleet poll nor
the other hosts). The answer reaches the UI thread as a :class:`RemoteCaptured` message; the
captures are rendered by the tiles' feeds exactly as local ones. A host that does not answer
leaves each tile its last capture, with a line saying why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

from textual.message import Message
from textual.message_pump import MessagePump
from textual.worker import Worker

from cockpit.core import remote_screens
from cockpit.core.errors import CockpitError
from cockpit.core.repository import Repository
from cockpit.ui.feeds import LogFeed
from cockpit.ui.messages import deliver, describe


@dataclass
class RemoteCaptured(Message, bubble=False):
    """One host's answer to a capture (posted from its worker): the screens it sent, the agents
    it could not capture and why, or why the host could not be asked at all (``problem``)."""

    host: str
    names: list[str]
    screens: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    problem: str | None = None


WorkerStarter = Callable[[Callable[[], None], str], Worker[None]]
"""Starts a function in a worker thread of the app's (``group``: its second argument)."""


class RemoteScreens:
    """Which host is being asked, and when each was last asked. UI thread only, except
    :meth:`_capture`, which runs in a worker."""

    def __init__(self, repo: Repository, target: MessagePump, start: WorkerStarter,
                 interval: float = remote_screens.INTERVAL_S) -> None:
        self.repo = repo
        self.target = target
        self.start = start
        self.interval = interval
        self.asking: set[str] = set()
        self._asked: dict[str, float] = {}
        self.requests = 0
        """Capture requests sent so far (tests read it)."""

    def due(self, host: str) -> None:
        """Ask ``host`` at the next :meth:`tick` (a tile was just switched to its screen)."""
        self._asked.pop(host, None)

    def tick(self, wanted: Mapping[str, set[str]]) -> None:
        """Start a capture of each host in ``wanted`` (host -> agent names in screen view) that is
        not being asked and was last asked :attr:`interval` ago or more."""
        now = time.monotonic()
        for host, names in sorted(wanted.items()):
            if not names or host in self.asking or now - self._asked.get(host, -self.interval) < self.interval:
                continue
            self.asking.add(host)
            self._asked[host] = now
            self.requests += 1
            self.start(partial(self._capture, host, sorted(names)), f"screen-{host}")

    def _capture(self, host: str, names: list[str]) -> None:
        """In a worker: one request to ``host``; the answer, or the reason there is none, is posted."""
        try:
            found = remote_screens.capture(self.repo, host, names)
            message = RemoteCaptured(host, names, found.screens, found.errors)
        except CockpitError as exc:  # unreachable, another version, a refusal: one line
            message = RemoteCaptured(host, names, problem=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug, but the tile says so rather than the app dying
            message = RemoteCaptured(host, names, problem=describe(exc))
        deliver(self.target, message)

    def apply(self, message: RemoteCaptured, feeds: Mapping[str, LogFeed]) -> None:
        """On the UI thread: each captured screen to its feed; an agent the host could not
        capture shows why, as a local one does; a host that did not answer leaves every feed its
        last capture and a note."""
        self.asking.discard(message.host)
        for name in message.names:
            feed = feeds.get(name)
            if feed is None:
                continue
            if message.problem is not None:
                feed.keep_screen(message.problem)
            elif name in message.screens:
                feed.set_screen(message.screens[name])
            elif name in message.errors:
                feed.set_screen([f"(no screen: {message.errors[name]})"])
