"""Key bindings as data: every binding has an id, a description and a default key.

The bindings defined here are the only source of truth for keys: the screens use them as their
``BINDINGS``, the help screen and the README table are generated from them, and users remap them
by id in a ``[keys]`` table (``cockpit.toml`` or the user's ``config.toml``), applied with
``App.set_keymap``.
"""

from __future__ import annotations

import os
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from textual.binding import Binding
from textual.keys import KEY_NAME_REPLACEMENTS

from cockpit.core.errors import ConfigError


@dataclass(frozen=True)
class KeySpec:
    """One remappable key binding. ``group`` is the heading it gets in help."""

    id: str
    keys: str
    action: str
    description: str
    group: str
    show: bool = True
    priority: bool = False
    key_display: str | None = None
    short: str | None = None
    """The footer's label (default: the description)."""

    def binding(self) -> Binding:
        return Binding(self.keys, self.action, self.short or self.description, show=self.show, id=self.id,
                       priority=self.priority, key_display=self.key_display, tooltip=self.description)


APP_KEYS: tuple[KeySpec, ...] = (
    KeySpec("help", "question_mark", "help", "Help: every key", "General", key_display="?", short="help"),
    KeySpec("palette", "ctrl+p", "command_palette", "Command palette", "General", show=False, priority=True),
    KeySpec("quit", "q", "quit", "Quit (agents keep running)", "General", short="quit"),
)
"""Bindings that work on every screen."""

GRID_MOVE_KEYS: tuple[KeySpec, ...] = (
    KeySpec("focus-left", "left,h", "app.move(-1, 0)", "Focus the tile to the left", "Move", show=False),
    KeySpec("focus-right", "right,l", "app.move(1, 0)", "Focus the tile to the right", "Move", show=False),
    KeySpec("focus-up", "up,k", "app.move(0, -1)", "Focus the tile above", "Move", show=False),
    KeySpec("focus-down", "down,j", "app.move(0, 1)", "Focus the tile below", "Move", show=False),
    KeySpec("focus-next", "tab", "app.focus_tile(1)", "Focus the next tile", "Move", show=False),
    KeySpec("focus-previous", "shift+tab", "app.focus_tile(-1)", "Focus the previous tile", "Move", show=False),
)
"""Moving between tiles."""

AGENT_KEYS: tuple[KeySpec, ...] = (
    KeySpec("pause", "p", "app.pause", "Pause / resume the agent", "Agent", short="pause"),
    KeySpec("kill", "x", "app.kill", "Kill the agent (asks first)", "Agent", short="kill"),
    KeySpec("discard", "d", "app.discard", "Discard: archive, remove worktree and branch", "Agent", short="discard"),
    KeySpec("respawn", "r", "app.respawn", "Respawn: start the next attempt", "Agent", short="respawn"),
    KeySpec("fail", "F", "app.mark_failed", "Mark failed (counts towards the 2-failure rule; asks first)", "Agent",
            show=False),
    KeySpec("attach", "enter,a", "app.attach", "Attach to the agent's terminal", "Agent", key_display="⏎/a",
            short="attach"),
    KeySpec("new", "n", "app.new_agent", "New agent", "Fleet", short="new"),
    KeySpec("attention", "w", "app.next_attention", "Focus the next agent needing you (waiting, stalled, failed)",
            "Fleet", short="next waiting"),
    KeySpec("screen", "s", "app.toggle_screen", "Log / screen view", "View", short="log/screen"),
    KeySpec("zoom", "z", "app.zoom", "Zoom: one tile full-screen", "View", short="zoom"),
    KeySpec("diff", "v", "app.diff", "Diff: what the agent changed against base", "Review", short="diff"),
    KeySpec("merge", "m", "app.merge", "Merge: queue the agent and run the merge queue (asks first)", "Review",
            short="merge"),
)
"""Keys that act on the focused tile, or on the highlighted row of the list."""

ARRANGE_KEYS: tuple[KeySpec, ...] = (
    KeySpec("layout", "t", "app.toggle_layout", "Grid / list layout", "Arrange", short="grid/list"),
    KeySpec("sort", "o", "app.cycle_sort", "Order: attention first / by name / recent output", "Arrange",
            short="order"),
    KeySpec("pin", "space", "app.pin", "Pin / unpin the agent (the grid shows the pinned ones)", "Arrange",
            key_display="space", show=False),
)
"""Keys that arrange the agents, in either layout."""

