"""cockpit.toml validation: every mistake is a one-line error naming file, line and key."""

from pathlib import Path

import pytest

from cockpit.core.errors import CockpitError, ConfigError
from cockpit.core.spec import STARTER, load_config, order_agents, validate_name

GOOD = """\
[cockpit]
base = "main"
max_failures = 3

[[agent]]
name = "auth"
command = "claude"
task = "Refactor token storage"
scope = ["src/auth/**"]
env = { LOG_LEVEL = "debug" }

[[agent]]
name = "docs"
command = "sh -c 'echo hi'"
after = ["auth"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cockpit.toml"
    path.write_text(text)
    return path


def test_good_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.base == "main" and config.max_failures == 3
    assert list(config.agents) == ["auth", "docs"]
    assert config.agents["auth"].env == {"LOG_LEVEL": "debug"}
    assert order_agents(config.agents, ["docs"]) == ["auth", "docs"]


def test_missing_file_is_empty_fleet(tmp_path: Path) -> None:
    config = load_config(tmp_path / "cockpit.toml")
    assert config.agents == {} and config.max_failures == 2


def test_starter_file_is_valid(tmp_path: Path) -> None:
    assert "example" in load_config(write(tmp_path, STARTER)).agents


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[cockpit\nbase = 1", ":1: invalid TOML"),
        ('[cockpit]\nbsae = "main"\n', ":2: cockpit.bsae: unknown key"),
        ("[cockpit]\nmax_failures = \"two\"\n", "cockpit.max_failures: expected int"),
        ("[cockpit]\nmax_failures = 0\n", "must be 1 or more"),
        ("[cockpit]\ntmux_nice = 20\n", "cockpit.tmux_nice: must be 0 to 19"),
        ("[cockpit]\ntmux_nice = -1\n", "cockpit.tmux_nice: must be 0 to 19"),
        ('[cockpit]\ntmux_nice = "low"\n', "cockpit.tmux_nice: expected int"),
        ('[[agent]]\nname = "a"\ncomand = "x"\n', ":3: agent[0] ('a').comand: unknown key"),
        ('[[agent]]\nname = "a"\n', "missing required key 'command'"),
        ('[[agent]]\nname = "A b"\ncommand = "x"\n', "invalid agent name"),
        ('[[agent]]\nname = "a"\ncommand = "x"\n[[agent]]\nname = "a"\ncommand = "y"\n', "duplicate agent name 'a'"),
        ('[[agent]]\nname = "a"\ncommand = "x"\nscope = "src/**"\n', "scope: expected list"),
        ('[[agent]]\nname = "a"\ncommand = "x"\nafter = ["b"]\n', "unknown agent 'b'"),
        ('[[agent]]\nname = "a"\ncommand = "x"\nafter = ["b"]\n[[agent]]\nname = "b"\ncommand = "x"\nafter = ["a"]\n',
         "dependency cycle"),
        ('[[agent]]\nname = "a"\ncommand = "x"\nenv = { X = 1 }\n', "environment values must be strings"),
        ('agents = []\n', "agents: unknown key"),
    ],
)
def test_bad_config(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and expected in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["../x", "a/b", "a;rm -rf ~", "-rf", "", "x" * 41, "Upper", "caf\u00e9", "a b", "a.b"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(CockpitError, match="invalid agent name"):
        validate_name(name)


@pytest.mark.parametrize("name", ["a", "auth", "a-1", "9lives", "x" * 40])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


DOCUMENTED = [Path(__file__).resolve().parent.parent / "README.md",
              *sorted((Path(__file__).resolve().parent.parent / "docs").glob("*.md"))]


def toml_blocks(path: Path) -> list[str]:
    """Every fenced ```toml block of a Markdown file."""
    import re
    return re.findall(r"^```toml\n(.*?)^```", path.read_text(), re.S | re.M)


@pytest.mark.parametrize("page", DOCUMENTED, ids=lambda p: p.name)
def test_every_cockpit_toml_example_in_the_docs_loads(tmp_path: Path, page: Path) -> None:
    """Users copy these: each must load as a cockpit.toml."""
    for block in toml_blocks(page):
        load_config(write(tmp_path, block))


def test_the_readme_and_the_reference_show_a_working_agent(tmp_path: Path) -> None:
    """The first example of the README and of docs/configuration.md is a whole cockpit.toml."""
    readme = DOCUMENTED[0]
    for page in (readme, readme.parent / "docs" / "configuration.md"):
        block = toml_blocks(page)[0]
        assert block.startswith("[cockpit]"), page
        config = load_config(write(tmp_path, block))
        assert "auth" in config.agents and config.agents["auth"].pass_env == ("ANTHROPIC_API_KEY",)
