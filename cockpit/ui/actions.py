"""What the keys do: :class:`AgentActions`, the app's actions as a mixin of
:class:`~cockpit.ui.app.CockpitApp`.

Agent actions take an optional agent name (the palette passes one); without it they act on the
focused tile. Anything that touches git or tmux runs in a worker (:meth:`AgentActions.run_op`);
the worker reports back with a message (:mod:`cockpit.ui.messages`) that a handler here applies
on the UI thread, and a refusal from the engine becomes an error notification.
"""

from __future__ import annotations

import os
import shlex
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from textual import work
from textual.app import App, SuspendNotSupported
from textual.message import Message

from cockpit.core import remote_merge
from cockpit.core.activity import next_needing_attention
from cockpit.core.errors import CockpitError
from cockpit.core.merge_plan import plan_merge
from cockpit.core.queue import QueueBusy, pending
from cockpit.core.sessions import AttachPlan
from cockpit.ui.dialogs import (
    ConfirmDialog,
    DiscardDialog,
    NewAgentDialog,
    NewAgentRequest,
    RespawnDialog,
    RespawnRequest,
)
from cockpit.ui.diffview import DiffScreen
from cockpit.ui.help import HelpScreen
from cockpit.ui.messages import (
    AttachPlanned,
    ConfigRead,
    Discarded,
    DiscardPreviewed,
    Done,
    Failure,
    MergePlanned,
    Notice,
    OperationEnded,
    OperationStarted,
    Queued,
    QueueReported,
    Respawned,
    Spawned,
    SpawnRefused,
    deliver,
    describe,
)
from cockpit.ui.tiles import AgentTile, TileGrid
from cockpit.ui.verbs import unavailable
from cockpit.ui.zoom import ZoomScreen

if TYPE_CHECKING:
    from cockpit.core.agent import Agent
    from cockpit.core.fleet import Fleet

    _App = App[int]
else:
    _App = object

AttachRunner = Callable[[list[str], dict[str, str]], int]
"""Runs the attach command in the real terminal and returns its exit status."""


