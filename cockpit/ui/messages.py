"""How the UI's parts talk back: typed Textual messages.

Workers never call into the app. A worker (a poll, an engine call a key started, the merge queue)
posts one of these to the app with :func:`deliver`, and the app's handler for it
(``on_<message name>``, on the UI thread) applies it. A screen that needs the app's attention
posts :class:`Failure`, which bubbles up to the app. Messages a screen's own workers send it are
nested in that screen (``DiffScreen.FilesLoaded``, ``ZoomScreen.Extended``...).

:func:`describe` is the one rule that turns an error into the line the user reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message
from textual.message_pump import MessagePump

from cockpit.core.errors import CockpitError
from cockpit.core.merge_outcome import Outcome

if TYPE_CHECKING:
    from cockpit.core.agent import Agent
    from cockpit.core.fleet import DiscardPreview
    from cockpit.core.merge_plan import MergePlan
    from cockpit.core.sessions import AttachPlan
    from cockpit.ui.dialogs import NewAgentRequest
    from cockpit.ui.sync import Snapshot


def describe(exc: BaseException) -> str:
    """A one-line message for an error from the engine (or, if it comes to that, a bug in it)."""
    if isinstance(exc, CockpitError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def deliver(target: MessagePump, message: Message) -> None:
    """Post ``message`` to ``target`` from any thread; nothing once the app has stopped."""
    try:
        target.post_message(message)
    except RuntimeError:  # the app's event loop is closed: nothing left to update
        pass


# -- from anywhere -------------------------------------------------------------------------------
@dataclass
class Failure(Message):
    """Something failed: the app shows ``message`` as an error (and keeps it in ``reported``)."""

    message: str


@dataclass
class Notice(Message):
    """Something the user should know, not an error."""

    message: str


# -- the fleet poll ------------------------------------------------------------------------------
@dataclass
class Polled(Message, bubble=False):
    """One poll of the fleet finished (see :class:`~cockpit.ui.sync.FleetSync`)."""

    snapshot: Snapshot


class LogsChanged(Message, bubble=False):
    """A feed has new lines (posted from any thread, once per batch): repaint dirty tiles."""


# -- operations on agents ------------------------------------------------------------------------
@dataclass
class OperationStarted(Message, bubble=False):
    """An engine call on ``agent`` runs: its tile says ``verb…`` meanwhile."""

    agent: str | None
    verb: str


@dataclass
class OperationEnded(Message, bubble=False):
    """An engine call ended, either way: the tile stops saying so, and the fleet is polled at once."""

    agent: str | None


@dataclass
class Done(Message, bubble=False):
    """An operation succeeded; ``said`` says what it did."""

    said: str


@dataclass
class DiscardPreviewed(Message, bubble=False):
    """What discarding ``agent`` would archive: ask before doing it."""

    agent: Agent
    preview: DiscardPreview


@dataclass
class Discarded(Message, bubble=False):
    agent: str
    archive: str
    """The ref the work was archived under."""


@dataclass
class Respawned(Message, bubble=False):
    agent: Agent


@dataclass
class ConfigRead(Message, bubble=False):
    """cockpit.toml was read for the new-agent form: the agents it configures (None when it
    cannot be read; ``problem`` says why). ``values`` and ``refusal`` refill the form after the
    engine refused a spawn."""

    configured: set[str] | None
    problem: str | None
    values: NewAgentRequest | None = None
    refusal: str | None = None


@dataclass
class Spawned(Message, bubble=False):
    agent: Agent


@dataclass
class SpawnRefused(Message, bubble=False):
    """The engine refused the spawn: the form opens again with the same values."""

    request: NewAgentRequest
    message: str


@dataclass
class AttachPlanned(Message, bubble=False):
    plan: AttachPlan


@dataclass
class MergePlanned(Message, bubble=False):
    agent: str
    plan: MergePlan


@dataclass
class Queued(Message, bubble=False):
    """``agent`` was put in the merge queue: ``entries`` as :func:`~cockpit.core.remote_merge.enqueue`
    says (``(name, host, position, newly_queued)``)."""

    agent: str
    entries: list[tuple[str, str | None, int, bool]]


@dataclass
class QueueReported(Message, bubble=False):
    """One report of the running merge queue (an outcome, a rebuild, a recovery)."""

    outcome: Outcome


__all__ = [
    "describe", "deliver", "Failure", "Notice", "Polled", "LogsChanged", "OperationStarted", "OperationEnded",
    "Done", "DiscardPreviewed", "Discarded", "Respawned", "ConfigRead", "Spawned", "SpawnRefused", "AttachPlanned",
    "MergePlanned", "Queued", "QueueReported",
]
