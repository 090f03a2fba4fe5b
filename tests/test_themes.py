"""Theme files and their loader: built-ins are complete and readable, user themes are optional,
override built-ins, and fail one file at a time with messages that name the file and key."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.color import Color
from textual.widgets import Static

from cockpit.ui import themes as themes_mod
from cockpit.ui.themes import (
    DEFAULT_THEME,
    STATE_KEYS,
    CockpitTheme,
    ThemeError,
    builtin_theme_dir,
    fallback_variables,
    load_theme_file,
    load_themes,
    register_themes,
    user_theme_dir,
)

BUILTIN_NAMES = ("cockpit-dark", "cockpit-light", "cockpit-high-contrast")


# --- helpers -----------------------------------------------------------------------------------

def relative_luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of an sRGB colour."""
    parsed = Color.parse(colour)

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(parsed.r) + 0.7152 * linear(parsed.g) + 0.0722 * linear(parsed.b)


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio, 1 to 21."""
    high, low = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


VALID = """\
name = "{name}"
dark = true
primary = "#112233"
secondary = "#223344"
accent = "#334455"
foreground = "#EEEEEE"
background = "#101010"
surface = "#151515"
panel = "#202020"
success = "green"
warning = "rgb(255, 200, 0)"
error = "#F00"
"""


def write(directory: Path, filename: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cockpit config dir, selected through $COCKPIT_CONFIG_DIR."""
    directory = tmp_path / "config"
    monkeypatch.setenv("COCKPIT_CONFIG_DIR", str(directory))
    return directory


@pytest.fixture
def builtins() -> dict[str, CockpitTheme]:
    loaded, errors = load_themes(include_user=False)
    assert errors == []
    return loaded


# --- built-ins ---------------------------------------------------------------------------------

def test_builtin_dir_is_repo_themes_in_a_checkout() -> None:
    assert builtin_theme_dir() == Path(__file__).resolve().parent.parent / "themes"
    assert {p.stem for p in builtin_theme_dir().glob("*.toml")} >= set(BUILTIN_NAMES)


def test_builtin_dir_prefers_package_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate an installed wheel: <site>/cockpit/ui/themes.py with <site>/cockpit/themes/.
    package = tmp_path / "site" / "cockpit"
    (package / "ui").mkdir(parents=True)
    monkeypatch.setattr(themes_mod, "__file__", str(package / "ui" / "themes.py"))
    assert builtin_theme_dir() == tmp_path / "site" / "themes"  # not shipped: repo-level path
    (package / "themes").mkdir()
    assert builtin_theme_dir() == package / "themes"


def test_every_builtin_loads_and_colours_every_state(builtins: dict[str, CockpitTheme]) -> None:
    assert set(BUILTIN_NAMES) <= set(builtins)
    assert DEFAULT_THEME in builtins
    for name, theme in builtins.items():
        assert theme.name == name == theme.textual.name
        assert list(theme.states) == list(STATE_KEYS)
        for state, colour in theme.states.items():
            assert Color.parse(colour).hex == colour
            assert theme.textual.variables[f"state-{state}"] == colour


def test_builtins_define_every_state_in_the_file_itself() -> None:
    # The fallback must not hide a state missing from a built-in file.
    for path in builtin_theme_dir().glob("*.toml"):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert set(data["states"]) == set(STATE_KEYS), path.name


def test_builtin_names_are_unique_and_match_file_names() -> None:
    names = []
    for path in sorted(builtin_theme_dir().glob("*.toml")):
        theme = load_theme_file(path, require_all_states=True)
        assert theme.name == path.stem
        names.append(theme.name)
    assert len(names) == len(set(names))


def test_dark_and_light(builtins: dict[str, CockpitTheme]) -> None:
    assert builtins["cockpit-dark"].textual.dark is True
    light = builtins["cockpit-light"].textual
    assert light.dark is False
    assert relative_luminance(light.background) > 0.8
    assert relative_luminance(light.foreground) < 0.05


def test_every_builtin_is_readable(builtins: dict[str, CockpitTheme]) -> None:
    for theme in builtins.values():
        background = theme.textual.background
        assert contrast(theme.textual.foreground, background) >= 4.5, theme.name
        for state, colour in theme.states.items():
            assert contrast(colour, background) >= 3.0, (theme.name, state)


