"""What the keys do. These functions are methods of :class:`~cockpit.ui.app.CockpitApp`
(assigned there), kept here so the app module stays small.

Agent actions take an optional agent name (the palette passes one); without it they act on the
focused tile. Anything that touches git or tmux goes through :func:`run_op`, a worker thread;
a refusal from the engine becomes an error notification.
"""

from __future__ import annotations

import os
import shlex
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from rich.markup import escape
from textual import work
from textual.app import SuspendNotSupported

from cockpit.core.activity import next_needing_attention
from cockpit.core.errors import CockpitError
from cockpit.core.sessions import AttachPlan
from cockpit.ui.diffview import DiffScreen
from cockpit.ui.dialogs import ConfirmDialog, DiscardDialog, NewAgentDialog, NewAgentRequest, RespawnDialog, \
    RespawnRequest
from cockpit.ui.help import HelpScreen
from cockpit.core.merge_plan import MergePlan, plan_merge
from cockpit.core.queue import MergeQueue, Outcome, QueueBusy, enqueue, pending
from cockpit.ui.sync import describe
from cockpit.ui.tiles import AgentTile, TileGrid
from cockpit.ui.zoom import ZoomScreen

if TYPE_CHECKING:
    from cockpit.core.agent import Agent
    from cockpit.core.fleet import DiscardPreview
    from cockpit.ui.app import CockpitApp


@work(thread=True, exit_on_error=False, group="ops")
def run_op(app: "CockpitApp", name: str | None, verb: str, call: Callable[..., Any], *args: Any,
           done: Callable[[Any], object] | None = None, pending: bool = True,
           failed: Callable[[str], object] | None = None, **kwargs: Any) -> None:
    """Run one engine call in a worker thread. While it runs the tile shows ``verb…``; on
    success ``done(result)`` runs on the UI thread; an error becomes a notification, or is
    handed to ``failed`` (on the UI thread) to show where the user acted."""
    if pending:
        app._ui(_set_pending, app, name, verb)
    try:
        result = call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every failure reaches the user as a message
        app._ui(failed or app.report_error, describe(exc))
    else:
        if done is not None:
            app._ui(done, result)
    finally:
        if pending:
            app._ui(_set_pending, app, name, None)
            app._ui(app.request_poll, True)


def _set_pending(app: "CockpitApp", name: str | None, verb: str | None) -> None:
    tile = app.tile(name) if name else None
    if tile is not None:
        tile.pending = verb
        tile.refresh_subtitle()


def unavailable(agent: Agent, action: str) -> str | None:
    """Why ``action`` cannot apply to ``agent`` in its present state, or None when it can.
    Keys say this at once instead of asking first; the palette does not offer the action."""
    name, process = agent.name, agent.process
    alive = process in ("running", "paused")
    if action in ("pause", "kill") and not alive:
        return f"{name} is not running ({process}): nothing to {action}" + ("; r respawns it" if action == "pause" else "")
    if action == "resume" and process != "paused":
        return f"{name} is not paused ({process})"
    if action == "pause_only" and process != "running":
        return f"{name} is not running ({process})"
    if action == "mark_failed" and process in ("failed", "halted"):
        return f"{name} has already failed ({process}, {agent.failures} of {agent.max_failures} failures counted)"
    if action in ("attach", "toggle_screen") and agent.pid is None:
        return f"{name} has no terminal any more ({process}): r respawns it"
    return None


def _target(app: "CockpitApp", name: str | None, action: str | None = None) -> AgentTile | None:
    """The tile to act on; None (said to the user at once) when there is none, or when
    ``action`` cannot apply to its agent now."""
    tile = app.tile(name)
    if tile is None:
        app.notify("no agent selected (n: new agent)", severity="warning")
        return None
    why = unavailable(tile.agent, action) if action else None
    if why:
        app.notify(why, severity="warning")
        return None
    return tile


