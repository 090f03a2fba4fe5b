"""Where everything cockpit owns lives, under ``<repo>/.cockpit/``. Paths only: no I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """The on-disk layout of one repository's fleet."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "cockpit.toml"

    @property
    def home(self) -> Path:
        return self.root / ".cockpit"

    @property
    def events(self) -> Path:
        return self.home / "events.jsonl"

    @property
    def lock(self) -> Path:
        return self.home / "lock"

    @property
    def worktrees(self) -> Path:
        return self.home / "worktrees"

    @property
    def agents(self) -> Path:
        return self.home / "agents"

    def worktree(self, name: str) -> Path:
        return self.worktrees / name

    def agent_dir(self, name: str) -> Path:
        return self.agents / name

    def session_log(self, name: str) -> Path:
        return self.agent_dir(name) / "session.log"

    def spec_file(self, name: str) -> Path:
        return self.agent_dir(name) / "spec.toml"

    def exit_file(self, name: str) -> Path:
        return self.agent_dir(name) / "exit-status"

    def tmp_dir(self, name: str) -> Path:
        return self.agent_dir(name) / "tmp"

    @property
    def radar(self) -> Path:
        """The conflict radar's last round (:mod:`cockpit.core.radar`)."""
        return self.home / "radar.json"

    @property
    def fleet_file(self) -> Path:
        """Where the fleet's tmux socket, server and cockpit command are recorded
        (:mod:`cockpit.core.server`)."""
        return self.home / "fleet.json"


def branch_for(name: str, attempt: int) -> str:
    """``cockpit/<name>`` for attempt 1, ``cockpit/<name>-v<N>`` after."""
    return f"cockpit/{name}" if attempt <= 1 else f"cockpit/{name}-v{attempt}"


def archive_ref(name: str, n: int) -> str:
    return f"refs/cockpit/archive/{name}/{n}"


def snapshot_ref(name: str) -> str:
    """Where the conflict radar keeps the snapshot of an agent's current work."""
    return f"refs/cockpit/snapshot/{name}"