GRID_KEYS: tuple[KeySpec, ...] = GRID_MOVE_KEYS + AGENT_KEYS + ARRANGE_KEYS
"""Bindings of the grid of tiles (they act on the focused agent)."""

LIST_MOVE_KEYS: tuple[KeySpec, ...] = (
    KeySpec("list-up", "up,k", "cursor(-1)", "Highlight the row above", "List", show=False),
    KeySpec("list-down", "down,j", "cursor(1)", "Highlight the row below", "List", show=False),
    KeySpec("list-page-up", "pageup", "page(-1)", "Highlight a page up", "List", show=False),
    KeySpec("list-page-down", "pagedown", "page(1)", "Highlight a page down", "List", show=False),
    KeySpec("list-first", "home", "first", "Highlight the first row", "List", show=False),
    KeySpec("list-last", "end", "last", "Highlight the last row", "List", show=False),
    KeySpec("filter", "slash", "app.filter", "Filter the rows by name, state or flag (esc clears)", "List",
            key_display="/", short="filter"),
    KeySpec("filter-clear", "escape", "app.clear_filter", "Clear the filter", "List", key_display="esc", show=False),
)
"""Moving in the list layout, and narrowing it."""

LIST_KEYS: tuple[KeySpec, ...] = LIST_MOVE_KEYS + ARRANGE_KEYS + AGENT_KEYS
"""Bindings of the list layout (they act on the highlighted agent). Its footer shows ``/``, ``t``
and ``o`` first: a user who finds the list instead of the grid sees at once how to switch."""

ZOOM_KEYS: tuple[KeySpec, ...] = (
    KeySpec("zoom-close", "z,escape", "close", "Back to the grid", "Zoom", key_display="z/esc", short="back"),
    KeySpec("search", "slash", "search", "Search the log", "Zoom", key_display="/", short="search"),
    KeySpec("search-next", "n", "next_match(1)", "Next match", "Zoom", short="next"),
    KeySpec("search-previous", "N", "next_match(-1)", "Previous match", "Zoom", short="prev"),
    KeySpec("zoom-screen", "s", "toggle_screen", "Log / screen view", "Zoom", short="log/screen"),
    KeySpec("zoom-diff", "v", "app.diff", "Diff: what the agent changed against base", "Zoom", short="diff"),
    KeySpec("zoom-top", "g", "scroll_home", "Scroll to the start", "Zoom", show=False),
    KeySpec("zoom-bottom", "G", "scroll_end", "Scroll to the end (follow)", "Zoom", show=False),
)
"""Bindings of the zoomed tile."""

DIFF_KEYS: tuple[KeySpec, ...] = (
    KeySpec("diff-close", "escape,v,q", "close", "Back to the grid", "Diff", key_display="esc/v/q", short="back"),
)
"""Bindings of the diff view."""

ALL_KEYS: tuple[KeySpec, ...] = APP_KEYS + GRID_MOVE_KEYS + LIST_MOVE_KEYS + AGENT_KEYS + ARRANGE_KEYS + ZOOM_KEYS + \
    DIFF_KEYS
"""Every binding, each once."""


def bindings(specs: Iterable[KeySpec]) -> list[Binding]:
    """Textual bindings for ``specs`` (use as a ``BINDINGS`` class variable)."""
    return [spec.binding() for spec in specs]


def binding_ids() -> set[str]:
    return {spec.id for spec in ALL_KEYS}


def check_keymap(keymap: Mapping[str, str], source: str) -> tuple[dict[str, str], list[str]]:
    """Split a ``[keys]`` table into the entries that name a known binding and one-line
    problems for the others (an unknown id, an empty key)."""
    known = binding_ids()
    good: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, key in keymap.items():
        if binding_id not in known:
            problems.append(f"{source}: keys.{binding_id}: no such binding (known: {', '.join(sorted(known))})")
        elif not isinstance(key, str) or not key.strip():
            problems.append(f"{source}: keys.{binding_id}: give a key such as \"D\" or \"ctrl+d\"")
        else:
            good[binding_id] = key.strip()
    return good, problems


