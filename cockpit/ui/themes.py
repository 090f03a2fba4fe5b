"""Colour themes: built-in and user TOML files turned into Textual themes.

A theme file gives Textual's base colours plus a ``[states]`` table with one colour per agent
state and activity (see :data:`STATE_KEYS`). The file format is documented at the top of
``themes/cockpit-dark.toml``.

What this module guarantees:

* Every :class:`CockpitTheme` has a colour for every name in :data:`STATE_KEYS`, as an opaque
  ``#RRGGBB`` string, so widgets can use it in TCSS (``$state-running``) and in Rich styles alike.
  A user theme may leave states out; they fall back to the default theme's colours.
* Validation is strict and every problem is a :class:`ThemeError` with a one-line message naming
  the file (and line, when it can be found) and the offending key.
* A broken *user* theme never stops the app: :func:`load_themes` skips it and reports it in
  :attr:`LoadedThemes.errors`. A broken *built-in* theme is a packaging bug and raises.
* Nothing here touches the filesystem or the environment at import time.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from textual.color import Color, ColorParseError
from textual.theme import Theme

from cockpit.core.errors import ConfigError

DEFAULT_THEME = "cockpit-dark"
"""The theme used when none is configured; also the source of fallback state colours."""

AGENT_STATES = (
    "pending", "running", "paused", "unknown", "exited", "failed", "killed", "halted", "missing",
    "queued", "blocked", "merged", "conflict", "rejected",
)
"""Every agent state a theme colours, including those later features introduce."""

ACTIVITIES = ("setup", "waiting", "working", "compacting", "rate-limited", "error", "idle", "stalled")
"""What a running agent appears to be doing; coloured like states."""

STATE_KEYS = AGENT_STATES + ACTIVITIES
"""The keys of a theme's ``[states]`` table. Built-in themes must define all of them."""

COLOUR_KEYS = (
    "primary", "secondary", "accent", "foreground", "background", "surface", "panel",
    "success", "warning", "error",
)
"""Textual base colours; every theme file must give all of them."""

REQUIRED_KEYS = ("name", "dark") + COLOUR_KEYS
TOP_KEYS = frozenset(REQUIRED_KEYS + ("states",))

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""Theme names end up in ``cockpit.toml`` and in a CSS class (``-theme-<name>``)."""

VARIABLE_PREFIX = "state-"


class ThemeError(ConfigError, ValueError):
    """A theme file is unreadable or invalid. The message is one line and names file and key.

    It is a :class:`~cockpit.core.errors.ConfigError` (so the CLI reports it like any config
    problem) and a :class:`ValueError` (it is bad input, not a failed operation).
    """


@dataclass
class CockpitTheme:
    """A loaded theme: the Textual theme to register, plus the state colours on their own.

    ``states`` maps every name in :data:`STATE_KEYS` to ``#RRGGBB``. The same colours are in
    ``textual.variables`` as ``state-<name>``, so TCSS can say ``color: $state-running;``.
    ``path`` is the file it came from (``None`` for themes built in code).
    """

    name: str
    textual: Theme
    states: dict[str, str]
    path: Path | None = None


class LoadedThemes(NamedTuple):
    """What :func:`load_themes` returns; unpacks as ``themes, errors = load_themes()``.

    ``themes`` maps names to themes: built-ins first (in file-name order), then user themes.
    ``errors`` are the user theme files that were skipped, one :class:`ThemeError` each, meant to
    be shown to the user (e.g. ``app.notify(str(error), severity="warning")``).
    """

    themes: dict[str, CockpitTheme]
    errors: list[ThemeError]


# --- locations ---------------------------------------------------------------------------------

def builtin_theme_dir() -> Path:
    """The directory holding the built-in theme files.

    An installed wheel ships them inside the package (``cockpit/themes``, see pyproject's
    force-include); a development checkout keeps them at ``<repo>/themes``. The package-internal
    directory wins when both exist. If neither exists the repo-level path is returned, and
    :func:`load_themes` reports it as missing.
    """
    package = Path(__file__).resolve().parent.parent  # .../cockpit
    inside = package / "themes"
    if inside.is_dir():
        return inside
    return package.parent / "themes"


def user_theme_dir() -> Path:
    """Where the user's own theme files live (the directory need not exist).

    ``$COCKPIT_CONFIG_DIR/themes`` if that is set, else ``$XDG_CONFIG_HOME/cockpit/themes``, else
    ``~/.config/cockpit/themes``. Empty variables count as unset; a relative ``XDG_CONFIG_HOME``
    is ignored, as the XDG base directory spec requires. Read on every call, never cached.
    """
    configured = os.environ.get("COCKPIT_CONFIG_DIR")
    if configured:
        return Path(configured).expanduser() / "themes"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "cockpit" / "themes"
    return Path.home() / ".config" / "cockpit" / "themes"


# --- one file ----------------------------------------------------------------------------------

def _line_of(text: str, key: str, after_line: int = 0) -> int | None:
    pattern = re.compile(rf"^\s*([\"']?){re.escape(key)}\1\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        if number > after_line and pattern.match(line):
            return number
    return None


def _table_line(text: str, header: str) -> int:
    pattern = re.compile(rf"^\s*\[\s*{re.escape(header)}\s*\]\s*(#.*)?$")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return 0


class _Reader:
    """Builds :class:`ThemeError` messages of the form ``<file>:<line>: <key>: <problem>``."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text
        self.states_line = _table_line(text, "states")

    def fail(self, key: str, message: str) -> ThemeError:
        if key.startswith("states."):
            line = _line_of(self.text, key.split(".", 1)[1], self.states_line)
        elif key == "states":
            line = self.states_line or _line_of(self.text, key)
        else:
            line = _line_of(self.text, key) or _table_line(self.text, key) or None
        where = f"{self.path}:{line}" if line else str(self.path)
        return ThemeError(f"{where}: {key}: {message}")

    def colour(self, key: str, value: Any) -> Color:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a colour string, got {type(value).__name__}")
        try:
            return Color.parse(value)
        except ColorParseError:
            raise self.fail(
                key, f"invalid colour {value!r} (use e.g. '#RRGGBB', 'rgb(r, g, b)' or a name)"
            ) from None


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ThemeError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ThemeError(f"{path}: not UTF-8 text") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"at line (\d+)", message)
        line = f":{match.group(1)}" if match else ""
        raise ThemeError(f"{path}{line}: invalid TOML: {message}") from None


