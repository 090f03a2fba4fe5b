"""Agent and fleet specifications, read from ``cockpit.toml`` with :mod:`tomllib`.

Validation is strict: an unknown key, a wrong type, a duplicate or invalid name is an error that
names the file, the line (tomllib's for syntax errors; the key's own line otherwise, when it can
be found) and the key. cockpit never rewrites the file.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cockpit.core.errors import CockpitError, ConfigError
from cockpit.core.host_table import HostSpec, parse_hosts
from cockpit.core.presets import PRESETS

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")

FLEET_KEYS = {
    "base": str,
    "max_failures": int,
    "theme": str,
    "gates": list,         # merge queue: shell commands run in each candidate
    "gate_timeout": int,   # seconds per gate
    "merge": str,          # rebase | merge | squash
    "sandbox": str,
    "idle_after": float,       # activity: seconds of silence before an agent is idle
    "stall_after": float,      # ... and before it is stalled
    "notify_command": str,     # run once per notification, the event as JSON on stdin
    "notify_interval": float,  # at most one notification per agent per this many seconds
    "tmux_nice": int,          # the agents' tmux server's scheduling priority (0-19)
    "radar_interval": float,   # seconds between conflict-radar rounds (0: no prediction)
    "max_tokens": int,         # the fleet's token budget: all agents together (cockpit.core.usage)
}
MERGE_MODES = ("rebase", "merge", "squash")
AGENT_KEYS = {
    "name": str,
    "command": str,
    "task": str,
    "scope": list,
    "after": list,
    "env": dict,
    "pass_env": list,
    "sandbox": str,
    "preset": str,  # a known agent program (cockpit.core.presets): how its prompts look
    "worktree": dict,  # [agent.worktree]: this agent's own values of [worktree] keys
    "max_tokens": int,  # this agent's token budget (cockpit.core.usage)
    "host": str,  # the [[host]] it runs on (default: this machine)
}

WORKTREE_KEYS = {
    "setup": list,              # shell commands run in a new worktree before the agent, in order
    "setup_timeout": float,     # seconds for all setup commands together
    "teardown": list,           # shell commands run before the worktree is removed (after the archive)
    "teardown_timeout": float,  # seconds for all teardown commands together
    "stop": list,               # shell commands run when the agent is killed or the fleet goes down
    "stop_timeout": float,      # seconds for all stop commands together
    "ports": int,               # a block of this many free TCP ports per agent
}
MAX_PORTS = 100
"""The most ports one agent may ask for: a block, not a range of the machine."""
TOP_KEYS = {"cockpit", "agent", "keys", "worktree", "host"}
SANDBOXES = ("bwrap", "none")  # "none": opt out of a fleet-wide [cockpit] sandbox


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid agent name, else raise a one-line :class:`CockpitError`.

    Names become branch names, directory names and tmux session names, so they are restricted to
    ``^[a-z0-9][a-z0-9-]{0,39}$``: nothing a shell, git or tmux could read as syntax.
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        shown = repr(name) if isinstance(name, str) else type(name).__name__
        raise CockpitError(
            f"invalid agent name {shown}: use 1-40 characters a-z, 0-9 and '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class WorktreeSettings:
    """What makes a new worktree a working environment (``[worktree]``, overridable per agent by
    ``[agent.worktree]``): setup, teardown and stop commands and a block of ports."""

    setup: tuple[str, ...] = ()
    setup_timeout: float = 600.0
    teardown: tuple[str, ...] = ()
    teardown_timeout: float = 120.0
    stop: tuple[str, ...] = ()
    stop_timeout: float = 60.0
    ports: int = 0

    def merged(self, overrides: Mapping[str, Any]) -> WorktreeSettings:
        """These settings with an agent's own values (``[agent.worktree]``) in place: a key it
        sets replaces the fleet's value, a list included (``setup = []`` runs no setup)."""
        known: dict[str, Any] = {}
        for key, value in overrides.items():
            if WORKTREE_KEYS.get(key) is list:
                known[key] = tuple(value)
            elif WORKTREE_KEYS.get(key) is float:
                known[key] = float(value)
            elif key in WORKTREE_KEYS:
                known[key] = value
        return replace(self, **known)