CONTEXTS: dict[str, tuple[KeySpec, ...]] = {
    "grid": APP_KEYS + GRID_KEYS,
    "list": APP_KEYS + LIST_KEYS,
    "zoomed tile": APP_KEYS + ZOOM_KEYS,
    "diff view": APP_KEYS + DIFF_KEYS,
}
"""The bindings active together: two of them on one key conflict (the zoom and the grid are
separate: ``n`` is "new agent" in one and "next match" in the other)."""


def normalize_key(key: str) -> str:
    """A key as Textual names it: a single punctuation character by its Unicode name
    (``?`` is ``question_mark``), as Textual does for bindings and keymaps."""
    key = key.strip()
    if len(key) != 1 or key.isalnum():
        return key
    try:
        name = unicodedata.name(key).lower().replace("-", "_").replace(" ", "_")
    except ValueError:
        name = {"\t": "tab"}.get(key, key)
    return KEY_NAME_REPLACEMENTS.get(name, name)


def _keys_of(spec: KeySpec, keymap: Mapping[str, str]) -> list[str]:
    return [normalize_key(k) for k in effective_keys(spec, keymap).split(",") if k.strip()]


def _first_conflict(keymap: Mapping[str, str]) -> tuple[str, str, KeySpec, KeySpec] | None:
    """``(context, key, a, b)``: two bindings of one context on one key, at least one of them
    remapped (the defaults overlap only where a view's own key shadows an app key on purpose:
    ``q`` closes the diff view)."""
    for context, specs in CONTEXTS.items():
        owners: dict[str, KeySpec] = {}
        for spec in specs:
            for key in dict.fromkeys(_keys_of(spec, keymap)):
                other = owners.get(key)
                if other is not None and other.id != spec.id and (spec.id in keymap or other.id in keymap):
                    return context, key, other, spec
                owners.setdefault(key, spec)
    return None


def refuse_conflicts(keymap: Mapping[str, str], sources: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Drop every remap that would put two bindings of one context on the same key, with a
    one-line problem naming both bindings and where each remap comes from (``sources``: binding
    id -> file). What is left can be applied: no key is silently lost."""
    applied = dict(keymap)
    problems: list[str] = []
    while (conflict := _first_conflict(applied)) is not None:
        context, key, first, second = conflict
        remapped = [spec for spec in (first, second) if spec.id in applied]

        def named(spec: KeySpec) -> str:
            if spec.id in applied:
                return f"keys.{spec.id} = {applied[spec.id]!r} ({sources.get(spec.id, '?')})"
            return f"{spec.id} ({spec.keys})"

        if len(remapped) == 2:
            outcome = f"neither applied: {first.id} stays on {first.keys!r}, {second.id} on {second.keys!r}"
        else:
            outcome = f"not applied: {remapped[0].id} stays on {remapped[0].keys!r}"
        problems.append(f"{named(remapped[0])} conflicts with {named(first if remapped[0] is second else second)}: "
                        f"both would answer {key!r} in the {context}; {outcome}")
        for spec in remapped:
            del applied[spec.id]
    return applied, problems


def user_config_file() -> Path:
    """The user's config file: ``$COCKPIT_CONFIG_DIR/config.toml``, else
    ``$XDG_CONFIG_HOME/cockpit/config.toml``, else ``~/.config/cockpit/config.toml``."""
    configured = os.environ.get("COCKPIT_CONFIG_DIR")
    if configured:
        return Path(configured) / "config.toml"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "cockpit" / "config.toml"


def user_keys(path: Path | None = None) -> dict[str, str]:
    """The ``[keys]`` table of the user's config file (empty when there is none).
    Raises :class:`ConfigError` with a one-line message when the file is malformed."""
    path = path or user_config_file()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        raise ConfigError(f"{path}: keys: must be a table")
    return {str(k): v for k, v in keys.items()}


def effective_keys(spec: KeySpec, keymap: Mapping[str, str]) -> str:
    """The keys ``spec`` is bound to once ``keymap`` is applied (comma-separated)."""
    return keymap.get(spec.id, spec.keys)


def markdown_table(keymap: Mapping[str, str] | None = None) -> str:
    """The key table for the README, generated from the bindings."""
    rows = ["| key | id | action |", "|---|---|---|"]
    for spec in ALL_KEYS:
        keys = effective_keys(spec, keymap or {})
        rows.append(f"| `{keys}` | `{spec.id}` | {spec.description} |")
    return "\n".join(rows)