def test_high_contrast_is_high_contrast(builtins: dict[str, CockpitTheme]) -> None:
    theme = builtins["cockpit-high-contrast"]
    textual = theme.textual
    assert textual.dark is True
    assert Color.parse(textual.background).hex == "#000000"
    assert contrast(textual.foreground, textual.background) >= 7.0
    for state, colour in theme.states.items():
        assert contrast(colour, textual.background) >= 7.0, state
        assert contrast(colour, textual.surface) >= 7.0, state
        # bright and saturated: the strongest channel is (nearly) full intensity
        parsed = Color.parse(colour)
        assert max(parsed.r, parsed.g, parsed.b) >= 0xC0, state


def test_cockpit_dark_documents_the_format() -> None:
    text = (builtin_theme_dir() / "cockpit-dark.toml").read_text(encoding="utf-8")
    header = text.split("\nname =", 1)[0]
    assert all(line.startswith("#") or not line.strip() for line in header.splitlines())
    for word in ("[states]", "dark", "$state-", "COCKPIT_CONFIG_DIR", *STATE_KEYS):
        assert word in header


# --- user directory ----------------------------------------------------------------------------

def test_user_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COCKPIT_CONFIG_DIR", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_theme_dir() == tmp_path / "home" / ".config" / "cockpit" / "themes"

    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    assert user_theme_dir() == tmp_path / "home" / ".config" / "cockpit" / "themes"

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert user_theme_dir() == tmp_path / "xdg" / "cockpit" / "themes"

    monkeypatch.setenv("COCKPIT_CONFIG_DIR", str(tmp_path / "cfg"))
    assert user_theme_dir() == tmp_path / "cfg" / "themes"

    monkeypatch.setenv("COCKPIT_CONFIG_DIR", "")
    assert user_theme_dir() == tmp_path / "xdg" / "cockpit" / "themes"


def test_missing_user_dir_is_fine(config_dir: Path) -> None:
    loaded, errors = load_themes()
    assert errors == []
    assert set(loaded) == set(BUILTIN_NAMES)


def test_user_theme_is_loaded_and_missing_states_fall_back(
    config_dir: Path, builtins: dict[str, CockpitTheme]
) -> None:
    write(config_dir / "themes", "mine.toml",
          VALID.format(name="mine") + '[states]\nrunning = "#00FF00"\n')
    loaded, errors = load_themes()
    assert errors == []
    mine = loaded["mine"]
    assert mine.path == config_dir / "themes" / "mine.toml"
    assert mine.states["running"] == "#00FF00"
    assert mine.textual.variables["state-running"] == "#00FF00"
    dark = builtins[DEFAULT_THEME].states
    for state in STATE_KEYS:
        if state != "running":
            assert mine.states[state] == dark[state]
    assert set(BUILTIN_NAMES) <= set(loaded)


def test_user_theme_overrides_builtin(config_dir: Path) -> None:
    write(config_dir / "themes", "my-dark.toml",
          VALID.format(name="cockpit-dark") + '[states]\nfailed = "#123456"\n')
    loaded, errors = load_themes()
    assert errors == []
    assert loaded["cockpit-dark"].textual.background == "#101010"
    assert loaded["cockpit-dark"].states["failed"] == "#123456"
    assert fallback_variables(loaded)["state-failed"] == "#123456"
    assert fallback_variables()["state-failed"] != "#123456"  # the file, not the override


def test_extra_dirs_come_after_the_user_dir(config_dir: Path, tmp_path: Path) -> None:
    write(config_dir / "themes", "a.toml", VALID.format(name="shared"))
    extra = tmp_path / "extra"
    write(extra, "b.toml", VALID.format(name="shared").replace("#101010", "#202020"))
    loaded, errors = load_themes([extra])
    assert errors == []
    assert loaded["shared"].textual.background == "#202020"
    loaded, errors = load_themes([extra], include_user=False)
    assert loaded["shared"].path == extra / "b.toml"


