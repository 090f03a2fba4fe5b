"""The watcher's session: where the fleet's watcher runs, and starting and stopping it.

The watcher (:mod:`cockpit.core.watcher`) notices what agents do while no cockpit is open. It
runs in a hidden session (:data:`SESSION`, ``_watcher``) of the fleet's own private tmux
server, so it survives the terminal or SSH login that started it. Agent names match
``^[a-z0-9][a-z0-9-]{0,39}$``, so the name can never clash with an agent's, no agent operation
can target it, and ``Fleet.agents()`` (which lists the event log's agents, not tmux's sessions)
never shows it. ``spawn``/``up``/``respawn`` start it (:func:`ensure`) under the repository lock;
it ends itself, under the same lock, once no agent is live — so a spawn racing with its end
always either finds it alive or starts a new one. Its output goes to ``.cockpit/watcher.log``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from cockpit.core.errors import CockpitError
from cockpit.core.repository import Repository

SESSION = "_watcher"


def log_path(repo: Repository) -> Path:
    return repo.layout.home / "watcher.log"


def argv(repo: Repository, offset: int) -> list[str]:
    """The watcher's command line: no shell, nothing to quote."""
    return repo.cockpit_command("_watch", "--offset", str(offset))


def running(repo: Repository) -> bool:
    return repo.tmux.has_session(SESSION)


def ensure(repo: Repository, panes: Mapping[str, object] | None = None) -> bool:
    """Start the watcher unless it runs. Call under the repository lock, after an agent
    started; ``panes`` (from ``Tmux.panes``, read after it started) saves asking tmux again.
    Returns True when it started one. Never raises: an agent runs fine unwatched (the
    failure is recorded as a ``watcher.failed`` event and in watcher.log)."""
    if (SESSION in panes) if panes is not None else running(repo):
        return False
    try:
        offset = repo.layout.events.stat().st_size
    except OSError:
        offset = 0
    try:
        return repo.tmux.start_hidden(SESSION, repo.root, {}, argv(repo, offset))
    except CockpitError as exc:
        repo.record_event("watcher.failed", None, error=str(exc))
        return False


def stop(pid: int, timeout: float = 3.0) -> None:
    """Ask the watcher (pane pid ``pid``) to end after its current round (it finishes the
    notifications in flight), and wait for it up to ``timeout`` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
