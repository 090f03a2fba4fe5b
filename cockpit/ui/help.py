"""The help screen: every key binding, generated from :mod:`cockpit.ui.keys` with the user's
remaps applied, so it can never drift from what the keys really do."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from cockpit.ui.keys import ALL_KEYS, effective_keys

LEGEND = (
    "[b]On a tile[/]: ● state · activity · [b]try 2 (1/2 fail)[/]: attempt 2, 1 failure counted of the 2 "
    "(max_failures) that halt the agent and its dependents — cockpit ls shows the same in its TRY column · "
    "[b]base +3[/]: base has 3 commits the branch lacks · [b]⚠[/]: edits out of scope, or collisions · "
    "[b]⚔ api: a.py[/]: merging it with api (or base) is predicted to conflict in a.py\n"
    "[b]In the list[/] ([b]t[/]): [b]◆[/] pinned · try [b]2 (1/2)[/] as above · flags [b]⚔conflict[/], "
    "[b]⚠scope[/] (edits out of scope), [b]⚠collides[/] (files another agent changed), the merge state · "
    "[b]/[/] filters by name, state or flag (waiting, failed, conflict…) · agents needing you come first"
)
"""What the tiles' status line says (the notation ``cockpit ls`` shares)."""


def help_rows(keymap: Mapping[str, str], display: Callable[[str], str]) -> list[tuple[str, str, str, str]]:
    """``(group, keys as shown, description, binding id)`` for every binding."""
    rows = []
    for spec in ALL_KEYS:
        keys = effective_keys(spec, keymap)
        shown = spec.key_display if spec.key_display and spec.id not in keymap else \
            " ".join(display(k.strip()) for k in keys.split(","))
        rows.append((spec.group, shown, spec.description, spec.id))
    return rows


class HelpScreen(ModalScreen[None]):
    """Every binding with its keys, description and id (the name to remap it by)."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: $background 60%; }
    HelpScreen > Vertical {
        width: 84; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    HelpScreen #help-title { text-style: bold; dock: top; }
    HelpScreen VerticalScroll { height: auto; max-height: 100%; }
    HelpScreen #help-hint { color: $foreground-muted; dock: bottom; }
    HelpScreen #help-legend { margin-top: 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help-close", show=False)]

    def __init__(self, keymap: Mapping[str, str]) -> None:
        super().__init__()
        self.keymap = dict(keymap)

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", expand=True, pad_edge=False)
        table.add_column("key", no_wrap=True)
        table.add_column("action")
        table.add_column("id (remap in \\[keys])", no_wrap=True, style="dim")
        group = None
        for row_group, keys, description, binding_id in help_rows(self.keymap, self._display):
            if row_group != group:
                table.add_row(f"[b]{row_group}[/]", "", "")
                group = row_group
            table.add_row(f"  {keys}", description, binding_id)
        with Vertical():
            yield Label("cockpit keys", id="help-title")
            with VerticalScroll():
                yield Static(table, id="help-table")
                yield Static(LEGEND, id="help-legend")
            yield Label("esc closes · remap: \\[keys] in cockpit.toml, e.g. discard = \"D\"", id="help-hint")

    def _display(self, key: str) -> str:
        return self.app.get_key_display(Binding(key, ""))

    def action_close(self) -> None:
        self.dismiss(None)