def _focus(tile: AgentTile) -> None:
    """Focus at once. ``Widget.focus()`` defers to the next idle moment, so a key typed right
    after a move (``j d``) would act on the tile that was focused before: the wrong agent."""
    tile.screen.set_focus(tile)


def action_move(app: "CockpitApp", dx: int, dy: int) -> None:
    """Move focus by grid geometry; down from a full row into a shorter last row lands on its
    last tile."""
    grid = app.query_one(TileGrid)
    tiles = grid.tiles
    if not tiles:
        return
    current = app.focused
    if not isinstance(current, AgentTile) or current not in tiles:
        _focus(tiles[0])
        return
    index = tiles.index(current)
    target = index + dx + dy * grid.columns
    if target >= len(tiles) and dy > 0 and index // grid.columns < (len(tiles) - 1) // grid.columns:
        target = len(tiles) - 1
    if 0 <= target < len(tiles):
        _focus(tiles[target])


def action_focus_tile(app: "CockpitApp", step: int) -> None:
    tiles = app.query_one(TileGrid).tiles
    if not tiles:
        return
    current = app.focused
    index = tiles.index(current) if isinstance(current, AgentTile) and current in tiles else -step
    _focus(tiles[(index + step) % len(tiles)])


def action_next_attention(app: "CockpitApp") -> None:
    """Focus the next agent that needs the user: waiting, then stalled, then failed."""
    current = app.tile()
    name = next_needing_attention(app.agents, current.agent.name if current else None)
    tile = app.tile(name) if name else None
    if tile is None:
        app.notify("no agent is waiting, stalled or failed")
        return
    _focus(tile)


def action_pause(app: "CockpitApp", name: str | None = None) -> None:
    """Pause a running agent; resume a paused one."""
    tile = _target(app, name, "pause")
    if tile is None:
        return
    agent = tile.agent.name
    if tile.agent.process == "paused":
        app.run_op(agent, "resuming", app.fleet.resume, agent, done=lambda _: app.notify(f"resumed {agent}"))
    else:
        app.run_op(agent, "pausing", app.fleet.pause, agent, done=lambda _: app.notify(f"paused {agent}"))


def action_resume(app: "CockpitApp", name: str | None = None) -> None:
    tile = _target(app, name, "resume")
    if tile is not None:
        agent = tile.agent.name
        app.run_op(agent, "resuming", app.fleet.resume, agent, done=lambda _: app.notify(f"resumed {agent}"))


def action_kill(app: "CockpitApp", name: str | None = None) -> None:
    tile = _target(app, name, "kill")
    if tile is None:
        return
    agent = tile.agent.name

    def decided(ok: bool | None) -> None:
        if ok:
            app.run_op(agent, "killing", app.fleet.kill, agent, done=lambda _: app.notify(f"killed {agent}"))

    app.push_screen(ConfirmDialog(f"Kill {agent}?", "Its processes and tmux session end. The worktree, "
                                  "branch and log stay (r respawns it, d discards it).", "Kill"), decided)


def action_mark_failed(app: "CockpitApp", name: str | None = None) -> None:
    """Count a failure the user saw; at max_failures the agent and its dependents halt."""
    tile = _target(app, name, "mark_failed")
    if tile is None:
        return
    agent = tile.agent

    def decided(ok: bool | None) -> None:
        if ok:
            app.run_op(agent.name, "failing", app.fleet.mark_failed, agent.name,
                       done=lambda _: app.notify(f"marked {agent.name} failed"))

    last = agent.failures + 1 >= agent.max_failures
    app.push_screen(ConfirmDialog(
        f"Mark {agent.name} failed?",
        f"Failure {agent.failures + 1} of {agent.max_failures}: its process stops"
        + (", and it is halted with every agent that depends on it." if last else "."), "Mark failed"), decided)


