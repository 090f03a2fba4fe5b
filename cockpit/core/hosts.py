"""Agents on other machines: the local side of ``[[host]]`` (the host side is cockpit itself,
``cockpit _remote``: :mod:`cockpit.cli_remote`).

What this machine keeps about remote agents is small and lives in ``.cockpit/hosts.json``: which
host each remote agent was spawned on, and since when a host has been unreachable. Everything else
— the agent's events, worktree, tmux session, archives — stays on its host, kept by the same code
that keeps local agents, and is asked for over ssh (:mod:`cockpit.core.transport`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cockpit.core import watch, worktrees
from cockpit.core.agent import Agent, name_order
from cockpit.core.errors import CockpitError, ConfigError, NotFound
from cockpit.core.host_table import HostSpec
from cockpit.core.repository import Repository
from cockpit.core.spec import AgentSpec, validate_name
from cockpit.core.transport import HostUnreachable, RemoteMismatch, Transport, last_line

BASE_PREFIX = "cockpit-base/"
"""Where a host's repository gets this machine's base commits: ``refs/heads/cockpit-base/<base>``,
a branch namespace cockpit owns there (agents there are cut from it; nobody checks it out)."""
FETCH_PREFIX = "refs/cockpit/hosts/"
"""Where this machine keeps what it fetched of remote agents: ``refs/cockpit/hosts/<host>/<agent>``."""
LS_TIMEOUT_S = 30.0
RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0
MIN_TMUX = (3, 2)
MIN_PYTHON = (3, 11)
SAFE_WORD = re.compile(r"^[A-Za-z0-9_./=:-]+$")
"""A word cockpit on a host made (a tmux socket path, a session name) that may go on an ssh
command line: no shell syntax, not an option."""


# -- what this machine keeps ------------------------------------------------------------------------
def _registry_path(repo: Repository) -> Path:
    return repo.layout.home / "hosts.json"


class RegistryDamaged(CockpitError):
    """``.cockpit/hosts.json`` cannot be read. It is the one record here of which agents run on
    which host, so cockpit neither writes over it nor acts as if it were empty: what needs it
    refuses, ``ls`` says so and lists this machine's agents."""


def _read(repo: Repository) -> dict[str, Any]:
    """The registry; none yet is an empty one. Raises :class:`RegistryDamaged`."""
    path = _registry_path(repo)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"agents": {}, "unreachable": {}}
    except OSError as exc:
        problem = exc.strerror or str(exc)
    except ValueError as exc:  # (not JSON, or not UTF-8)
        problem = f"not JSON: {exc}"
    else:
        if isinstance(data, dict) and all(isinstance(data.get(k) or {}, dict) for k in ("agents", "unreachable")):
            return {"agents": dict(data.get("agents") or {}), "unreachable": dict(data.get("unreachable") or {})}
        problem = 'expected {"agents": {NAME: HOST}, "unreachable": {HOST: SINCE}}'
    raise RegistryDamaged(f"{path} is damaged ({problem}): it records which host each remote agent runs on. "
                          "Repair it, or move it away to forget those agents here (they keep running on their "
                          "hosts); cockpit left it as it is")


