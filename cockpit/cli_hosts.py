"""The CLI of ``[[host]]``: ``cockpit hosts``, ``cockpit hosts install H``, and agent commands
forwarded to the host a remote agent runs on (cockpit/core/hosts.py does the work)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from cockpit import __version__
from cockpit.core.errors import CockpitError

VENV = ".cockpit/venv"
"""Where ``cockpit hosts install`` puts cockpit on a host whose ``cockpit`` is the default."""


def add_parsers(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = add("hosts", "list the configured [[host]]s and what each has (reachable, git, tmux, Python, cockpit, "
                     "repository); 'hosts install H' installs this cockpit there")
    p.add_argument("action", nargs="?", choices=("install",), help="install this cockpit on host H")
    p.add_argument("host", nargs="?", metavar="H")
    p.add_argument("--json", action="store_true", help="a JSON array, one object per host")


def run_hosts(fleet, args: argparse.Namespace) -> int:
    from cockpit.core import hosts
    if args.action == "install":
        if not args.host:
            raise CockpitError("hosts install: name the host (cockpit hosts install H)")
        return install(fleet, args.host)
    if args.host:
        raise CockpitError("hosts: a host name goes with 'install' only (cockpit hosts install H)")
    names = sorted(fleet.config.hosts)
    if not names:
        print(f"no hosts (add [[host]] tables to {fleet.layout.config.name}; see docs/hosts.md)")
        return 0
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        reports = list(pool.map(lambda n: hosts.probe(fleet, n), names))
    if args.json:
        print(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        rows = [("HOST", "SSH", "REACHABLE", "GIT", "TMUX", "PYTHON", "COCKPIT", "REPO", "BASE")]
        for r in reports:
            rows.append((r.name, r.ssh, "yes" if r.reachable else "no", _ver(r.git), _ver(r.tmux), r.python or "-",
                         r.cockpit or "-", r.repo or "-", r.base or "-"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    bad = [r for r in reports if r.problems]
    for r in bad:
        for problem in r.problems:
            print(f"cockpit: host {r.name}: {problem}", file=sys.stderr)
    return 1 if any(not r.reachable or r.cockpit != __version__ for r in reports) else 0


def _ver(text: str | None) -> str:
    return text.split()[-1] if text else "-"


# -- cockpit hosts install ------------------------------------------------------------------------
def _source_dir() -> Path:
    """The source tree this cockpit runs from (an editable or checkout install): the one thing
    a wheel of this very version can be built from."""
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "cockpit" / "__init__.py").is_file():
        return root
    raise CockpitError("this cockpit is not installed from a source tree: build its wheels with 'pip wheel "
                       "<source>' and install them on the host yourself (see docs/hosts.md)")


def _wheelhouse(target: Path) -> None:
    steps = [[sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", str(_source_dir()),
              "-w", str(target)],
             [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
              "--only-binary=:all:", "pip", "-d", str(target)]]
    for argv in steps:
        result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise CockpitError(f"building the wheels here failed: {tail}")


INSTALL = """set -e
dest="$1"; case "$dest" in "~/"*) dest="$HOME/${dest#"~/"}";; esac
wheels="$HOME/.cockpit-remote/wheels"
py=
for p in python3 python3.13 python3.12 python3.11; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
  then py=$(command -v "$p"); break; fi
done
[ -n "$py" ] || { echo "no Python >= 3.11 with venv on this host" >&2; exit 1; }
if [ -e "$dest" ] && [ ! -f "$dest/pyvenv.cfg" ]; then
  echo "$dest exists and is not a virtualenv: not replacing it" >&2; exit 1
fi
rm -rf "$dest"
"$py" -m venv --without-pip "$dest"
set -- "$wheels"/pip-*.whl; pipwheel="$1"
set -- "$wheels"/cockpit-*.whl; cockpitwheel="$1"
PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \\
  "$dest/bin/python" "$pipwheel/pip" install --quiet --no-index --find-links "$wheels" "$cockpitwheel"
rm -rf "$wheels"
"$dest/bin/cockpit" --version
"""
"""The host side of the install: a fixed script (run by ``sh -c SCRIPT sh DEST``); DEST is the
venv, from the host's validated ``cockpit`` path."""