def action_discard(app: "CockpitApp", name: str | None = None) -> None:
    """Fetch what a discard would archive (worker), then ask."""
    tile = _target(app, name)
    if tile is None:
        return
    agent = tile.agent

    def ask(preview: "DiscardPreview") -> None:
        app.push_screen(DiscardDialog(agent, preview), decided)

    def decided(ok: bool | None) -> None:
        if ok:
            app.run_op(agent.name, "discarding", app.fleet.discard, agent.name,
                       done=lambda ref: app.notify(f"discarded {agent.name}; archive: {ref}", timeout=8))

    app.run_op(agent.name, "checking", app.fleet.discard_preview, agent.name, done=ask, pending=False)


def action_respawn(app: "CockpitApp", name: str | None = None) -> None:
    tile = _target(app, name)
    if tile is None:
        return

    def decided(request: RespawnRequest | None) -> None:
        if request is not None:
            app.run_op(request.name, "respawning", app.fleet.respawn, request.name, keep=request.keep,
                       task=request.task, force=request.force, fresh=request.new_conversation,
                       done=lambda a: app.notify(f"respawned {a.name}: attempt {a.attempt}"))

    app.push_screen(RespawnDialog(tile.agent), decided)


def action_new_agent(app: "CockpitApp", values: NewAgentRequest | None = None, problem: str | None = None) -> None:
    """The new-agent form. It checks the name and the command itself (reading cockpit.toml in
    a worker first); a spawn the engine refuses reopens it with the same values and the reason."""

    def configured() -> tuple[set[str] | None, str | None]:
        try:
            return set(app.fleet.config.agents), None
        except CockpitError as exc:
            return None, str(exc)

    def ask(found: tuple[set[str] | None, str | None]) -> None:
        names, config_problem = found
        existing = {agent.name for agent in app.agents}
        app.push_screen(NewAgentDialog(existing, names, config_problem, values, problem), decided)

    def decided(request: NewAgentRequest | None) -> None:
        if request is None:
            return

        def spawned(agent: Any) -> None:
            app._focus_next = agent.name
            app.notify(f"spawned {agent.name}")

        def refused(message: str) -> None:
            app.reported.append(message)
            app.action_new_agent(request, message)  # the same form again, with the reason

        app.run_op(request.name, "spawning", app.fleet.spawn, request.name, command=request.command,
                   task=request.task, scope=request.scope or None, done=spawned, failed=refused)

    app.run_op(None, "reading", configured, done=ask, pending=False)


def action_attach(app: "CockpitApp", name: str | None = None) -> None:
    """Ask the engine how to attach (worker), then attach: in a popup of the user's own tmux
    when cockpit runs inside one, else by handing this terminal over."""
    tile = _target(app, name, "attach")
    if tile is not None:
        app.run_op(tile.agent.name, "attaching", app.fleet.attach_plan, tile.agent.name, dict(os.environ),
                   done=app.attach_now, pending=False)


def attach_now(app: "CockpitApp", plan: AttachPlan) -> None:
    """Attach as ``plan`` says. A popup runs in a worker while the grid stays on screen behind
    it; a plain attach suspends the app, and detaching comes back here."""
    if plan.note:
        app.notify(plan.note, timeout=10)
    if plan.popup:
        app.run_worker(partial(_attach_in_popup, app, plan), thread=True, exit_on_error=False, group="attach")
        return
    try:
        with app.suspend():
            code = app.attach_runner(plan.argv, plan.env)
    except SuspendNotSupported:
        app.report_error(f"cannot hand over this terminal; attach from another one: {shlex.join(plan.argv)}")
        return
    except OSError as exc:
        app.report_error(f"attach failed: {describe(exc)}")
        return
    if code:
        app.report_error(f"attach ended with exit status {code}: {shlex.join(plan.argv)}")
    app.refresh(layout=True)
    app.request_poll(True)


def _attach_in_popup(app: "CockpitApp", plan: AttachPlan) -> None:
    """(worker thread) The popup blocks until the user detaches."""
    try:
        code = app.attach_runner(plan.argv, plan.env)
    except OSError as exc:
        app.call_from_thread(app.report_error, f"attach failed: {describe(exc)}")
        return
    if code:
        app.call_from_thread(app.report_error, f"attach ended with exit status {code}")
    app.call_from_thread(app.request_poll, True)


