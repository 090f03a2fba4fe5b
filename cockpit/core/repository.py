"""The repository context: what every engine module works in, and nothing more.

One git repository and what cockpit keeps beside it: its ``.cockpit/`` layout, its private tmux
server, its event log and the history replayed from it, the repository lock, cockpit.toml — and
the two look-ups most operations start with, :meth:`Repository.record` and
:meth:`Repository.resolve_base`. Engine modules take a :class:`Repository` and never the
:class:`~cockpit.core.fleet.Fleet`, which builds on this with the commands users name; so the
arrows point one way, from the commands down to these parts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cockpit.core import hook_record, server, worktrees
from cockpit.core.errors import CockpitError, NotFound
from cockpit.core.events import Event, EventLog
from cockpit.core.layout import Layout
from cockpit.core.lock import repo_lock
from cockpit.core.server import AddressBook
from cockpit.core.sessions import PaneState, Tmux
from cockpit.core.spec import FleetConfig, load_config, validate_name
from cockpit.core.state import History, Record, apply

DEFAULT_MAX_FAILURES = 2
"""The failure limit while cockpit.toml cannot be read (the operations report why)."""


class Repository:
    """One repository's fleet context. Safe to use from several threads and several processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.layout = Layout(self.root)
        self.addresses = AddressBook(self.root, self.layout.fleet_file)
        self.tmux = Tmux(self.addresses)
        self.events = EventLog(self.layout.events)
        self._history = History()
        self._mutex = threading.RLock()
        self._local = threading.local()
        self._config: tuple[float | None, FleetConfig] | None = None
        self._excluded = False

    # -- config --------------------------------------------------------------------------------------
    @property
    def config(self) -> FleetConfig:
        """cockpit.toml, re-read when it changes. Raises :class:`ConfigError` when malformed."""
        path = self.layout.config
        try:
            mtime: float | None = path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if self._config is None or self._config[0] != mtime:
            self._config = (mtime, load_config(path))
        return self._config[1]

    @property
    def max_failures(self) -> int:
        try:
            return self.config.max_failures
        except CockpitError:
            return DEFAULT_MAX_FAILURES

    # -- the event log -------------------------------------------------------------------------------
    def history(self) -> History:
        """The replayed event log, read incrementally from where the last read stopped."""
        with self._mutex:
            events, offset = self.events.read(self._history.offset)
            if offset < self._history.offset:  # the log was replaced: replay from scratch
                self._history = History()
                events, offset = self.events.read(0)
            for event in events:
                apply(self._history, event)
            self._history.offset = offset
            return self._history

    def read_events(self, offset: int = 0) -> tuple[list[Event], int]:
        """Events from byte ``offset`` on: how views follow the fleet."""
        return self.events.read(offset)

    def record_event(self, type: str, agent: str | None = None, **data: object) -> Event:
        return self.events.append(type, agent, **data)

    def record(self, name: str) -> Record:
        """The live (not discarded) agent ``name`` as its events describe it; raises
        :class:`NotFound` (or a bad name's :class:`CockpitError`) otherwise."""
        validate_name(name)
        record = self.history().records.get(name)
        if record is None or record.discarded:
            raise NotFound(f"no agent named {name!r} (see 'cockpit ls')")
        return record

    # -- the lock ------------------------------------------------------------------------------------
    @contextmanager
    def locked(self, timeout: float = 60.0) -> Iterator[None]:
        """The repository lock, re-entrant within one thread."""
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        if not self.layout.home.is_dir():
            self.ensure_excluded()  # before .cockpit/ exists, so it never shows as untracked
        with repo_lock(self.layout.lock, timeout):
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0

    def ensure_excluded(self) -> None:
        """``/.cockpit/`` in .git/info/exclude: checked once per instance (a git call otherwise
        on every spawn)."""
        if not self._excluded:
            worktrees.ensure_excluded(self.root)
            self._excluded = True

    # -- git -----------------------------------------------------------------------------------------
    def resolve_base(self, base: str | None) -> tuple[str, str]:
        """The branch new agents are cut from, and its commit: ``base``, else ``[cockpit] base``,
        else the main checkout's current branch. A symbolic name (``HEAD``, ``@``,
        ``refs/heads/main``) resolves to the branch it names. Anything else — a tag, a commit,
        ``HEAD~1``, a remote-tracking branch, a detached HEAD — is refused here, because the merge
        queue lands an agent's work by fast-forwarding its base *branch* and would refuse it later."""
        ref = base or self.config.base
        if ref is None:  # the current branch: name and commit in one git call
            found = worktrees.head(self.root)
            if found is not None and found[0] != "HEAD":
                return found
            ref, sha = "HEAD", found[1] if found else None
        else:
            sha = worktrees.resolve(self.root, ref)
        if sha is None:  # (an empty repository is checked only then: one git call less per spawn)
            if worktrees.head_commit(self.root) is None:
                raise CockpitError(f"{self.root}: the repository has no commits yet (make a first commit)")
            raise CockpitError(f"base {ref!r} does not exist in {self.root}")
        full = worktrees.full_name(self.root, ref) or ""
        if full.startswith("refs/heads/"):
            return full.removeprefix("refs/heads/"), sha
        why = "the merge queue lands an agent's work by fast-forwarding its base branch"
        if full == "HEAD":
            raise CockpitError(f"the main checkout is on a detached HEAD ({sha[:12]}): {why}; check out a branch, "
                               "or give one with --base BRANCH (or base = \"BRANCH\" in cockpit.toml)")
        what = ("a tag" if full.startswith("refs/tags/") else "a remote-tracking branch"
                if full.startswith("refs/remotes/") else full if full else "a commit, not a branch")
        source = f"base {ref!r}" if base else f"base = {ref!r} in {self.layout.config.name}"
        current = worktrees.current_branch(self.root)
        instead = f"use a local branch ({current!r} is checked out)" if current else "use a local branch"
        raise CockpitError(f"{source} is {what}: {why}; {instead}, or create one at it: git branch NAME {sha[:12]}")

    # -- processes cockpit starts --------------------------------------------------------------------
    def cockpit_command(self, *args: str) -> list[str]:
        """The argv of a cockpit command on this fleet, as hooks, wrappers and the watcher run
        it: the cockpit that started the fleet (recorded with its server), or this one if that
        one can no longer run; never whatever ``cockpit`` a ``$PATH`` or ``$PYTHONPATH`` finds."""
        recorded = self.tmux.address.cockpit
        return [*(recorded if server.runnable(recorded) else server.cockpit_argv()), "-C", str(self.root), *args]

    def recorder_command(self, name: str) -> list[str]:
        """The argv of the hook recorder of agent ``name`` (:mod:`cockpit.core.hook_record`): the
        Python and the package of :meth:`cockpit_command`, without site-packages."""
        recorded = self.tmux.address.cockpit
        command = recorded if server.runnable(recorded) else server.cockpit_argv()  # [python, -I, -c, BOOT, package]
        return hook_record.argv(command[0], command[4], str(self.layout.agent_dir(name)))

    def exit_status(self, name: str, pane: PaneState) -> int | None:
        """The exit status of a dead pane: tmux's, else the one the wrapper wrote."""
        if pane.exit_status is not None:
            return pane.exit_status
        try:
            return int(self.layout.exit_file(name).read_text().strip())
        except (OSError, ValueError):
            return None
