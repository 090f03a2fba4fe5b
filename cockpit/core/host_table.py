"""``[[host]]`` tables of cockpit.toml: the machines agents can run on (cockpit.core.hosts)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cockpit.core.errors import CockpitError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
"""A host name follows the agent-name rule (and is not ``local``)."""
HOST_KEYS = {
    "name": str,        # ^[a-z0-9][a-z0-9-]{0,39}$, not "local"
    "ssh": str,         # an ssh destination: user@host, host, or a ~/.ssh/config alias
    "repo": str,        # the repository on that host; ``~`` expands there
    "cockpit": str,     # the cockpit command on that host (default: cockpit)
    "ssh_config": str,  # an ssh config file of this machine to use (ssh -F; default: ssh's own)
}
COCKPIT_COMMAND_RE = re.compile(r"^(~/)?[A-Za-z0-9_.+/-]+$")
"""A host's cockpit command: a path or a name, ``~/`` first at most. It is the one word of an ssh
command line that comes from the configuration, so it may hold nothing a shell reads as syntax."""
DESTINATION_RE = re.compile(r"^[A-Za-z0-9_.@:%\[\]-]+$")
"""An ssh destination (``user@host``, ``host``, ``ssh://user@host:port``, an alias): no spaces or
shell syntax, and never starting with '-' (ssh would read an option)."""


@dataclass(frozen=True)
class HostSpec:
    """A machine agents can run on, reached with ssh (``[[host]]``): cockpit itself runs there."""

    name: str
    ssh: str
    repo: str
    cockpit: str = "cockpit"
    ssh_config: str | None = None


def validate_host_name(name: object) -> str:
    """Return ``name`` if it can name a host (the agent-name rule, and not ``local``), else raise."""
    if not isinstance(name, str) or not NAME_RE.match(name) or name == "local":
        shown = repr(name) if isinstance(name, str) else type(name).__name__
        raise CockpitError(f"invalid host name {shown}: use 1-40 characters a-z, 0-9 and '-', starting with a "
                           "letter or digit, and not 'local'")
    return name


def parse_hosts(reader: Any, raw: Any, lines: list[int]) -> dict[str, HostSpec]:
    """Validate the ``[[host]]`` tables (``reader``: cockpit.core.spec's, which words the errors;
    ``lines``: where each table starts in the file)."""
    if not isinstance(raw, list):
        raise reader.fail("host", "use [[host]] tables (an array of tables)")
    hosts: dict[str, HostSpec] = {}
    for index, entry in enumerate(raw):
        start = lines[index] if index < len(lines) else 0
        label = f"host[{index}]"
        if not isinstance(entry, dict):
            raise reader.fail(label, "expected a table")
        if isinstance(entry.get("name"), str):
            label = f"host[{index}] ({entry['name']!r})"
        for key, value in entry.items():
            if key not in HOST_KEYS:
                raise reader.fail(f"{label}.{key}", "unknown key "
                                  f"(expected one of: {', '.join(sorted(HOST_KEYS))})", start)
            reader.typed(f"{label}.{key}", value, HOST_KEYS[key], start)
        for required in ("name", "ssh", "repo"):
            if required not in entry:
                raise reader.fail(label, f"missing required key '{required}'", start)
        try:
            validate_host_name(entry["name"])
        except CockpitError as exc:
            raise reader.fail(f"{label}.name", str(exc), start) from None
        if entry["name"] in hosts:
            raise reader.fail(f"{label}.name", f"duplicate host name {entry['name']!r}", start)
        if not DESTINATION_RE.match(entry["ssh"]) or entry["ssh"].startswith("-"):
            raise reader.fail(f"{label}.ssh", f"not an ssh destination: {entry['ssh']!r} (user@host, host or an "
                              "alias of your ssh config: no spaces, not starting with '-')", start)
        if not entry["repo"].strip() or "\0" in entry["repo"] or "\n" in entry["repo"]:
            raise reader.fail(f"{label}.repo", "expected a path on that host (no newline or NUL)", start)
        if "cockpit" in entry and (not COCKPIT_COMMAND_RE.match(entry["cockpit"]) or
                                   entry["cockpit"].startswith("-")):
            raise reader.fail(f"{label}.cockpit", f"{entry['cockpit']!r}: a command name or path (letters, digits, "
                              "'_.+-/', '~/' first at most): it is the one configured word on the ssh command line",
                              start)
        if "ssh_config" in entry and not entry["ssh_config"].strip():
            raise reader.fail(f"{label}.ssh_config", "must not be empty", start)
        hosts[entry["name"]] = HostSpec(name=entry["name"], ssh=entry["ssh"], repo=entry["repo"],
                                        cockpit=entry.get("cockpit", "cockpit"), ssh_config=entry.get("ssh_config"))
    return hosts