def state_variables(states: Mapping[str, str]) -> dict[str, str]:
    """``{"running": c, ...}`` as Textual theme variables ``{"state-running": c, ...}``."""
    return {f"{VARIABLE_PREFIX}{key}": value for key, value in states.items()}


def load_theme_file(
    path: Path | str,
    fallback_states: Mapping[str, str] | None = None,
    *,
    require_all_states: bool = False,
) -> CockpitTheme:
    """Read and validate one theme file, raising :class:`ThemeError` on any problem.

    Checked: the file is UTF-8 TOML; there are no unknown keys (top level or in ``[states]``);
    every key of :data:`REQUIRED_KEYS` is present; ``name`` is a valid theme name; ``dark`` is a
    boolean; every colour parses with :meth:`textual.color.Color.parse`; state colours are also
    opaque and not ANSI colours (they are normalised to ``#RRGGBB``).

    States the file leaves out come from ``fallback_states`` (default: the built-in default
    theme's). With ``require_all_states`` a missing state is an error instead; built-ins are
    loaded that way.
    """
    path = Path(path)
    data, text = _read_toml(path)
    reader = _Reader(path, text)

    for key in data:
        if key not in TOP_KEYS:
            raise reader.fail(key, f"unknown key (expected one of: {', '.join(sorted(TOP_KEYS))})")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise ThemeError(f"{path}: {key}: missing required key")

    name = data["name"]
    if not isinstance(name, str):
        raise reader.fail("name", f"expected a string, got {type(name).__name__}")
    if not NAME_RE.match(name):
        raise reader.fail(
            "name", f"invalid theme name {name!r}: use 1-64 characters a-z, 0-9, '-' and '_', "
            "starting with a letter or digit"
        )
    dark = data["dark"]
    if not isinstance(dark, bool):
        raise reader.fail("dark", f"expected true or false, got {type(dark).__name__}")
    colours: dict[str, str] = {}
    for key in COLOUR_KEYS:
        reader.colour(key, data[key])
        colours[key] = data[key]

    raw_states = data.get("states", {})
    if not isinstance(raw_states, dict):
        raise reader.fail("states", "expected a table ([states])")
    states: dict[str, str] = {}
    for key, value in raw_states.items():
        if key not in STATE_KEYS:
            raise reader.fail(
                f"states.{key}", f"unknown state (expected one of: {', '.join(STATE_KEYS)})"
            )
        colour = reader.colour(f"states.{key}", value)
        if colour.ansi is not None:
            raise reader.fail(f"states.{key}", f"{value!r} is an ANSI colour; "
                              "state colours must be RGB (e.g. '#RRGGBB')")
        if colour.a < 1:
            raise reader.fail(f"states.{key}", f"{value!r} is not opaque; "
                              "state colours must not be transparent")
        states[key] = colour.hex

    missing = [key for key in STATE_KEYS if key not in states]
    if missing:
        if require_all_states:
            raise reader.fail(f"states.{missing[0]}", "missing state colour "
                              f"(built-in themes must define all of: {', '.join(missing)})")
        if fallback_states is None:
            fallback_states = _default_states()
        for key in missing:
            states[key] = fallback_states[key]
    states = {key: states[key] for key in STATE_KEYS}

    textual = Theme(name=name, dark=dark, variables=state_variables(states), **colours)
    return CockpitTheme(name=name, textual=textual, states=states, path=path)