@dataclass(frozen=True)
class AgentSpec:
    """What to run for one agent. ``command`` is run by ``/bin/sh -c`` in the agent's worktree."""

    name: str
    command: str
    task: str = ""
    scope: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = ()  # names passed through from cockpit's own environment
    sandbox: str | None = None  # "bwrap": run under the write sandbox (cockpit.core.sandbox)
    preset: str = ""                 # a known agent program (cockpit.core.presets); "claude-code" also
                                     # gets permission settings and guard hooks (cockpit.core.permissions)
    worktree: dict[str, Any] = field(default_factory=dict)  # [agent.worktree]: overrides of [worktree]
    max_tokens: int | None = None    # pause it past this many tokens (cockpit.core.usage)
    host: str | None = None          # the [[host]] it runs on; None: this machine

    def to_toml(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "command": self.command,
            "task": self.task,
            "scope": list(self.scope),
            "after": list(self.after),
            "env": dict(self.env),
            "pass_env": list(self.pass_env),
        }
        if self.preset:
            data["preset"] = self.preset
        if self.sandbox is not None:
            data["sandbox"] = self.sandbox
        if self.worktree:
            data["worktree"] = {key: list(value) if isinstance(value, tuple) else value
                                for key, value in self.worktree.items()}
        if self.max_tokens is not None:
            data["max_tokens"] = self.max_tokens
        if self.host is not None:
            data["host"] = self.host
        return data

    @classmethod
    def from_toml(cls, data: dict[str, Any]) -> AgentSpec:
        return cls(
            name=data["name"],
            command=data["command"],
            task=data.get("task", ""),
            scope=tuple(data.get("scope", ())),
            after=tuple(data.get("after", ())),
            env=dict(data.get("env", {})),
            pass_env=tuple(data.get("pass_env", ())),
            sandbox=data.get("sandbox"),
            preset=data.get("preset", ""),
            worktree=dict(data.get("worktree") or {}),
            max_tokens=data.get("max_tokens"),
            host=data.get("host"),
        )


@dataclass(frozen=True)
class FleetConfig:
    """The whole of ``cockpit.toml``. A missing file is an empty fleet with defaults."""

    path: Path | None = None
    base: str | None = None
    max_failures: int = 2
    theme: str | None = None
    gates: tuple[str, ...] = ()
    gate_timeout: int = 600
    merge: str = "rebase"
    sandbox: str | None = None
    idle_after: float = 30.0
    stall_after: float = 900.0
    notify_command: str | None = None
    notify_interval: float = 10.0
    tmux_nice: int = 5
    radar_interval: float = 3.0
    max_tokens: int | None = None
    agents: dict[str, AgentSpec] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    worktree: WorktreeSettings = field(default_factory=WorktreeSettings)
    hosts: dict[str, HostSpec] = field(default_factory=dict)

    def worktree_for(self, spec: AgentSpec) -> WorktreeSettings:
        """The worktree settings of ``spec``: the fleet's ``[worktree]`` with its own
        ``[agent.worktree]`` values in place."""
        return self.worktree.merged(spec.worktree)