def _write(repo: Repository, data: dict[str, Any]) -> None:
    path = _registry_path(repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".hosts.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def remote_agents(repo: Repository) -> dict[str, str]:
    """Agent name -> host name of every agent spawned on a host from this repository. Raises
    :class:`RegistryDamaged`."""
    return {name: host for name, host in _read(repo)["agents"].items() if isinstance(host, str)}


def configured(repo: Repository) -> bool:
    """Whether cockpit.toml has ``[[host]]`` tables; True when it cannot be read: then
    :func:`host_of` answers from the agent's record first, and only for an agent not spawned yet
    does the file's error reach the user."""
    try:
        return bool(repo.config.hosts)
    except ConfigError:
        return True


def host_of(repo: Repository, name: str) -> str | None:
    """The host agent ``name`` runs on, or None for this machine: where it was spawned, else
    where cockpit.toml puts it (an agent not spawned yet)."""
    record = repo.history().records.get(name)
    if record is not None and not record.discarded:  # an agent here (spawned after a remote one was discarded)
        return None
    found = remote_agents(repo).get(name)
    if found is not None:
        return found
    spec = repo.config.agents.get(name)
    return spec.host if spec is not None else None


def mark_reachable(repo: Repository, host: str, reachable: bool) -> str | None:
    """Record that ``host`` answered (or not); the ISO time since when it has been unreachable
    (None, and nothing recorded, while the registry is damaged: whoever reads it says so)."""
    with repo.locked():
        try:
            data = _read(repo)
        except RegistryDamaged:
            return None
        since = data["unreachable"].get(host)
        if reachable and since is None:
            return None
        if reachable:
            data["unreachable"].pop(host, None)
        elif since is None:
            since = datetime.now(UTC).isoformat(timespec="seconds")
            data["unreachable"][host] = since
        else:
            return str(since)
        _write(repo, data)
        return since


def host_spec(repo: Repository, name: str) -> HostSpec:
    hosts = repo.config.hosts
    if name not in hosts:
        configured = ", ".join(sorted(hosts)) or "none"
        raise CockpitError(f"no host named {name!r} in {repo.layout.config.name} (configured: {configured})")
    return hosts[name]


def transport(repo: Repository, name: str) -> Transport:
    return Transport(host_spec(repo, name))


# -- cockpit hosts ---------------------------------------------------------------------------------
@dataclass
class HostReport:
    """What ``cockpit hosts`` shows of one host."""

    name: str
    ssh: str
    reachable: bool = False
    git: str | None = None
    tmux: str | None = None
    python: str | None = None
    cockpit: str | None = None
    repo: str | None = None      # the repository's absolute path there, when it exists
    base: str | None = None      # its current branch there
    problems: list[str] = field(default_factory=list)
    tool_problems: list[str] = field(default_factory=list)
    """The problems with git, tmux and Python there (also in :attr:`problems`)."""
    repo_usable: bool = False
    """Whether a spawn there can use the repository: it is one, or nothing is at its path yet
    (the first spawn creates it)."""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


PROBE = ("git --version 2>/dev/null; echo '#'; tmux -V 2>/dev/null; echo '#'; "
         "for p in python3 python3.13 python3.12 python3.11; do "
         "command -v \"$p\" >/dev/null 2>&1 && { \"$p\" -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])'; "
         "break; }; done")
"""A fixed script (no value of the user's in it) telling the tools a host has."""


def _version(text: str | None) -> tuple[int, ...]:
    match = re.search(r"(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else ()


def probe(repo: Repository, name: str) -> HostReport:
    """Reach host ``name`` and say what it has; a missing piece is a problem, never an exception
    (except an unknown host name)."""
    spec = host_spec(repo, name)
    report = HostReport(name=name, ssh=spec.ssh)
    link = Transport(spec)
    try:
        tools = link.run([PROBE], timeout=LS_TIMEOUT_S)
    except HostUnreachable as exc:
        report.problems.append(f"unreachable: {exc.detail}")
        mark_reachable(repo, name, False)
        return report
    mark_reachable(repo, name, True)
    report.reachable = True
    parts = [part.strip().splitlines() for part in (tools.stdout + "\n").split("#\n")[:3]]
    parts += [[]] * (3 - len(parts))
    report.git, report.tmux, report.python = (lines[0].strip() if lines else None for lines in parts)
    broken = report.tool_problems
    if not report.git:
        broken.append("git is not installed")
    if not report.tmux:
        broken.append("tmux is not installed")
    elif _version(report.tmux) < MIN_TMUX:
        broken.append(f"{report.tmux} is too old (cockpit needs tmux >= 3.2)")
    if not report.python:
        broken.append("no Python 3 found")
    elif _version(report.python) < MIN_PYTHON:
        broken.append(f"Python {report.python} is too old (cockpit needs >= 3.11)")
    report.problems += broken
    try:
        answer = link.request("probe", timeout=LS_TIMEOUT_S)
    except RemoteMismatch as exc:
        report.problems.append(str(exc).removeprefix(f"host {name}: "))
        return report
    except HostUnreachable as exc:
        report.problems.append(f"unreachable: {exc.detail}")
        return report
    if answer.returncode != 0:
        report.problems.append(f"cockpit there failed: {last_line(answer.stderr)}")
        return report
    found = json.loads(answer.stdout)
    report.cockpit = found.get("version")
    report.repo = found.get("repo") if found.get("is_repo") else None
    report.base = found.get("base")
    report.repo_usable = bool(found.get("is_repo")) or found.get("exists") is False
    if found.get("problem"):
        report.problems.append(found["problem"])
    return report


# -- spawn on a host -------------------------------------------------------------------------------
def spawn(repo: Repository, spec: AgentSpec, host: str, base: str | None = None) -> Agent:
    """Spawn ``spec`` on ``host``: this machine's base commit pushed to the host's repository
    (``git init`` there first if it has none), then the host's cockpit spawns it from there. The
    spec and the values of its ``pass_env`` go as JSON on stdin."""
    name = validate_name(spec.name)
    records = repo.history().records
    if name in records and not records[name].discarded:
        raise CockpitError(f"agent {name!r} already exists on this machine: 'cockpit discard {name}' first")
    elsewhere = remote_agents(repo).get(name)
    if elsewhere is not None and elsewhere != host:
        raise CockpitError(f"agent {name!r} exists on host {elsewhere}: 'cockpit discard {name}' there first")
    base_ref, base_sha = repo.resolve_base(base)
    link = transport(repo, host)
    push_base(repo, link, base_ref, base_sha)
    pass_values = {key: os.environ[key] for key in spec.pass_env if key in os.environ}
    answer = link.request("spawn", {"name": name, "spec": spec.to_toml(), "base": BASE_PREFIX + base_ref,
                                    "pass_values": pass_values}, timeout=120)
    if answer.returncode != 0:
        raise CockpitError(f"host {host}: {last_line(answer.stderr).removeprefix('cockpit: ') or 'spawn failed'}")
    with repo.locked():
        data = _read(repo)
        data["agents"][name] = host
        _write(repo, data)
        watch.ensure(repo)  # its conflict radar covers the hosts' agents too (cockpit.core.remote_radar)
    return from_json(json.loads(answer.stdout), host)


def prepare(link: Transport) -> dict[str, Any]:
    """The host's repository, created (``git init``) if missing, and a cockpit-made path to it
    relative to the host user's home for git URLs (so the user's path never reaches a shell)."""
    answer = link.request("prepare", timeout=LS_TIMEOUT_S)
    if answer.returncode != 0:
        raise CockpitError(f"host {link.host.name}: {last_line(answer.stderr).removeprefix('cockpit: ')}")
    return dict(json.loads(answer.stdout))


def git_env(link: Transport) -> dict[str, str]:
    return {**os.environ, "GIT_SSH_COMMAND": link.git_ssh_command(), "GIT_TERMINAL_PROMPT": "0"}


def push_base(repo: Repository, link: Transport, base_ref: str, base_sha: str) -> None:
    """Make ``base_sha`` the host's ``cockpit-base/<base_ref>`` branch (forced: it follows ours)."""
    where = prepare(link)
    result = subprocess.run(["git", "-C", str(repo.root), "push", "--quiet", "--force",
                             link.git_url(where["link"]), f"{base_sha}:refs/heads/{BASE_PREFIX}{base_ref}"],
                            env=git_env(link), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise CockpitError(f"host {link.host.name}: pushing base {base_ref} failed: {last_line(result.stderr)}")


def fetch_branch(repo: Repository, host: str, name: str, branch: str) -> str:
    """Fetch agent ``name``'s ``branch`` from ``host`` into ``refs/cockpit/hosts/<host>/<name>``
    here; its commit."""
    link = transport(repo, host)
    where = prepare(link)
    target = f"{FETCH_PREFIX}{host}/{name}"
    result = subprocess.run(["git", "-C", str(repo.root), "fetch", "--quiet", "--no-tags", link.git_url(where["link"]),
                             f"+refs/heads/{branch}:{target}"], env=git_env(link), capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise CockpitError(f"host {host}: fetching {branch} failed: {last_line(result.stderr)}")
    sha = worktrees.resolve(repo.root, target)
    if sha is None:
        raise CockpitError(f"host {host}: fetched {branch} but {target} is missing")
    return sha


# -- listing every host ------------------------------------------------------------------------------
def from_json(data: dict[str, Any], host: str | None) -> Agent:
    """An :class:`Agent` from ``ls --json`` of a host."""
    known = set(Agent.__dataclass_fields__)
    values = {key: value for key, value in data.items() if key in known}
    return Agent(**{**values, "host": host})


def unknown_agent(name: str, host: str, since: str) -> Agent:
    """What is shown of an agent on a host that does not answer: nothing but that."""
    when = datetime.fromisoformat(since).astimezone().strftime("%H:%M")
    return Agent(name=name, state="unknown", attempt=0, failures=0, max_failures=0, exit_code=None, branch=None,
                 worktree=None, log="", base="", base_sha="", task="", command="", scope=[], after=[],
                 tmux_socket="", tmux_session="", last_activity=None, state_since=since,
                 reason=f"host {host} unreachable since {when}", host=host)


def host_agents(repo: Repository, host: str) -> list[Agent]:
    """The agents host ``host`` lists; raises :class:`HostUnreachable`."""
    link = transport(repo, host)
    try:
        answer = link.request("run", {"argv": ["ls", "--json"]}, timeout=LS_TIMEOUT_S)
    except HostUnreachable:
        raise
    if answer.returncode != 0:
        raise CockpitError(f"host {host}: ls failed: {last_line(answer.stderr).removeprefix('cockpit: ')}")
    return [from_json(item, host) for item in json.loads(answer.stdout)]


def all_agents(repo: Repository, local: list[Agent]) -> tuple[list[Agent], list[str]]:
    """``local`` and the agents of every host this repository spawned on, asked in parallel.
    An unreachable host's agents are ``unknown`` (never ``killed``); a host that answers with an
    error is a warning. Returns the agents (by name) and the warnings."""
    try:
        spawned = remote_agents(repo)
    except RegistryDamaged as exc:
        return [replace(a, host=None) for a in local], [f"{exc} (agents on hosts are not listed)"]
    hosts = sorted({host for host in spawned.values() if host in repo.config.hosts})
    warnings: list[str] = [f"{name}: host {host} is no longer in {repo.layout.config.name}"
                           for name, host in sorted(spawned.items()) if host not in repo.config.hosts]
    found: list[Agent] = [replace(a, host=None) for a in local]
    if not hosts:
        return found, warnings

    def ask(host: str) -> tuple[str, list[Agent] | Exception]:
        try:
            return host, host_agents(repo, host)
        except CockpitError as exc:
            return host, exc

    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        answers = list(pool.map(ask, hosts))
    for host, answer in answers:
        if isinstance(answer, HostUnreachable):
            since = mark_reachable(repo, host, False) or datetime.now(UTC).isoformat(timespec="seconds")
            found += [unknown_agent(name, host, since) for name, h in spawned.items() if h == host]
            warnings.append(str(answer))
        elif isinstance(answer, Exception):
            warnings.append(str(answer))
        else:
            mark_reachable(repo, host, True)
            mine = {name for name, h in spawned.items() if h == host}
            waiting = {name for (h, name), e in repo.history().remote_queue.items()
                       if h == host and e.merge_state == "queued"}
            # The merge queue's word wins while it waits here, as for a local agent (only while it
            # waits: a respawn on the host is not seen here, so an outcome would outlive it).
            found += [replace(a, state="queued") if a.name in waiting else a for a in answer if a.name in mine]
    return sorted(found, key=lambda a: name_order(a.name)), warnings


def attach_argv(repo: Repository, name: str, host: str) -> list[str]:
    """``ssh -t HOST tmux -S SOCKET attach -t =NAME``: this terminal on the agent's session there.
    The socket and session are what cockpit on the host reports, checked to be plain words."""
    agents = {a.name: a for a in host_agents(repo, host)}
    if name not in agents:
        raise CockpitError(f"no agent named {name!r} on host {host}")
    agent = agents[name]
    if agent.state not in ("running", "paused", "exited", "failed"):
        raise CockpitError(f"agent {name!r} on host {host} has no session to attach to ({agent.state})")
    for word in (agent.tmux_socket, agent.tmux_session):
        if not SAFE_WORD.match(word or "") or word.startswith("-"):
            raise CockpitError(f"host {host} reported an unusual tmux address {word!r}: not attaching")
    return transport(repo, host).argv(["tmux", "-S", agent.tmux_socket, "attach-session", "-t",
                                       f"={agent.tmux_session}"], tty=True)


def forward(repo: Repository, name: str, host: str, argv: list[str], stream: bool = True,
            timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run the agent command ``argv`` (``["pause", NAME]``, ``["logs", NAME, "-f"]``, ...) with
    the host's cockpit in its repository, exactly as it runs here. ``stream``: the host's output
    reaches our stdout as it comes; else it is captured."""
    link = transport(repo, host)
    result = link.request("run", {"argv": argv}, timeout=timeout, stdout=None if stream else subprocess.PIPE)
    if argv[0] in ("respawn", "resume", "restore") and result.returncode == 0:
        with repo.locked():  # live there again: this machine's radar rounds cover it again
            watch.ensure(repo)
    return result



def run_checked(repo: Repository, host: str, argv: list[str]) -> str:
    """Run agent command ``argv`` on ``host`` with its cockpit; its output. Its failure is ours,
    in one line (the Fleet's commands on a remote agent: the TUI's keys)."""
    result = forward(repo, argv[1], host, argv, stream=False, timeout=300)
    if result.returncode != 0:
        raise CockpitError(f"host {host}: {last_line(result.stderr).removeprefix('cockpit: ') or 'failed'}")
    return result.stdout


def remote_agent(repo: Repository, host: str, name: str) -> Agent:
    for agent in host_agents(repo, host):
        if agent.name == name:
            return agent
    raise NotFound(f"no agent named {name!r} on host {host}")


def discard(repo: Repository, host: str, name: str) -> str | None:
    """Discard ``name`` on ``host`` (archived there first); the archive ref."""
    found = re.search(r"archived at (\S+)", run_checked(repo, host, ["discard", name, "--yes"]))
    return found.group(1) if found else None


def discard_preview(repo: Repository, host: str, name: str) -> dict[str, Any]:
    """What a discard of ``name`` would archive on ``host`` (a DiscardPreview's fields)."""
    answer = transport(repo, host).request("preview", {"name": name})
    if answer.returncode != 0:
        raise CockpitError(f"host {host}: {last_line(answer.stderr).removeprefix('cockpit: ')}")
    return dict(json.loads(answer.stdout))


def respawn(repo: Repository, host: str, name: str, keep: bool = False, task: str | None = None,
            force: bool = False, command: str | None = None, setup: bool = False, fresh: bool = False) -> Agent:
    """``respawn`` on ``host``; the agent as its host shows it then."""
    argv = ["respawn", name, *[flag for flag, on in (("--keep", keep), ("--force", force), ("--setup", setup),
                                                      ("--fresh", fresh)) if on]]
    for option, value in (("--task", task), ("--command", command)):
        argv += [option, value] if value is not None else []
    run_checked(repo, host, argv)
    return remote_agent(repo, host, name)