def test_broken_user_theme_is_reported_and_others_still_load(config_dir: Path) -> None:
    directory = config_dir / "themes"
    write(directory, "good.toml", VALID.format(name="good"))
    write(directory, "broken.toml", "name = \n")
    write(directory, "typo.toml", VALID.format(name="typo") + '[states]\nrunnning = "#FFFFFF"\n')
    write(directory, "notes.txt", "not a theme")
    write(directory, ".#good.toml", "editor lock file")
    loaded, errors = load_themes()
    assert "good" in loaded and set(BUILTIN_NAMES) <= set(loaded)
    assert "typo" not in loaded
    messages = sorted(str(e) for e in errors)
    assert len(messages) == 2
    assert messages[0].startswith(f"{directory / 'broken.toml'}:1: invalid TOML")
    assert messages[1].startswith(f"{directory / 'typo.toml'}:14: states.runnning: unknown state")
    assert all("\n" not in m for m in messages)


def test_duplicate_name_in_one_user_dir_is_reported(config_dir: Path) -> None:
    directory = config_dir / "themes"
    write(directory, "a.toml", VALID.format(name="twin"))
    write(directory, "b.toml", VALID.format(name="twin").replace("#101010", "#202020"))
    loaded, errors = load_themes()
    assert loaded["twin"].path == directory / "a.toml"
    assert len(errors) == 1
    assert str(directory / "b.toml") in str(errors[0]) and "already defined" in str(errors[0])


def test_user_dir_that_is_a_file_is_reported(config_dir: Path) -> None:
    config_dir.mkdir()
    (config_dir / "themes").write_text("oops")
    loaded, errors = load_themes()
    assert set(loaded) == set(BUILTIN_NAMES)
    assert len(errors) == 1 and "not a directory" in str(errors[0])


def test_broken_builtin_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "builtin"
    shutil.copytree(builtin_theme_dir(), fake)
    monkeypatch.setattr(themes_mod, "builtin_theme_dir", lambda: fake)
    text = (fake / "cockpit-light.toml").read_text()
    (fake / "cockpit-light.toml").write_text(text.replace('stalled = "#BC4C00"\n', ""))
    with pytest.raises(ThemeError, match=r"cockpit-light\.toml: states\.stalled: missing"):
        load_themes(include_user=False)
    (fake / "cockpit-light.toml").unlink()
    (fake / "cockpit-dark.toml").unlink()
    with pytest.raises(ThemeError, match="'cockpit-dark' not found"):
        load_themes(include_user=False)


# --- bad files ---------------------------------------------------------------------------------

BAD_FILES = [
    pytest.param("name = \n", r":1: invalid TOML: .*line 1", id="malformed-toml"),
    pytest.param(VALID.format(name="x") + "\n[colours]\nx = 1\n", r":14: colours: unknown key",
                 id="unknown-table"),
    pytest.param(VALID.format(name="x") + 'boost = "#FFFFFF"\n', r":13: boost: unknown key",
                 id="unknown-key"),
    pytest.param(VALID.format(name="x") + '[states]\nruning = "#FFFFFF"\n',
                 r":14: states.runing: unknown state", id="unknown-state"),
    pytest.param(VALID.format(name="x").replace('panel = "#202020"\n', ""),
                 r"\.toml: panel: missing required key", id="missing-colour"),
    pytest.param(VALID.format(name="x").replace("dark = true\n", ""),
                 r"\.toml: dark: missing required key", id="missing-dark"),
    pytest.param(VALID.format(name="x").replace('"#EEEEEE"', '"#GGGGGG"'),
                 r":6: foreground: invalid colour '#GGGGGG'", id="bad-colour"),
    pytest.param(VALID.format(name="x").replace('"#EEEEEE"', "12"),
                 r":6: foreground: expected a colour string, got int", id="colour-not-string"),
    pytest.param(VALID.format(name="x") + '[states]\nfailed = "blood"\n',
                 r":14: states.failed: invalid colour 'blood'", id="bad-state-colour"),
    pytest.param(VALID.format(name="x") + '[states]\nfailed = "ansi_red"\n',
                 r":14: states.failed: 'ansi_red' is an ANSI colour", id="ansi-state-colour"),
    pytest.param(VALID.format(name="x") + '[states]\nfailed = "#FF000080"\n',
                 r":14: states.failed: .* not opaque", id="transparent-state-colour"),
    pytest.param(VALID.format(name="x") + 'states = "red"\n', r":13: states: expected a table",
                 id="states-not-table"),
    pytest.param(VALID.format(name="x").replace("dark = true", 'dark = "yes"'),
                 r":2: dark: expected true or false", id="dark-not-bool"),
    pytest.param(VALID.format(name="My Theme"), r":1: name: invalid theme name 'My Theme'",
                 id="bad-name"),
]


