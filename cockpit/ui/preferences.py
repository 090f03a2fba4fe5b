"""What the user chose for the TUI: the themes, the theme to start with and the keymap, from
``--theme``, ``cockpit.toml`` (``[cockpit] theme``, ``[keys]``) and the user's own config file.

Nothing here stops the app: a broken theme file, config or remap becomes a one-line problem the
app shows when it starts, and the defaults stand in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core.fleet import Fleet
from cockpit.ui.keys import check_keymap, refuse_conflicts, user_config_file, user_keys
from cockpit.ui.messages import describe
from cockpit.ui.themes import DEFAULT_THEME, CockpitTheme, load_themes


@dataclass
class Preferences:
    themes: dict[str, CockpitTheme]
    theme: str
    """The theme to start with (one of :attr:`themes`)."""
    keymap: dict[str, str]
    """Binding id -> keys: the user's remaps, then the repository's (which win)."""
    problems: list[str] = field(default_factory=list)


def resolve_preferences(fleet: Fleet, theme: str | None = None, user_config: Path | None = None,
                        include_user_themes: bool = True) -> Preferences:
    """Themes (built-in, then the user's), the theme (``theme``, else cockpit.toml's, else the
    default) and the keymap (the user's ``[keys]``, then cockpit.toml's; remaps that name no
    binding or would put two bindings on one key are left out, each with a problem)."""
    problems: list[str] = []
    themes, errors = load_themes(include_user=include_user_themes)
    problems += [str(e) for e in errors]
    configured_theme = None
    repo_keys: dict[str, str] = {}
    try:
        config = fleet.config
        configured_theme, repo_keys = config.theme, dict(config.keys)
    except Exception as exc:  # noqa: BLE001 - a broken cockpit.toml must not stop the TUI
        problems.append(describe(exc))
    try:
        personal = user_keys(user_config)
    except Exception as exc:  # noqa: BLE001
        personal, problems = {}, problems + [describe(exc)]
    personal_source, repo_source = str(user_config or user_config_file()), str(fleet.layout.config)
    keymap, bad = check_keymap(personal, personal_source)
    repo_map, bad_repo = check_keymap(repo_keys, repo_source)
    sources = {**dict.fromkeys(keymap, personal_source), **dict.fromkeys(repo_map, repo_source)}
    keymap.update(repo_map)
    keymap, conflicts = refuse_conflicts(keymap, sources)
    problems += bad + bad_repo + conflicts
    chosen = theme or configured_theme or DEFAULT_THEME
    if chosen not in themes:
        problems.append(f"unknown theme {chosen!r} (have: {', '.join(sorted(themes))}); using {DEFAULT_THEME}")
        chosen = DEFAULT_THEME
    return Preferences(themes, chosen, keymap, problems)