def action_toggle_screen(app: "CockpitApp", name: str | None = None) -> None:
    tile = _target(app, name)
    if tile is not None and not (tile.view == "log" and _refused(app, tile, "toggle_screen")):
        app.toggle_view(tile)


def _refused(app: "CockpitApp", tile: AgentTile, action: str) -> bool:
    """Say at once why ``action`` cannot apply to the tile's agent; False when it can."""
    why = unavailable(tile.agent, action)
    if why:
        app.notify(why, severity="warning")
    return why is not None


def action_zoom(app: "CockpitApp", name: str | None = None) -> None:
    tile = _target(app, name)
    if tile is not None:
        app.push_screen(ZoomScreen(tile))


def action_help(app: "CockpitApp") -> None:
    if not isinstance(app.screen, HelpScreen):
        app.push_screen(HelpScreen(app.keymap))


def action_diff(app: "CockpitApp", name: str | None = None) -> None:
    """Show what the agent changed (the screen computes it in workers)."""
    tile = _target(app, name)
    if tile is not None and not isinstance(app.screen, DiffScreen):
        app.push_screen(DiffScreen(tile.agent.name))


def action_merge(app: "CockpitApp", name: str | None = None) -> None:
    """Work out what would land (worker): nothing to merge is said at once and changes nothing;
    otherwise ask, saying what lands where, then queue the agent and run the queue."""
    tile = _target(app, name)
    if tile is None:
        return
    agent = tile.agent.name

    def planned(plan: "MergePlan") -> None:
        if plan.queued:
            app.notify(f"{agent} is already in the merge queue")
        elif plan.refusal:
            app.notify(f"{agent}: {plan.refusal}", severity="warning", timeout=8)
        else:
            app.push_screen(ConfirmDialog(f"Merge {agent} into {plan.base}?", escape(plan.describe()), "Merge"),
                            decided)

    def decided(ok: bool | None) -> None:
        if ok:
            app.run_op(agent, "queueing", enqueue, app.fleet, [agent], done=queued)

    def queued(result: list[tuple[str, int, bool]]) -> None:
        _, position, added = result[0]
        app.notify(f"{agent}: {'queued' if added else 'already queued'} (position {position})")
        app.run_queue()

    app.run_op(agent, "checking", plan_merge, app.fleet, agent, done=planned, pending=False)


@work(thread=True, exit_on_error=False, group="queue")
def run_queue(app: "CockpitApp", quiet: bool = False) -> None:
    """Run the merge queue until it is empty, one notification per outcome. When another
    runner holds the queue (another process, or this app's own earlier run), it will take what
    was queued: say so, unless ``quiet`` (the resume at start-up)."""
    if quiet and not pending(app.fleet):
        return
    queue = MergeQueue(app.fleet, report=lambda outcome: app._ui(_report_outcome, app, outcome), stop=app.queue_stop)
    try:
        queue.run()
    except QueueBusy as busy:
        if not quiet:
            who = "this cockpit" if busy.pid == os.getpid() else f"another cockpit (pid {busy.pid or '?'})"
            app._ui(app.notify, f"{who} is running the merge queue: it will merge what was queued")
    except Exception as exc:  # noqa: BLE001 - every failure reaches the user as a message
        app._ui(app.report_error, f"merge queue: {describe(exc)}")
    finally:
        app._ui(app.request_poll, True)


def _report_outcome(app: "CockpitApp", outcome: Outcome) -> None:
    """One report from the queue: a merge is news, anything else (conflict, rejected, blocked,
    a rebuild) needs the user's eye."""
    merged = outcome.succeeded
    app.notify(outcome.message, severity="information" if merged else "warning", timeout=8 if merged else 15)
    app.request_poll(True)
