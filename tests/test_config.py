"""cockpit.toml validation: every mistake is a one-line error naming file, line and key."""

from pathlib import Path

import pytest

from cockpit.core.errors import CockpitError, ConfigError
from cockpit.core.spec import load_config, order_agents, validate_name
from cockpit.core.starter import STARTER

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
        ('[worktree]\nsetpu = ["x"]\n', ":2: worktree.setpu: unknown key"),
        ('[worktree]\nsetup = "uv sync"\n', ":2: worktree.setup: expected list"),
        ('[worktree]\nsetup = ["uv sync", ""]\n', "worktree.setup: expected a list of non-empty strings"),
        ('[worktree]\nsetup_timeout = 0\n', "worktree.setup_timeout: must be more than 0 seconds"),
        ('[worktree]\nteardown_timeout = -1\n', "worktree.teardown_timeout: must be more than 0 seconds"),
        ('[worktree]\nports = 100000\n', ":2: worktree.ports: must be 0 to 100"),
        ('[worktree]\nports = -1\n', "worktree.ports: must be 0 to 100"),
        ('[worktree]\nports = 2.5\n', "worktree.ports: expected int"),
        ('[[agent]]\nname = "a"\ncommand = "x"\n\n[agent.worktree]\nport = 2\n',
         ":6: agent[0] ('a').worktree.port: unknown key"),
        ('[[agent]]\nname = "a"\ncommand = "x"\nworktree = "uv sync"\n', "agent[0] ('a').worktree: expected dict"),
        ('[[agent]]\nname = "a"\ncommand = "x"\n[[agent]]\nname = "b"\ncommand = "x"\n[agent.worktree]\n'
         'stop = [1]\n', ":8: agent[1] ('b').worktree.stop: expected a list of non-empty strings"),
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


WORKTREE = """\
[worktree]
setup = ["uv sync", "cp config/dev.example.toml config/dev.toml"]
setup_timeout = 600
teardown = ["docker compose down -v"]
stop = ["docker compose stop"]
ports = 3

[[agent]]
name = "web"
command = "claude"

[agent.worktree]
setup = []
ports = 1

[[agent]]
name = "api"
command = "claude"
"""


def test_worktree_table_and_an_agent_s_own_values(tmp_path: Path) -> None:
    """[worktree] is the fleet's; a key of [agent.worktree] (TOML's sub-table of the [[agent]]
    above it) replaces the fleet's value for that agent only, an empty list included."""
    config = load_config(write(tmp_path, WORKTREE))
    fleet = config.worktree
    assert fleet.setup == ("uv sync", "cp config/dev.example.toml config/dev.toml") and fleet.ports == 3
    assert fleet.teardown == ("docker compose down -v",) and fleet.stop == ("docker compose stop",)
    assert (fleet.setup_timeout, fleet.teardown_timeout, fleet.stop_timeout) == (600, 120, 60)
    web = config.worktree_for(config.agents["web"])
    assert web.setup == () and web.ports == 1 and web.teardown == fleet.teardown  # not set: the fleet's
    assert config.worktree_for(config.agents["api"]) == fleet
    # The spec carries its overrides through the event log (a respawn from the record).
    from cockpit.core.spec import AgentSpec
    again = AgentSpec.from_toml(config.agents["web"].to_toml())
    assert config.worktree_for(again) == web


def test_no_worktree_table_means_nothing_is_set_up(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[[agent]]\nname = "a"\ncommand = "x"\n'))
    settings = config.worktree_for(config.agents["a"])
    assert settings.setup == () and settings.teardown == () and settings.stop == () and settings.ports == 0