def _line_of(text: str, key: str, after_line: int = 0) -> int | None:
    pattern = re.compile(rf"^\s*(\"?){re.escape(key)}\1\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        if number > after_line and pattern.match(line):
            return number
    return None


def _table_lines(text: str, header: str) -> list[int]:
    pattern = re.compile(rf"^\s*{re.escape(header)}\s*(#.*)?$")
    return [n for n, line in enumerate(text.splitlines(), start=1) if pattern.match(line)]


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    def fail(self, key: str, message: str, after_line: int = 0) -> ConfigError:
        line = _line_of(self.text, key.rsplit(".", 1)[-1].split("]")[-1], after_line)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{where}: {key}: {message}")

    def typed(self, key: str, value: Any, kind: type, after_line: int) -> Any:
        ok = (isinstance(value, kind) or (kind is float and isinstance(value, int))) and not isinstance(value, bool)
        if not ok:
            raise self.fail(key, f"expected {kind.__name__}, got {type(value).__name__}", after_line)
        return value


def load_config(path: Path) -> FleetConfig:
    """Read and validate ``path``. A missing file gives an empty :class:`FleetConfig`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return FleetConfig(path=None)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"at line (\d+)", message)
        line = f":{match.group(1)}" if match else ""
        raise ConfigError(f"{path}{line}: invalid TOML: {message}") from None
    return parse_config(data, path, text)


def parse_config(data: dict[str, Any], path: Path, text: str = "") -> FleetConfig:
    """Validate already-parsed TOML ``data`` (``text`` is only used to find line numbers)."""
    reader = _Reader(path, text)
    for key in data:
        if key not in TOP_KEYS:
            raise reader.fail(key, f"unknown key (expected one of: {', '.join(sorted(TOP_KEYS))})")

    fleet = data.get("cockpit", {})
    reader.typed("cockpit", fleet, dict, 0)
    fleet_line = (_table_lines(text, "[cockpit]") or [0])[0]
    for key, value in fleet.items():
        if key not in FLEET_KEYS:
            raise reader.fail(f"cockpit.{key}", "unknown key "
                              f"(expected one of: {', '.join(sorted(FLEET_KEYS))})", fleet_line)
        reader.typed(f"cockpit.{key}", value, FLEET_KEYS[key], fleet_line)
    max_failures = fleet.get("max_failures", 2)
    if max_failures < 1:
        raise reader.fail("cockpit.max_failures", "must be 1 or more", fleet_line)
    if fleet.get("sandbox", "bwrap") not in SANDBOXES:
        raise reader.fail("cockpit.sandbox", f"unknown sandbox {fleet['sandbox']!r} (expected one of: "
                          f"{', '.join(repr(s) for s in SANDBOXES)})", fleet_line)

    for gate in fleet.get("gates", []):
        if not isinstance(gate, str) or not gate.strip():
            raise reader.fail("cockpit.gates", "expected a list of non-empty strings (shell commands)", fleet_line)
    if fleet.get("gate_timeout", 600) < 1:
        raise reader.fail("cockpit.gate_timeout", "must be 1 or more (seconds)", fleet_line)
    if fleet.get("merge", "rebase") not in MERGE_MODES:
        raise reader.fail("cockpit.merge", f"expected one of: {', '.join(MERGE_MODES)}", fleet_line)
    for key in ("idle_after", "stall_after", "notify_interval"):
        if key in fleet and fleet[key] <= 0:
            raise reader.fail(f"cockpit.{key}", "must be more than 0 seconds", fleet_line)
    if not 0 <= fleet.get("radar_interval", 3.0) < math.inf:
        raise reader.fail("cockpit.radar_interval", "must be 0 (no conflict prediction) or more seconds", fleet_line)
    if fleet.get("max_tokens", 1) < 1:
        raise reader.fail("cockpit.max_tokens", "must be 1 or more (tokens)", fleet_line)
    if not 0 <= fleet.get("tmux_nice", 5) <= 19:
        raise reader.fail("cockpit.tmux_nice", "must be 0 to 19 (0: the same priority as cockpit)", fleet_line)
    idle_after = float(fleet.get("idle_after", 30.0))
    stall_after = float(fleet.get("stall_after", 900.0))
    if stall_after < idle_after:
        raise reader.fail("cockpit.stall_after", f"must not be less than idle_after ({idle_after:g})", fleet_line)

    worktree_table = data.get("worktree", {})
    reader.typed("worktree", worktree_table, dict, 0)
    worktree = _worktree_settings(reader, "worktree", worktree_table, (_table_lines(text, "[worktree]") or [0])[0])

    keys = data.get("keys", {})
    reader.typed("keys", keys, dict, 0)
    for key, value in keys.items():
        reader.typed(f"keys.{key}", value, str, 0)

    hosts = parse_hosts(reader, data.get("host", []), _table_lines(text, "[[host]]"))

    agents_raw = data.get("agent", [])
    if not isinstance(agents_raw, list):
        raise reader.fail("agent", "use [[agent]] tables (an array of tables)")
    agent_lines = _table_lines(text, "[[agent]]")
    agents: dict[str, AgentSpec] = {}
    for index, entry in enumerate(agents_raw):
        start = agent_lines[index] if index < len(agent_lines) else 0
        label = f"agent[{index}]"
        if not isinstance(entry, dict):
            raise reader.fail(label, "expected a table")
        if isinstance(entry.get("name"), str):
            label = f"agent[{index}] ({entry['name']!r})"
        for key, value in entry.items():
            if key not in AGENT_KEYS:
                raise reader.fail(f"{label}.{key}", "unknown key "
                                  f"(expected one of: {', '.join(sorted(AGENT_KEYS))})", start)
            reader.typed(f"{label}.{key}", value, AGENT_KEYS[key], start)
        for required in ("name",) if entry.get("preset") == "claude-code" else ("name", "command"):
            if required not in entry:
                raise reader.fail(label, f"missing required key '{required}'", start)
        if "preset" in entry and entry["preset"] not in PRESETS:
            raise reader.fail(f"{label}.preset", f"unknown preset {entry['preset']!r} "
                              f"(known: {', '.join(sorted(PRESETS))})", start)
        if entry.get("preset") == "claude-code" and "command" not in entry:
            entry = {**entry, "command": "claude \"$COCKPIT_TASK\""}
        name = entry["name"]
        try:
            validate_name(name)
        except CockpitError as exc:
            raise reader.fail(f"{label}.name", str(exc), start) from None
        if name in agents:
            raise reader.fail(f"{label}.name", f"duplicate agent name {name!r}", start)
        for key in ("scope", "after", "pass_env"):
            for item in entry.get(key, []):
                if not isinstance(item, str):
                    raise reader.fail(f"{label}.{key}", "expected a list of strings", start)
        for env_key in entry.get("pass_env", []):
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(env_key)):
                raise reader.fail(f"{label}.pass_env", f"invalid variable name {env_key!r}", start)
        for env_key, env_value in entry.get("env", {}).items():
            if not isinstance(env_value, str):
                raise reader.fail(f"{label}.env.{env_key}", "environment values must be strings", start)
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", env_key):
                raise reader.fail(f"{label}.env", f"invalid variable name {env_key!r}", start)
        if entry.get("sandbox", "bwrap") not in SANDBOXES:
            raise reader.fail(f"{label}.sandbox", f"unknown sandbox {entry['sandbox']!r} (expected one of: "
                              f"{', '.join(repr(s) for s in SANDBOXES)})", start)
        if entry.get("max_tokens", 1) < 1:
            raise reader.fail(f"{label}.max_tokens", "must be 1 or more (tokens)", start)
        if not entry["command"].strip():
            raise reader.fail(f"{label}.command", "must not be empty", start)
        if "worktree" in entry:
            sub = [n for n in _table_lines(text, "[agent.worktree]") if n > start]
            _worktree_settings(reader, f"{label}.worktree", entry["worktree"], sub[0] if sub else start)
        if "host" in entry and entry["host"] not in hosts:
            raise reader.fail(f"{label}.host", f"unknown host {entry['host']!r} "
                              f"(configured: {', '.join(sorted(hosts)) or 'none; add a [[host]] table'})", start)
        agents[name] = AgentSpec.from_toml(entry)

    for spec in agents.values():
        for dep in spec.after:
            if dep not in agents:
                raise reader.fail(f"agent ({spec.name!r}).after", f"unknown agent {dep!r}")
            if dep == spec.name:
                raise reader.fail(f"agent ({spec.name!r}).after", "an agent cannot depend on itself")
            if agents[dep].host != spec.host:
                raise reader.fail(f"agent ({spec.name!r}).after", f"{dep!r} runs on "
                                  f"{agents[dep].host or 'this machine'}, {spec.name!r} on "
                                  f"{spec.host or 'this machine'}: 'after' targets must be on the same host "
                                  "(a host's watcher cannot see another host's agents)")
    try:
        order_agents(agents)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return FleetConfig(
        path=path,
        base=fleet.get("base"),
        max_failures=max_failures,
        theme=fleet.get("theme"),
        gates=tuple(fleet.get("gates", ())),
        gate_timeout=fleet.get("gate_timeout", 600),
        merge=fleet.get("merge", "rebase"),
        sandbox=fleet.get("sandbox"),
        idle_after=idle_after,
        stall_after=stall_after,
        notify_command=fleet.get("notify_command"),
        notify_interval=float(fleet.get("notify_interval", 10.0)),
        tmux_nice=fleet.get("tmux_nice", 5),
        radar_interval=float(fleet.get("radar_interval", 3.0)),
        max_tokens=fleet.get("max_tokens"),
        agents=agents,
        keys=dict(keys),
        worktree=worktree,
        hosts=hosts,
    )


def _worktree_settings(reader: _Reader, label: str, table: dict[str, Any], line: int) -> WorktreeSettings:
    """Validate a ``[worktree]`` (or ``[agent.worktree]``) table; the settings it gives on top of
    the defaults."""
    for key, value in table.items():
        if key not in WORKTREE_KEYS:
            raise reader.fail(f"{label}.{key}", "unknown key "
                              f"(expected one of: {', '.join(sorted(WORKTREE_KEYS))})", line)
        reader.typed(f"{label}.{key}", value, WORKTREE_KEYS[key], line)
        if WORKTREE_KEYS[key] is list and not all(isinstance(c, str) and c.strip() for c in value):
            raise reader.fail(f"{label}.{key}", "expected a list of non-empty strings (shell commands)", line)
        if key.endswith("_timeout") and value <= 0:
            raise reader.fail(f"{label}.{key}", "must be more than 0 seconds", line)
    if not 0 <= table.get("ports", 0) <= MAX_PORTS:
        raise reader.fail(f"{label}.ports", f"must be 0 to {MAX_PORTS} (the size of the block of free TCP ports "
                          "each agent gets)", line)
    return WorktreeSettings().merged(table)


def order_agents(agents: dict[str, AgentSpec], names: list[str] | None = None) -> list[str]:
    """Names in dependency order (``after`` first), stable otherwise. Raises on a cycle."""
    wanted = list(agents) if names is None else names
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise ConfigError(f"dependency cycle in 'after': {' -> '.join(chain + (name,))}")
        visiting.add(name)
        for dep in agents[name].after if name in agents else ():
            visit(dep, chain + (name,))
        visiting.discard(name)
        ordered.append(name)

    for name in wanted:
        visit(name, ())
    return ordered

