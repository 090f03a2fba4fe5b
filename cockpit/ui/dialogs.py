"""Modal dialogs: kill confirmation, discard, respawn and the new-agent form.

Dialogs only collect a decision; they never call the engine. Whatever they need to show
(a discard preview, an agent snapshot) is fetched by the app in a worker before they open, and
their result is handed back with ``dismiss``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Static

from cockpit.core.agent import Agent, halt_reason
from cockpit.core.errors import CockpitError
from cockpit.core.fleet import DiscardPreview
from cockpit.core.spec import validate_name

MAX_FILES_SHOWN = 8

DIALOG_CSS = """
Dialog { align: center middle; background: $background 60%; }
Dialog > #dialog {
    width: 76; max-width: 100%; height: auto; max-height: 100%;
    border: thick $primary; background: $surface; padding: 0 1;
}
Dialog #title { text-style: bold; width: 100%; margin-bottom: 1; }
Dialog .field-label { margin-top: 1; color: $foreground-muted; }
Dialog #details { height: auto; max-height: 12; }
Dialog .error { color: $error; height: auto; }
Dialog #buttons { height: auto; align-horizontal: right; margin-top: 1; }
Dialog #buttons Button { margin-left: 1; min-width: 10; }
Dialog Input { width: 100%; }
"""


class Choice(RadioButton):
    """A radio button whose mark itself says whether it is chosen (● / ○): Textual's differ
    only in colour, and under ``NO_COLOR`` every option looked chosen."""

    BUTTON_INNER = "○"

    def watch_value(self) -> None:
        self.BUTTON_INNER = "●" if self.value else "○"
        super().watch_value()


class Tick(Checkbox):
    """A checkbox whose mark says whether it is ticked (X / blank), with or without colour."""

    BUTTON_INNER = " "

    def watch_value(self) -> None:
        self.BUTTON_INNER = "X" if self.value else " "
        super().watch_value()


class Dialog(ModalScreen):
    """Common frame: a titled box with Cancel on ``escape``."""

    DEFAULT_CSS = DIALOG_CSS
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog-cancel")]

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(Dialog):
    """Yes/no question; focus starts on Cancel. Dismisses with True or None."""

    def __init__(self, title: str, message: str, confirm: str = "OK") -> None:
        super().__init__()
        self.title_text, self.message, self.confirm = title, message, confirm

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, id="title")
            yield Static(self.message)
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm, id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        self.dismiss(True)


class DiscardDialog(ConfirmDialog):
    """What a discard will archive and remove. Focus starts on Cancel."""

    def __init__(self, agent: Agent, preview: DiscardPreview) -> None:
        super().__init__(f"Discard {agent.name}?", "", "Discard")
        self.agent, self.preview = agent, preview

    def compose(self) -> ComposeResult:
        preview = self.preview
        with Vertical(id="dialog"):
            yield Label(self.title_text, id="title")
            with VerticalScroll(id="details"):
                if preview.uncommitted:
                    yield Static(f"[b]{len(preview.uncommitted)}[/] uncommitted file(s):")
                    files = preview.uncommitted[:MAX_FILES_SHOWN]
                    more = len(preview.uncommitted) - len(files)
                    listing = "\n".join(f"• {escape(f)}" for f in files)
                    if more:
                        listing += f"\n… and {more} more"
                    yield Static(listing, id="uncommitted")
                else:
                    yield Static("No uncommitted files.", id="uncommitted")
                yield Static(f"[b]{preview.ahead}[/] commit(s) ahead of base {escape(self.agent.base)}.", id="ahead")
                yield Static(f"Everything is archived first at\n  [b]{escape(preview.archive_ref)}[/]\n"
                             f"(undo: cockpit restore {self.agent.name})", id="archive")
                removed = "its worktree and branch " + escape(self.agent.branch or "")
                if not preview.worktree_exists:
                    removed = "its branch (the worktree is already gone) " + escape(self.agent.branch or "")
                yield Static(f"Then the session is stopped and {removed} are removed.")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Discard", id="confirm", variant="error")


@dataclass(frozen=True)
class RespawnRequest:
    """What the respawn dialog decided."""

    name: str
    task: str | None
    keep: bool
    force: bool
    new_conversation: bool = False  # with keep: start a new conversation (respawn --keep --fresh)


class RespawnDialog(Dialog):
    """Task (editable), fresh or keep worktree, the attempt count. An agent with a conversation to
    resume (a claude-code agent's session) also offers keeping the worktree with a new
    conversation. A halted agent is refused unless its task changes or *force* is ticked."""

    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self.agent = agent
        self.halted = agent.process == "halted" or agent.failures >= agent.max_failures

    def compose(self) -> ComposeResult:
        agent = self.agent
        with Vertical(id="dialog"):
            yield Label(f"Respawn {agent.name}: attempt {agent.attempt} → {agent.attempt + 1}", id="title")
            yield Static(f"state {agent.state}, failures {agent.failures} of {agent.max_failures}", id="attempts")
            yield Label("Task", classes="field-label")
            yield Input(agent.task, id="task")
            with RadioSet(id="mode"):
                yield Choice("fresh: archive the worktree, new branch from base", value=True, id="fresh")
                if agent.session_id:
                    yield Choice("keep: same worktree and branch, resume the conversation", id="keep")
                    yield Choice("keep, new conversation: same worktree and branch, the task given again",
                                 id="keep-new")
                else:
                    yield Choice("keep: same worktree and branch, restart the command", id="keep")
            if self.halted:
                yield Static(f"{agent.name} is {halt_reason(agent.failures, agent.max_failures, agent.blocked_by)}: "
                             "change the task or tick force.", classes="error", id="halted")
                yield Tick("force (respawn with the same task)", id="force")
            yield Static("", classes="error", id="problem")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Respawn", id="confirm", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#task", Input).focus()

    @on(Input.Submitted, "#task")
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        task = self.query_one("#task", Input).value
        force = self.halted and self.query_one("#force", Checkbox).value
        if self.halted and task == self.agent.task and not force:
            self.query_one("#problem", Static).update(
                f"Refused: {self.agent.name} is halted. Change the task, or tick force.")
            return
        new_conversation = bool(self.agent.session_id) and self.query_one("#keep-new", RadioButton).value
        keep = self.query_one("#keep", RadioButton).value or new_conversation
        self.dismiss(RespawnRequest(self.agent.name, task if task != self.agent.task else None, keep, force,
                                    new_conversation))


@dataclass(frozen=True)
class NewAgentRequest:
    """What the new-agent form collected. ``command=None``: take it from cockpit.toml."""

    name: str
    command: str | None
    task: str | None
    scope: list[str]


class NewAgentDialog(Dialog):
    """Name, command, task, scope. Checked here before it closes: a valid name no agent has
    (``existing``), and a command unless cockpit.toml configures the name (``configured``;
    None when cockpit.toml cannot be read, ``config_problem`` says why). Whatever the engine
    still refuses comes back in a new form with the same values (``values``, ``problem``)."""

    def __init__(self, existing: set[str] | None = None, configured: set[str] | None = None,
                 config_problem: str | None = None, values: NewAgentRequest | None = None,
                 problem: str | None = None) -> None:
        super().__init__()
        self.existing = set(existing or ())
        self.configured = configured
        self.config_problem = config_problem
        self.values = values
        self.problem = problem

    def compose(self) -> ComposeResult:
        values = self.values
        with Vertical(id="dialog"):
            yield Label("New agent", id="title")
            yield Input(values.name if values else "", placeholder="name: a-z, 0-9 and -", id="name")
            yield Input(values.command or "" if values else "", placeholder="command (empty: the one in cockpit.toml)",
                        id="command")
            yield Input(values.task or "" if values else "", placeholder="task", id="task")
            yield Input(" ".join(values.scope) if values else "",
                        placeholder="scope: globs, space separated (e.g. src/api/**)", id="scope")
            yield Static(escape(self.problem or ""), classes="error", id="problem")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Spawn", id="confirm", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def _refuse(self, field: str, message: str) -> None:
        self.query_one("#problem", Static).update(escape(message))
        self.query_one(f"#{field}", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        value = {field: self.query_one(f"#{field}", Input).value.strip()
                 for field in ("name", "command", "task", "scope")}
        name = value["name"]
        try:
            validate_name(name)
        except CockpitError as exc:
            self._refuse("name", str(exc))
            return
        if name in self.existing:
            self._refuse("name", f"an agent named {name!r} already exists: choose another name "
                                 "(or discard it first: d)")
            return
        if not value["command"] and name not in (self.configured or ()):
            why = (f"cockpit.toml cannot be read ({self.config_problem})" if self.configured is None and
                   self.config_problem else f"cockpit.toml has no agent named {name!r}")
            self._refuse("command", f"give a command: {why}")
            return
        scope = [s for s in value["scope"].replace(",", " ").split() if s]
        self.dismiss(NewAgentRequest(name, value["command"] or None, value["task"] or None, scope))
