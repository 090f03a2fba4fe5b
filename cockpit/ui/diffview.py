"""The diff view (``v``): what one agent changed against the merge-base with base — committed,
uncommitted and untracked work, exactly what a discard would archive.

Left, the changed files with their +/- counts (binary files marked ``bin``); right, the unified
diff of the highlighted file, coloured. Everything git-related runs in worker threads through
:meth:`Fleet.diff <cockpit.core.fleet.Fleet.diff>`: first both ends of the change and the file
list (one git call each), then each file's patch only when it is highlighted, cached. So a
1,000-file change shows its list quickly and the UI never waits on git. The screen is given the
function that computes a diff (``Fleet.diff``); an error goes to the app as a
:class:`~cockpit.ui.messages.Failure`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from cockpit.ui.footer import key_footer
from cockpit.ui.keys import DIFF_KEYS, bindings
from cockpit.ui.messages import Failure, deliver, describe
from cockpit.ui.subtitle import conflict_label

if TYPE_CHECKING:
    from cockpit.core.diff import AgentDiff, FileChange

MAX_PATCH_LINES = 5000
"""A longer patch is cut here (the CLI's ``cockpit diff NAME`` shows it whole)."""

LINE_STYLES: tuple[tuple[str, str], ...] = (
    ("diff --git ", "bold"),
    ("index ", "dim"),
    ("--- ", "bold"),
    ("+++ ", "bold"),
    ("@@", "cyan"),
    ("+", "green"),
    ("-", "red"),
    ("Binary files ", "italic yellow"),
    ("new file mode", "dim"),
    ("deleted file mode", "dim"),
    ("old mode", "dim"),
    ("new mode", "dim"),
)
"""Line prefix -> Rich style, first match wins (headers before the +/- of hunk lines)."""


def clean(text: str) -> str:
    """git's text (UTF-8 with surrogate escapes) made safe to print: undecodable bytes -> U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def colour_patch(patch: str, max_lines: int = MAX_PATCH_LINES) -> Text:
    """A unified diff as Rich text, one style per line by its prefix. Runs in a worker."""
    lines = clean(patch).splitlines()
    text = Text(no_wrap=True, overflow="crop")
    for number, line in enumerate(lines[:max_lines]):
        if number:
            text.append("\n")
        style = next((s for prefix, s in LINE_STYLES if line.startswith(prefix)), "")
        text.append(line.expandtabs(4), style=style)
    if len(lines) > max_lines:
        text.append(f"\n… {len(lines) - max_lines} more lines (cockpit diff shows them all)", style="dim italic")
    if not lines:
        text.append("(no textual change)", style="dim italic")
    return text


def clashes(conflicts: list[dict] | None, base: str) -> dict[str, list[str]]:
    """Per path the conflict radar predicts to conflict, what with and where: ``api (lines 3-5)``,
    ``main (base)``."""
    found: dict[str, list[str]] = {}
    for conflict in conflicts or []:
        other = conflict_label(str(conflict.get("with")), base)
        lines = conflict.get("lines") or {}
        for path in conflict.get("paths") or []:
            ranges = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in lines.get(path) or [])
            found.setdefault(str(path), []).append(f"{other} (lines {ranges})" if ranges else other)
    return found


def file_label(change: FileChange, width: int, clash: bool = False) -> Text:
    """``  +12   -3 M path`` for the file list; ``bin`` instead of counts for a binary file;
    ``⚔`` before the path of a file predicted to conflict (``clash``)."""
    label = Text(no_wrap=True, overflow="ellipsis")
    if change.binary:
        label.append("bin".rjust(2 * width + 3), style="yellow")
    else:
        label.append(f"+{change.added}".rjust(width + 1), style="green")
        label.append(" ")
        label.append(f"-{change.removed}".rjust(width + 1), style="red")
    label.append(f" {change.status} ", style="bold")
    if clash:
        label.append("⚔ ", style="bold red")
    label.append(clean(change.path))
    return label


class DiffScreen(Screen[None]):
    """One agent's change: file list left, the selected file's patch right."""

    BINDINGS = bindings(DIFF_KEYS)
    DEFAULT_CSS = """
    DiffScreen #diff-title { height: 1; width: 100%; background: $panel; padding: 0 1; }
    DiffScreen #diff-body { height: 1fr; }
    DiffScreen #diff-files { width: 40%; min-width: 24; max-width: 70; height: 1fr; border: none; }
    DiffScreen #diff-scroll { width: 1fr; height: 1fr; border-left: solid $foreground 30%; }
    DiffScreen #diff-patch { width: auto; padding: 0 1; }
    """

    # -- what its workers report (to this screen) ---------------------------------------------------
    @dataclass
    class FilesLoaded(Message, bubble=False):
        diff: AgentDiff
        files: list[FileChange]

    @dataclass
    class PatchLoaded(Message, bubble=False):
        path: str
        text: Text

    @dataclass
    class LoadFailed(Message, bubble=False):
        """Computing the diff (``path`` None) or one file's patch failed."""

        message: str
        path: str | None = None

    def __init__(self, name: str, load_diff: Callable[[str], AgentDiff], conflicts: list[dict] | None = None,
                 base: str = "") -> None:
        super().__init__()
        self.agent_name = name
        self.load_diff = load_diff
        """Fixes both ends of an agent's change (``Fleet.diff``); called in a worker."""
        self.clashes = clashes(conflicts, base)
        """The files the conflict radar predicted to conflict (``Agent.conflicts``), marked ⚔."""
        self.diff: AgentDiff | None = None
        self.files: list[FileChange] = []
        self.patches: dict[str, Text] = {}
        self.shown: str | None = None
        """The path whose patch is on screen (None until one is)."""
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Label(f"[b]{self.agent_name}[/] · computing the diff…", id="diff-title")
        with Horizontal(id="diff-body"):
            yield OptionList(id="diff-files")
            with VerticalScroll(id="diff-scroll"):
                yield Static("", id="diff-patch")
        yield key_footer()

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        self._load_files()

    # -- workers -------------------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="diff-files")
    def _load_files(self) -> None:
        """Fix both ends of the change and list the files (worker)."""
        try:
            diff = self.load_diff(self.agent_name)
            files = diff.files()
        except Exception as exc:  # noqa: BLE001 - reaches the user as a notification
            deliver(self, DiffScreen.LoadFailed(describe(exc)))
            return
        deliver(self, DiffScreen.FilesLoaded(diff, files))

    @work(thread=True, exit_on_error=False, group="diff-patch", exclusive=True)
    def _load_patch(self, path: str) -> None:
        """Compute and colour one file's patch (worker). A newer request supersedes it."""
        diff = self.diff
        if diff is None:
            return
        try:
            text = colour_patch(diff.patch(path))
        except Exception as exc:  # noqa: BLE001
            deliver(self, DiffScreen.LoadFailed(describe(exc), path))
            return
        if not get_current_worker().is_cancelled:
            deliver(self, DiffScreen.PatchLoaded(path, text))

    # -- UI thread -----------------------------------------------------------------------------
    def on_diff_screen_load_failed(self, failed: DiffScreen.LoadFailed) -> None:
        message, path = failed.message, failed.path
        self.error = message
        self.post_message(Failure(f"diff {self.agent_name}: {message}"))
        if path is None:
            self._title(f"[$error]{message}[/]")
        elif self.is_mounted:
            self.query_one("#diff-patch", Static).update(Text(message, style="italic"))

    def on_diff_screen_files_loaded(self, loaded: DiffScreen.FilesLoaded) -> None:
        diff, files = loaded.diff, loaded.files
        if not self.is_mounted:
            return
        self.diff, self.files = diff, files
        added = sum(f.added or 0 for f in files)
        removed = sum(f.removed or 0 for f in files)
        marked = sum(1 for f in files if f.path in self.clashes)
        clash = f" · [bold $error]⚔ {marked} predicted to conflict[/]" if marked else ""
        self._title(f"{len(files)} file{'s' if len(files) != 1 else ''} +{added} −{removed} "
                    f"against {diff.merge_base[:12]} (merge-base with {diff.base or 'base'}){clash}")
        width = max((len(str(max(f.added or 0, f.removed or 0))) for f in files), default=1)
        options = self.query_one(OptionList)
        options.add_options([Option(file_label(f, width, f.path in self.clashes), id=str(i))
                             for i, f in enumerate(files)])
        if files:
            options.highlighted = 0
        else:
            self.query_one("#diff-patch", Static).update(Text("no changes against base", style="dim italic"))

    def _title(self, text: str) -> None:
        label = self.query_one_optional("#diff-title", Label)
        if label is not None:
            label.update(f"[b]{self.agent_name}[/] · {text}")

    @on(OptionList.OptionHighlighted, "#diff-files")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        index = int(event.option.id or 0)
        if not 0 <= index < len(self.files):
            return
        path = self.files[index].path
        cached = self.patches.get(path)
        if cached is not None:
            self._show_patch(path, cached)
            return
        self.query_one("#diff-patch", Static).update(Text(f"computing {clean(path)}…", style="dim italic"))
        self._load_patch(path)

    def on_diff_screen_patch_loaded(self, loaded: DiffScreen.PatchLoaded) -> None:
        self._show_patch(loaded.path, loaded.text)

    def _show_patch(self, path: str, text: Text) -> None:
        if not self.is_mounted:
            return
        self.patches[path] = text
        current = self.query_one(OptionList).highlighted
        if current is None or not 0 <= current < len(self.files) or self.files[current].path != path:
            return  # the user moved on; it stays cached
        self.shown = path
        if path in self.clashes:
            header = Text(f"⚔ predicted to conflict with {', '.join(self.clashes[path])}\n", style="bold red")
            text = Text.assemble(header, text, no_wrap=True, overflow="crop")
        self.query_one("#diff-patch", Static).update(text)
        self.query_one("#diff-scroll", VerticalScroll).scroll_home(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