def _default_states() -> dict[str, str]:
    """The default built-in theme's state colours (read from its file on each call)."""
    path = builtin_theme_dir() / f"{DEFAULT_THEME}.toml"
    return load_theme_file(path, require_all_states=True).states


# --- directories -------------------------------------------------------------------------------

def _theme_files(directory: Path) -> list[Path]:
    """``*.toml`` files directly in ``directory``, sorted; hidden files (editor droppings) skipped.

    A directory that does not exist has no themes; one that cannot be listed raises ThemeError.
    """
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise ThemeError(f"{directory}: not a directory") from None
    except OSError as exc:
        raise ThemeError(f"{directory}: cannot list: {exc.strerror or exc}") from None
    return sorted(
        p for p in entries if p.suffix == ".toml" and not p.name.startswith(".") and p.is_file()
    )


def load_themes(
    extra_dirs: Iterable[Path | str] = (),
    *,
    user_dir: Path | str | None = None,
    include_user: bool = True,
) -> LoadedThemes:
    """Load the built-in themes, then the user's, then any ``extra_dirs``, in that order.

    A theme with the name of one loaded earlier replaces it (so a user can restyle
    ``cockpit-dark``). Within one directory files are read in name order, and a second file
    claiming a name already used in the same directory is reported and skipped.

    Built-in themes must be valid and complete (every state coloured); otherwise this raises
    :class:`ThemeError`, since that is a bug in cockpit, not something the user can fix. User
    and extra themes that fail to load are skipped and returned in ``errors``; states they omit
    are taken from the built-in default theme. ``user_dir`` defaults to :func:`user_theme_dir`;
    ``include_user=False`` skips it (useful in tests and for ``--no-user-themes`` style flags).
    """
    builtin_dir = builtin_theme_dir()
    themes: dict[str, CockpitTheme] = {}
    for path in _theme_files(builtin_dir):
        theme = load_theme_file(path, require_all_states=True)
        if theme.name in themes:
            raise ThemeError(f"{path}: name: duplicate built-in theme name {theme.name!r} "
                             f"(also in {themes[theme.name].path})")
        themes[theme.name] = theme
    if DEFAULT_THEME not in themes:
        raise ThemeError(f"{builtin_dir}: built-in theme {DEFAULT_THEME!r} not found")
    fallback = themes[DEFAULT_THEME].states

    directories: list[Path] = []
    if include_user:
        directories.append(Path(user_dir) if user_dir is not None else user_theme_dir())
    directories.extend(Path(d) for d in extra_dirs)

    errors: list[ThemeError] = []
    for directory in directories:
        try:
            files = _theme_files(directory)
        except ThemeError as exc:
            errors.append(exc)
            continue
        seen: dict[str, Path] = {}
        for path in files:
            try:
                theme = load_theme_file(path, fallback)
            except ThemeError as exc:
                errors.append(exc)
                continue
            if theme.name in seen:
                errors.append(ThemeError(
                    f"{path}: name: theme {theme.name!r} is already defined in {seen[theme.name]}; "
                    "this file is ignored"
                ))
                continue
            seen[theme.name] = path
            themes[theme.name] = theme
    return LoadedThemes(themes, errors)


# --- the app -----------------------------------------------------------------------------------

def register_themes(app: Any, themes: Mapping[str, CockpitTheme] | Iterable[CockpitTheme]) -> None:
    """Register every theme with a Textual ``App`` so ``app.theme = name`` can select it.

    Registering replaces any theme of the same name already registered. Apps whose CSS uses
    ``$state-*`` should also return :func:`fallback_variables` from
    ``App.get_theme_variable_defaults``, so those variables still resolve when the user picks
    one of Textual's own themes (which know nothing of agent states).
    """
    values = themes.values() if isinstance(themes, Mapping) else themes
    for theme in values:
        app.register_theme(theme.textual)


def fallback_variables(themes: Mapping[str, CockpitTheme] | None = None) -> dict[str, str]:
    """The ``state-*`` variables of the default theme, for ``App.get_theme_variable_defaults``.

    Taken from ``themes`` when given (a user override of the default then applies), else read
    from the built-in default theme file. Note that ``App.__init__`` already calls
    ``get_theme_variable_defaults``, so set whatever it reads before calling ``super().__init__``.
    """
    if themes is not None and DEFAULT_THEME in themes:
        return state_variables(themes[DEFAULT_THEME].states)
    return state_variables(_default_states())


__all__ = [
    "ACTIVITIES", "AGENT_STATES", "COLOUR_KEYS", "CockpitTheme", "DEFAULT_THEME", "LoadedThemes",
    "REQUIRED_KEYS", "STATE_KEYS", "ThemeError", "builtin_theme_dir", "fallback_variables",
    "load_theme_file", "load_themes", "register_themes", "state_variables", "user_theme_dir",
]
