"""The screen view of remote agents: their tmux screens, captured on their host.

One ``cockpit _remote`` request (op ``capture``) per host captures every named agent's screen
there with ``capture-pane -p -e``, the call the local screen view makes
(:meth:`cockpit.core.fleet.Fleet.screen`), so a remote screen renders exactly like a local one.
The TUI sends it over its kept session to the host (:class:`cockpit.core.transport.Session`), so
it starts no cockpit there unless every session is busy; it asks a host at most every
:data:`INTERVAL_S`, for all of its tiles at once (the interval dates from when each capture
started a cockpit there, ~0.3 s of the host's CPU, and matches the TUI's look at the hosts' agents).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from cockpit.core.errors import CockpitError
from cockpit.core.hosts import transport
from cockpit.core.repository import Repository
from cockpit.core.spec import validate_name
from cockpit.core.transport import last_line

INTERVAL_S = 2.0
"""The least time between two captures of one host's screens (the local screen view: every poll,
0.5 s). The same cadence as the TUI's look at the hosts' agents (cockpit.ui.sync.REMOTE_INTERVAL)."""
TIMEOUT_S = 20.0
"""A host that has not answered a capture by then counts as unreachable for it."""


@dataclass
class Captures:
    """What one host answered: each agent's screen lines (escapes included), or why it has none."""

    screens: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def capture(repo: Repository, host: str, names: Iterable[str]) -> Captures:
    """The screens of agents ``names`` on ``host``, in one request. Raises
    :class:`~cockpit.core.transport.HostUnreachable` (the tiles keep their last capture),
    :class:`~cockpit.core.transport.RemoteMismatch` and :class:`CockpitError` (the host's cockpit
    refused, or answered something that is not a capture)."""
    wanted = sorted({validate_name(name) for name in names})
    answer = transport(repo, host).request("capture", {"names": wanted}, timeout=TIMEOUT_S)
    if answer.returncode != 0:
        raise CockpitError(f"host {host}: {last_line(answer.stderr).removeprefix('cockpit: ') or 'capture failed'}")
    try:
        data = json.loads(answer.stdout)
        screens = {str(name): [str(line) for line in lines] for name, lines in data["screens"].items()
                   if name in wanted and isinstance(lines, list)}
        errors = {str(name): str(why) for name, why in data["errors"].items() if name in wanted}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CockpitError(f"host {host}: its answer to a screen capture is not one") from None
    return Captures(screens, errors)