def install(fleet, name: str) -> int:
    """Install this cockpit (its wheel and its dependencies', built here) in a virtualenv on host
    ``name``, offline there: the wheels travel over ssh as a tar stream."""
    import shlex

    from cockpit.core import hosts
    link = hosts.transport(fleet, name)
    spec = link.host
    if spec.cockpit == "cockpit":
        venv = f"~/{VENV}"
    elif spec.cockpit.endswith("/bin/cockpit"):
        venv = spec.cockpit.removesuffix("/bin/cockpit")
    else:
        raise CockpitError(f"host {name}: cockpit = {spec.cockpit!r} does not end in /bin/cockpit: cannot tell "
                           "which virtualenv to install into")
    if venv.rstrip("/") in ("", "~", "."):  # (an existing directory that is no venv: the host refuses it)
        raise CockpitError(f"host {name}: cockpit = {spec.cockpit!r} would make {venv!r} the virtualenv: give it "
                           "a directory of its own (e.g. ~/.cockpit/venv/bin/cockpit)")
    import tempfile
    with tempfile.TemporaryDirectory(prefix="cockpit-wheels-") as tmp:
        house = Path(tmp)
        print(f"building wheels of cockpit {__version__} and its dependencies here ...")
        _wheelhouse(house)
        with subprocess.Popen(["tar", "-C", str(house), "-cf", "-", "."], stdout=subprocess.PIPE) as tar:
            copied = link.run(['rm -rf ~/.cockpit-remote/wheels && mkdir -p ~/.cockpit-remote/wheels && '
                               'tar -C ~/.cockpit-remote/wheels -xf -'], stdin=tar.stdout, timeout=600)
        if tar.returncode != 0 or copied.returncode != 0:
            raise CockpitError(f"host {name}: copying the wheels failed: {copied.stderr.strip()}")
    print(f"installing into {venv} on {name} (no package index needed there) ...")
    # the venv path is a validated word (host_table.COCKPIT_COMMAND_RE); quoted all the same
    result = link.run(["sh", "-c", shlex.quote(INSTALL), "sh", shlex.quote(venv)], timeout=900)
    if result.returncode != 0:
        raise CockpitError(f"host {name}: install failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    print(f"host {name}: {result.stdout.strip()} in {venv}")
    if spec.cockpit == "cockpit":
        print(f"add cockpit = \"{venv}/bin/cockpit\" to host {name}'s [[host]] table (or put it on that host's PATH)")
    return 0


# -- forwarding agent commands ----------------------------------------------------------------------
def remote_argv(command: str, args: argparse.Namespace) -> list[str]:
    """The command line the host's cockpit runs for ``command``: rebuilt from what was parsed, so
    only known options travel (and as JSON, never through a shell)."""
    argv = [command, args.name]
    if command == "discard":
        argv.append("--yes")  # (asked here, where the terminal is)
    elif command == "restore" and args.archive:
        argv += ["--archive", args.archive]
    elif command == "respawn":
        argv += [flag for flag, on in (("--keep", args.keep), ("--fresh", args.fresh), ("--force", args.force),
                                       ("--setup", args.setup)) if on]
        for option, value in (("--task", args.task), ("--command", args.command)):
            argv += [option, value] if value is not None else []
    elif command == "logs":
        argv += ["-n", str(args.lines)] + (["-f"] if args.follow else [])
    elif command == "wait":
        argv += ["--for", args.target] + (["--timeout", repr(args.timeout)] if args.timeout is not None else [])
    elif command == "diff" and args.stat:
        argv.append("--stat")
    return argv


def forward(fleet, command: str, args: argparse.Namespace, host: str) -> int:
    """Run agent command ``command`` on ``host``: the host's output is ours, its exit status ours."""
    from cockpit.core import hosts
    if command == "discard" and not args.yes:
        if not sys.stdin.isatty():
            raise CockpitError("refusing to discard without confirmation: stdin is not a terminal (add --yes)")
        try:
            answer = input(f"Discard agent {args.name} on host {host}? Its work is archived there first. [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("not discarded")
            return 1
    sys.stdout.flush()
    result = hosts.forward(fleet, args.name, host, remote_argv(command, args))
    if result.stderr:
        sys.stderr.write(result.stderr)
    return result.returncode


def fleet_on_hosts(fleet, argv: list[str], header: bool = True) -> int:
    """Run a fleet command (``down``) on every host this repository has agents on; the worst
    exit status. An unreachable host is said, not fatal."""
    from cockpit.core import hosts
    from cockpit.core.transport import HostUnreachable
    status = 0
    try:
        spawned = hosts.remote_agents(fleet)
    except hosts.RegistryDamaged as exc:
        print(f"cockpit: {exc} (agents on hosts: not stopped)", file=sys.stderr)
        return 1
    for host in sorted(set(spawned.values())):
        if host not in fleet.config.hosts:
            continue
        if header:
            print(f"host {host}:")
        sys.stdout.flush()
        try:
            result = hosts.transport(fleet, host).request("run", {"argv": argv}, timeout=None, stdout=None)
        except HostUnreachable as exc:
            print(f"cockpit: {exc}", file=sys.stderr)
            status = 1
            continue
        if result.stderr:
            sys.stderr.write(result.stderr)
        status = max(status, result.returncode)
    return status



def up_on_hosts(fleet, names: list[str]) -> bool:
    """``cockpit up`` for the configured agents that run on a host: spawn there the ones the host
    does not have, restart killed ones in place (``respawn --keep`` there), leave the rest and say
    why. One line per agent; True when any failed."""
    from cockpit.core import hosts
    failed = False
    by_host: dict[str, list[str]] = {}
    for name in names:
        by_host.setdefault(fleet.config.agents[name].host, []).append(name)
    for host, wanted in sorted(by_host.items()):
        try:
            there = {a.name: a for a in hosts.host_agents(fleet, host)}
        except CockpitError as exc:
            print(f"cockpit: {exc}: not started there: {', '.join(wanted)}", file=sys.stderr)
            failed = True
            continue
        for name in wanted:
            agent = there.get(name)
            try:
                if agent is None:
                    spawned = hosts.spawn(fleet, fleet.config.agents[name], host)
                    print(f"{name}: spawned on host {host} (branch {spawned.branch})")
                elif agent.state == "killed":
                    result = hosts.forward(fleet, name, host, ["respawn", name, "--keep"], stream=False)
                    if result.returncode != 0:
                        raise CockpitError(result.stderr.strip().removeprefix("cockpit: ") or "respawn failed")
                    print(f"{name}: restarted on host {host} in its worktree")
                else:
                    print(f"{name}: left as it is on host {host} ({agent.state})")
            except CockpitError as exc:
                print(f"cockpit: {name}: {exc}", file=sys.stderr)
                failed = True
    return failed