class AgentActions(_App):
    """The app's actions and what answers its workers. Mixed into ``CockpitApp``, which
    provides what is declared here."""

    fleet: Fleet
    agents: list[Agent]
    keymap: dict[str, str]
    attach_runner: AttachRunner
    queue_stop: threading.Event
    reported: list[str]
    focus_next: str | None
    """The agent whose tile takes the focus once it shows (a spawn asked for it)."""

    if TYPE_CHECKING:
        def tile(self, name: str | None = None) -> AgentTile | None: ...
        def toggle_view(self, tile: AgentTile) -> None: ...
        def request_poll(self, force: bool = False) -> None: ...
        def report_error(self, message: str) -> None: ...
        def show_tile(self, tile: AgentTile) -> None: ...

    # -- running engine calls ----------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="ops")
    def run_op(self, name: str | None, verb: str, call: Callable[..., Any], *args: Any,
               done: Callable[[Any], Message] | None = None, pending: bool = True,
               failed: Callable[[str], Message] | None = None, **kwargs: Any) -> None:
        """Run one engine call in a worker thread. While it runs the tile shows ``verb…``. On
        success the message ``done(result)`` is posted; an error becomes a :class:`Failure`,
        or the message ``failed(error)`` (to show it where the user acted)."""
        if pending:
            deliver(self, OperationStarted(name, verb))
        try:
            result = call(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure reaches the user as a message
            deliver(self, (failed or Failure)(describe(exc)))
        else:
            if done is not None:
                deliver(self, done(result))
        finally:
            if pending:
                deliver(self, OperationEnded(name))

    def on_operation_started(self, message: OperationStarted) -> None:
        self._show_pending(message.agent, message.verb)

    def on_operation_ended(self, message: OperationEnded) -> None:
        self._show_pending(message.agent, None)
        self.request_poll(True)

    def _show_pending(self, name: str | None, verb: str | None) -> None:
        tile = self.tile(name) if name else None
        if tile is not None:
            tile.pending = verb
            tile.refresh_subtitle()

    def on_done(self, message: Done) -> None:
        self.notify(message.said)

    def on_notice(self, message: Notice) -> None:
        self.notify(message.message)

    # -- choosing the agent ------------------------------------------------------------------------
    def _target(self, name: str | None, action: str | None = None) -> AgentTile | None:
        """The tile to act on; None (said to the user at once) when there is none, or when
        ``action`` cannot apply to its agent now."""
        tile = self.tile(name)
        if tile is None:
            self.notify("no agent selected (n: new agent)", severity="warning")
            return None
        if action and self._refused(tile, action):
            return None
        return tile

    def _refused(self, tile: AgentTile, action: str) -> bool:
        """Say at once why ``action`` cannot apply to the tile's agent; False when it can."""
        why = unavailable(tile.agent, action)
        if why:
            self.notify(why, severity="warning")
        return why is not None

    def _focus(self, tile: AgentTile) -> None:
        """Focus at once (in the list: highlight its row). ``Widget.focus()`` defers to the next
        idle moment, so a key typed right after a move (``j d``) would act on the tile that was
        focused before: the wrong agent."""
        self.show_tile(tile)

    def action_move(self, dx: int, dy: int) -> None:
        """Move focus by grid geometry; down from a full row into a shorter last row lands on its
        last tile."""
        grid = self.query_one(TileGrid)
        tiles = grid.shown
        if not tiles:
            return
        current = self.focused
        if not isinstance(current, AgentTile) or current not in tiles:
            self._focus(tiles[0])
            return
        index = tiles.index(current)
        target = index + dx + dy * grid.columns
        if target >= len(tiles) and dy > 0 and index // grid.columns < (len(tiles) - 1) // grid.columns:
            target = len(tiles) - 1
        if 0 <= target < len(tiles):
            self._focus(tiles[target])

    def action_focus_tile(self, step: int) -> None:
        tiles = self.query_one(TileGrid).shown
        if not tiles:
            return
        current = self.focused
        index = tiles.index(current) if isinstance(current, AgentTile) and current in tiles else -step
        self._focus(tiles[(index + step) % len(tiles)])

    def action_next_attention(self) -> None:
        """Focus the next agent that needs the user: waiting, then stalled, then failed."""
        current = self.tile()
        name = next_needing_attention(self.agents, current.agent.name if current else None)
        tile = self.tile(name) if name else None
        if tile is None:
            self.notify("no agent is waiting, stalled or failed")
            return
        self._focus(tile)

    # -- the process -------------------------------------------------------------------------------
    def action_pause(self, name: str | None = None) -> None:
        """Pause a running agent; resume a paused one."""
        tile = self._target(name, "pause")
        if tile is None:
            return
        agent = tile.agent.name
        if tile.agent.process == "paused":
            self.run_op(agent, "resuming", self.fleet.resume, agent, done=partial(_said, f"resumed {agent}"))
        else:
            self.run_op(agent, "pausing", self.fleet.pause, agent, done=partial(_said, f"paused {agent}"))

    def action_resume(self, name: str | None = None) -> None:
        tile = self._target(name, "resume")
        if tile is not None:
            agent = tile.agent.name
            self.run_op(agent, "resuming", self.fleet.resume, agent, done=partial(_said, f"resumed {agent}"))

    def action_kill(self, name: str | None = None) -> None:
        tile = self._target(name, "kill")
        if tile is None:
            return
        agent = tile.agent.name
        self.push_screen(ConfirmDialog(f"Kill {agent}?", "Its processes and tmux session end. The worktree, "
                                       "branch and log stay (r respawns it, d discards it).", "Kill"),
                         partial(self._kill_decided, agent))

    def _kill_decided(self, agent: str, ok: bool | None) -> None:
        if ok:
            self.run_op(agent, "killing", self.fleet.kill, agent, done=partial(_said, f"killed {agent}"))

    def action_mark_failed(self, name: str | None = None) -> None:
        """Count a failure the user saw; at max_failures the agent and its dependents halt."""
        tile = self._target(name, "mark_failed")
        if tile is None:
            return
        agent = tile.agent
        last = agent.failures + 1 >= agent.max_failures
        self.push_screen(ConfirmDialog(
            f"Mark {agent.name} failed?",
            f"Failure {agent.failures + 1} of {agent.max_failures}: its process stops"
            + (", and it is halted with every agent that depends on it." if last else "."), "Mark failed"),
            partial(self._mark_failed_decided, agent.name))

    def _mark_failed_decided(self, agent: str, ok: bool | None) -> None:
        if ok:
            self.run_op(agent, "failing", self.fleet.mark_failed, agent, done=partial(_said, f"marked {agent} failed"))

    # -- the worktree ------------------------------------------------------------------------------
    def action_discard(self, name: str | None = None) -> None:
        """Fetch what a discard would archive (worker), then ask."""
        tile = self._target(name)
        if tile is not None:
            agent = tile.agent
            self.run_op(agent.name, "checking", self.fleet.discard_preview, agent.name,
                        done=partial(DiscardPreviewed, agent), pending=False)

    def on_discard_previewed(self, message: DiscardPreviewed) -> None:
        self.push_screen(DiscardDialog(message.agent, message.preview), partial(self._discard_decided, message.agent))

    def _discard_decided(self, agent: Agent, ok: bool | None) -> None:
        if ok:
            self.run_op(agent.name, "discarding", self.fleet.discard, agent.name, done=partial(Discarded, agent.name))

    def on_discarded(self, message: Discarded) -> None:
        self.notify(f"discarded {message.agent}; archive: {message.archive}", timeout=8)

    def action_respawn(self, name: str | None = None) -> None:
        tile = self._target(name)
        if tile is not None:
            self.push_screen(RespawnDialog(tile.agent), self._respawn_decided)

    def _respawn_decided(self, request: RespawnRequest | None) -> None:
        if request is not None:
            self.run_op(request.name, "respawning", self.fleet.respawn, request.name, keep=request.keep,
                        task=request.task, force=request.force,
                        fresh=request.new_conversation, done=Respawned)

    def on_respawned(self, message: Respawned) -> None:
        self.notify(f"respawned {message.agent.name}: attempt {message.agent.attempt}")

    def action_new_agent(self, values: NewAgentRequest | None = None, problem: str | None = None) -> None:
        """The new-agent form. It checks the name and the command itself (reading cockpit.toml in
        a worker first); a spawn the engine refuses reopens it with the same values and the reason."""
        self._read_config(values, problem)

    @work(thread=True, exit_on_error=False, group="ops")
    def _read_config(self, values: NewAgentRequest | None, refusal: str | None) -> None:
        try:
            configured: set[str] | None = set(self.fleet.config.agents)
            problem = None
        except CockpitError as exc:
            configured, problem = None, describe(exc)
        deliver(self, ConfigRead(configured, problem, values, refusal))

    def on_config_read(self, message: ConfigRead) -> None:
        existing = {agent.name for agent in self.agents}
        self.push_screen(NewAgentDialog(existing, message.configured, message.problem, message.values,
                                        message.refusal), self._spawn_decided)

    def _spawn_decided(self, request: NewAgentRequest | None) -> None:
        if request is not None:
            self.run_op(request.name, "spawning", self.fleet.spawn, request.name, command=request.command,
                        task=request.task, scope=request.scope or None, done=Spawned,
                        failed=partial(SpawnRefused, request))

    def on_spawned(self, message: Spawned) -> None:
        self.focus_next = message.agent.name
        self.notify(f"spawned {message.agent.name}")

    def on_spawn_refused(self, message: SpawnRefused) -> None:
        self.reported.append(message.message)
        self.action_new_agent(message.request, message.message)  # the same form again, with the reason

    # -- the terminal ------------------------------------------------------------------------------
    def action_attach(self, name: str | None = None) -> None:
        """Ask the engine how to attach (worker), then attach: in a popup of the user's own tmux
        when cockpit runs inside one, else by handing this terminal over."""
        tile = self._target(name, "attach")
        if tile is not None:
            self.run_op(tile.agent.name, "attaching", self.fleet.attach_plan, tile.agent.name, dict(os.environ),
                        done=AttachPlanned, pending=False)

    def on_attach_planned(self, message: AttachPlanned) -> None:
        self.attach_now(message.plan)

    def attach_now(self, plan: AttachPlan) -> None:
        """Attach as ``plan`` says. A popup runs in a worker while the grid stays on screen behind
        it; a plain attach suspends the app, and detaching comes back here."""
        if plan.note:
            self.notify(plan.note, timeout=10)
        if plan.popup:
            self._attach_in_popup(plan)
            return
        try:
            with self.suspend():
                code = self.attach_runner(plan.argv, plan.env)
        except SuspendNotSupported:
            self.report_error(f"cannot hand over this terminal; attach from another one: {shlex.join(plan.argv)}")
            return
        except OSError as exc:
            self.report_error(f"attach failed: {describe(exc)}")
            return
        if code:
            self.report_error(f"attach ended with exit status {code}: {shlex.join(plan.argv)}")
        self.refresh(layout=True)
        self.request_poll(True)

    @work(thread=True, exit_on_error=False, group="attach")
    def _attach_in_popup(self, plan: AttachPlan) -> None:
        """The popup blocks until the user detaches."""
        try:
            code = self.attach_runner(plan.argv, plan.env)
        except OSError as exc:
            deliver(self, Failure(f"attach failed: {describe(exc)}"))
            return
        if code:
            deliver(self, Failure(f"attach ended with exit status {code}"))
        deliver(self, OperationEnded(None))

    # -- views ---------------------------------------------------------------------------------------
    def action_toggle_screen(self, name: str | None = None) -> None:
        tile = self._target(name)
        if tile is not None and not (tile.view == "log" and self._refused(tile, "toggle_screen")):
            self.toggle_view(tile)

    def action_zoom(self, name: str | None = None) -> None:
        tile = self._target(name)
        if tile is not None:
            self.push_screen(ZoomScreen(tile, self.toggle_view))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.keymap))

    def action_diff(self, name: str | None = None) -> None:
        """Show what the agent changed (the screen computes it in workers)."""
        tile = self._target(name)
        if tile is not None and not isinstance(self.screen, DiffScreen):
            self.push_screen(DiffScreen(tile.agent.name, self.fleet.diff, tile.agent.conflicts, tile.agent.base))

    # -- merging -------------------------------------------------------------------------------------
    def action_merge(self, name: str | None = None) -> None:
        """Work out what would land (worker): nothing to merge is said at once and changes nothing;
        otherwise ask, saying what lands where, then queue the agent and run the queue."""
        tile = self._target(name)
        if tile is not None and tile.agent.host:  # queued like a local agent (cockpit.core.remote_merge)
            agent, host = tile.agent.name, tile.agent.host
            self.push_screen(ConfirmDialog(
                f"Merge {agent} (host {host}) into {tile.agent.base.removeprefix('cockpit-base/')} here?",
                "It joins the merge queue; at its turn its committed work is fetched from the host, built "
                "on base here, gated, and base is fast-forwarded (uncommitted work there blocks it).", "Merge"),
                partial(self._merge_decided, agent))
        elif tile is not None:
            agent = tile.agent.name
            self.run_op(agent, "checking", plan_merge, self.fleet, agent, done=partial(MergePlanned, agent),
                        pending=False)

    def on_merge_planned(self, message: MergePlanned) -> None:
        agent, plan = message.agent, message.plan
        if plan.queued:
            self.notify(f"{agent} is already in the merge queue")
        elif plan.refusal:
            self.notify(f"{agent}: {plan.refusal}", severity="warning", timeout=8)
        else:
            self.push_screen(ConfirmDialog(f"Merge {agent} into {plan.base}?", escape(plan.describe()), "Merge"),
                             partial(self._merge_decided, agent))

    def _merge_decided(self, agent: str, ok: bool | None) -> None:
        if ok:
            self.run_op(agent, "queueing", remote_merge.enqueue, self.fleet, [agent], done=partial(Queued, agent))

    def on_queued(self, message: Queued) -> None:
        name, host, position, added = message.entries[0]
        label = name if host is None else f"{name}@{host}"
        self.notify(f"{label}: {'queued' if added else 'already queued'} (position {position})")
        self.run_queue()

    @work(thread=True, exit_on_error=False, group="queue")
    def run_queue(self, quiet: bool = False) -> None:
        """Run the merge queue until it is empty, one notification per outcome. When another
        runner holds the queue (another process, or this app's own earlier run), it will take what
        was queued: say so, unless ``quiet`` (the resume at start-up)."""
        if quiet and not pending(self.fleet):
            return
        queue = remote_merge.merge_queue(self.fleet, report=lambda outcome: deliver(self, QueueReported(outcome)),
                                         stop=self.queue_stop)
        try:
            queue.run()
        except QueueBusy as busy:
            if not quiet:
                who = "this cockpit" if busy.pid == os.getpid() else f"another cockpit (pid {busy.pid or '?'})"
                deliver(self, Notice(f"{who} is running the merge queue: it will merge what was queued"))
        except Exception as exc:  # noqa: BLE001 - every failure reaches the user as a message
            deliver(self, Failure(f"merge queue: {describe(exc)}"))
        finally:
            deliver(self, OperationEnded(None))

    def on_queue_reported(self, message: QueueReported) -> None:
        """One report from the queue: a merge is news, anything else (conflict, rejected,
        blocked, a rebuild) needs the user's eye — told by the outcome, not by its words."""
        outcome = message.outcome
        merged = outcome.succeeded
        self.notify(outcome.message, severity="information" if merged else "warning", timeout=8 if merged else 15)
        self.request_poll(True)


def _said(text: str, _result: object) -> Done:
    """The :class:`Done` message of an operation whose result needs no words of its own."""
    return Done(text)