@pytest.mark.parametrize(("text", "pattern"), BAD_FILES)
def test_bad_file_gives_one_line_error_naming_file_and_key(
    tmp_path: Path, text: str, pattern: str
) -> None:
    path = write(tmp_path, "bad-theme.toml", text)
    with pytest.raises(ThemeError) as info:
        load_theme_file(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message
    assert re.search(pattern, message), message
    assert isinstance(info.value, ValueError)


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ThemeError, match="nope.toml: cannot read"):
        load_theme_file(tmp_path / "nope.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ThemeError, match="latin1.toml: not UTF-8"):
        load_theme_file(path)


def test_colour_forms_textual_accepts_are_accepted(tmp_path: Path) -> None:
    text = VALID.format(name="forms") + (
        '[states]\nrunning = "lime"\npaused = "rgb(255, 200, 0)"\nfailed = "hsl(0, 100%, 50%)"\n'
        'exited = "#abc"\n'
    )
    theme = load_theme_file(write(tmp_path, "forms.toml", text))
    assert theme.states["running"] == "#00FF00"
    assert theme.states["paused"] == "#FFC800"
    assert theme.states["failed"] == "#FF0000"
    assert theme.states["exited"] == "#AABBCC"
    assert theme.textual.success == "green"  # base colours are passed to Textual as written


# --- the app -----------------------------------------------------------------------------------

class StateApp(App[None]):
    """Minimal app styled with $state-* variables, like cockpit's own widgets will be."""

    CSS = """
    #running { color: $state-running; }
    #stalled { background: $state-stalled; }
    """

    def __init__(self, themes: dict[str, CockpitTheme]) -> None:
        self.cockpit_themes = themes  # read by get_theme_variable_defaults during __init__
        super().__init__()
        register_themes(self, themes)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return fallback_variables(self.cockpit_themes)

    def compose(self) -> ComposeResult:
        yield Static("running", id="running")
        yield Static("stalled", id="stalled")


async def test_register_and_switch_themes(builtins: dict[str, CockpitTheme]) -> None:
    app = StateApp(builtins)
    async with app.run_test() as pilot:
        for name in BUILTIN_NAMES:
            assert name in app.available_themes
        app.theme = DEFAULT_THEME
        await pilot.pause()
        running = app.query_one("#running", Static)
        assert running.styles.color == Color.parse(builtins[DEFAULT_THEME].states["running"])

        app.theme = "cockpit-light"
        await pilot.pause()
        assert app.current_theme.name == "cockpit-light"
        assert app.current_theme.dark is False
        assert app.get_css_variables()["state-running"] == builtins["cockpit-light"].states["running"]
        assert running.styles.color == Color.parse(builtins["cockpit-light"].states["running"])

        app.theme = "cockpit-high-contrast"
        await pilot.pause()
        stalled = app.query_one("#stalled", Static)
        assert stalled.styles.background == Color.parse(
            builtins["cockpit-high-contrast"].states["stalled"]
        )

        # Textual's own themes know nothing of agent states: the defaults fill in.
        app.theme = "textual-light"
        await pilot.pause()
        assert running.styles.color == Color.parse(builtins[DEFAULT_THEME].states["running"])


async def test_register_accepts_an_iterable(builtins: dict[str, CockpitTheme]) -> None:
    app = App[None]()
    register_themes(app, list(builtins.values()))
    async with app.run_test() as pilot:
        app.theme = "cockpit-high-contrast"
        await pilot.pause()
        assert app.current_theme.background == "#000000"
