"""``cockpit _remote``: the host side of ``[[host]]`` (the local side: cockpit/core/hosts.py).

Another machine's cockpit runs ``ssh HOST COCKPIT _remote`` and writes one JSON object on stdin:
``{"protocol", "version", "op", "repo", ...}``. Nothing of it was on the command line, so no shell
here read any of it. ``repo`` is the path of the repository on this host (``~`` expands here).
Ops:

* ``probe``: ``{"version", "repo", "is_repo", "exists", "base", "problem"}`` on stdout;
* ``prepare``: the repository, ``git init`` if missing, and a link to it for git URLs;
* ``spawn``: ``{"name", "spec", "base", "pass_values"}``: spawn that spec here, ``ls --json``'s
  object of the agent on stdout (``pass_values`` become this process's environment only);
* ``run``: ``{"argv": [...]}``: one of the agent and fleet commands, run here exactly as typed
  here (output and exit status are the command's own);
* ``follow``: ``{"offsets", "first", "events_offset"}``: every agent's session.log and the event
  log, streamed as they grow (cockpit/core/remote_logs.py reads it);
* ``status``, ``preview``: an agent's uncommitted paths; what a discard of it would archive;
* ``snapshot``: every agent's current work as a snapshot commit another cockpit may fetch, and the
  link for git URLs (cockpit/core/remote_radar.py: the conflict radar across hosts);
* ``capture``: ``{"names": [...]}``: each named agent's tmux screen here, escapes included
  (``capture-pane -p -e``, what the local screen view shows), as ``{"screens": {name: [line,
  ...]}, "errors": {name: why}}`` (cockpit/core/remote_screens.py: a remote tile's screen view).

A request from another cockpit version is refused with exit status 3 (cockpit.core.transport).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from cockpit import __version__
from cockpit.core.errors import CockpitError
from cockpit.core.transport import MISMATCH_EXIT, PROTOCOL

if TYPE_CHECKING:
    import threading

    from cockpit.core.log_watch import LogWatcher

RUNNABLE = {"ls", "pause", "resume", "kill", "fail", "discard", "restore", "respawn", "logs", "diff", "wait",
            "check", "down", "archives", "up", "merge", "queue"}
"""The commands another cockpit may run here: the agent and fleet commands, nothing else."""
LINKS = ".cockpit-remote/repos"
"""Under the host user's home: ``<digest of the repository path>`` -> the repository, so a git
URL names a cockpit-made path, never the user's (which may hold anything)."""


def _repo_path(request: dict[str, Any]) -> Path:
    raw = request.get("repo")
    if not isinstance(raw, str) or not raw.strip() or "\0" in raw:
        raise CockpitError("the request names no repository")
    path = Path(os.path.expanduser(raw))
    if not path.is_absolute():
        path = Path.home() / path
    return path


def _git(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)


def _is_repo(path: Path) -> bool:
    if not path.is_dir():
        return False
    top = _git(path, "rev-parse", "--show-toplevel")
    return top.returncode == 0 and Path(top.stdout.strip()).resolve() == path.resolve()


_repos: set[Path] = set()


def _served_repo(path: Path) -> bool:
    """:func:`_is_repo`, remembered once true for this process: a kept session asks before every
    command, and a git process per key was ~2 ms of it (a repository removed meanwhile still
    fails the command, with its own error)."""
    if path not in _repos and _is_repo(path):
        _repos.add(path)
    return path in _repos


def _probe(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = {"version": __version__, "repo": str(path), "is_repo": False, "base": None,
                             "problem": None, "exists": path.exists()}
    if not path.exists():
        found["problem"] = f"no repository at {path} yet (the first spawn there creates it)"
    elif not _is_repo(path):
        found["problem"] = f"{path} is not the top of a git repository"
    else:
        found["is_repo"] = True
        head = _git(path, "symbolic-ref", "--quiet", "--short", "HEAD")
        found["base"] = head.stdout.strip() or None
    return found


def _prepare(path: Path) -> dict[str, Any]:
    if path.exists() and not _is_repo(path):
        raise CockpitError(f"{path} exists and is not the top of a git repository: not using it")
    if not path.exists():
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise CockpitError(f"cannot create the repository {path}: {exc.strerror}") from None
        init = _git(path, "init", "--quiet")
        if init.returncode != 0:
            raise CockpitError(f"git init {path} failed: {init.stderr.strip()}")
    links = Path.home() / LINKS
    links.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:20]
    link = links / digest
    if not (link.is_symlink() and Path(os.readlink(link)) == path.resolve()):
        tmp = links / f".{digest}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(path.resolve())
        os.replace(tmp, link)
    return {"repo": str(path.resolve()), "link": f"{LINKS}/{digest}"}


def _spawn(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    from cockpit.core.fleet import Fleet
    from cockpit.core.spec import AgentSpec
    values = request.get("pass_values") or {}
    if not isinstance(values, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
        raise CockpitError("pass_values must map names to strings")
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)  # this process only: the spawn reads pass_env from its environment
    try:
        spec = AgentSpec.from_toml(dict(request["spec"]))
        fleet = Fleet.discover(path)
        agent = fleet.spawn(str(request["name"]), spec=spec, base=str(request["base"]))
        return agent.to_json()
    finally:  # the values are for this spawn only (a kept session serves more requests)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(stdin: str, cli_main: Callable[[list[str]], int]) -> int:
    """Serve one request; the exit status is the request's. ``cli_main`` runs a command line
    (:func:`cockpit.cli.main`, passed in: this module sits below the CLI)."""
    try:
        return _serve(stdin, cli_main)
    except OSError as exc:  # a path this user may not read or create: one line, as for any refusal
        raise CockpitError(f"{exc.filename or 'the repository'}: {exc.strerror}") from None


def _serve(stdin: str, cli_main: Callable[[list[str]], int]) -> int:
    try:
        request = json.loads(stdin)
    except ValueError:
        print("cockpit: _remote: stdin is not JSON", file=sys.stderr)
        return 2
    if not isinstance(request, dict):
        print("cockpit: _remote: stdin is not a JSON object", file=sys.stderr)
        return 2
    if request.get("version") != __version__ or request.get("protocol") != PROTOCOL:
        print(f"cockpit: cockpit version {__version__} on this host, {request.get('version')} on yours",
              file=sys.stderr)
        return MISMATCH_EXIT
    op = request.get("op")
    path = _repo_path(request)
    if op == "serve":
        return _serve_session(cli_main)
    if op == "probe":
        print(json.dumps(_probe(path)))
        return 0
    if op == "prepare":
        print(json.dumps(_prepare(path)))
        return 0
    if not _served_repo(path):
        if op == "run" and request.get("argv") == ["ls", "--json"]:
            print("[]")  # no repository yet: no agents either (the first spawn creates it)
            return 0
        raise CockpitError(f"no repository at {path} on this host")
    if op == "spawn":
        print(json.dumps(_spawn(path, request)))
        return 0
    if op == "follow":
        return _follow(path, request)
    if op == "preview":
        return _preview(path, str(request.get("name")))
    if op == "status":
        return _status(path, str(request.get("name")))
    if op == "snapshot":
        from cockpit.core.remote_radar import export
        from cockpit.core.repository import Repository
        print(json.dumps({**export(Repository(path)), "link": _prepare(path)["link"]}))
        return 0
    if op == "capture":
        return _capture(path, request)
    if op == "run":
        argv = request.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise CockpitError("run: argv must be a non-empty list of strings")
        if argv[0] not in RUNNABLE:
            raise CockpitError(f"run: {argv[0]!r} is not a command another cockpit may run here")
        sys.stdout.flush()
        return cli_main(["-C", str(path), *argv])
    raise CockpitError(f"unknown request {op!r}")


def _serve_session(cli_main: Callable[[list[str]], int]) -> int:
    """Answer requests, one JSON line each, until the other side closes our input: each is served
    as a one-shot ``_remote`` would serve it (same ops, same checks), its output and exit status
    sent back as one line ``{"status", "stdout", "stderr"}`` (cockpit/core/transport.py's
    :class:`~cockpit.core.transport.Session`). A kept session saves a key on a remote agent the
    new ssh session, Python start-up and imports of a one-shot request.

    The channel is kept apart from what a request runs: requests are read from, and answers
    written to, private copies of stdin and stdout; while a request runs, file descriptors 1 and
    2 are files (so a git or tmux it starts writes there, never into the channel) and 0 is
    ``/dev/null`` (nothing it starts can read the next request)."""
    import tempfile
    requests = os.fdopen(os.dup(0), "rb")  # os.dup: not inherited by what a request starts
    answers = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    answers.write(json.dumps({"ready": True, "version": __version__}).encode() + b"\n")
    answers.flush()
    # one pair of files for every request's output, emptied before each (two new files a request
    # were ~0.15 ms of a key's ~5)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        for line in requests:
            for file in (out, err):
                file.seek(0)
                file.truncate()
            sys.stdout.flush()
            sys.stderr.flush()
            saved_err = os.dup(2)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            try:
                status = _one_request(line.decode(errors="replace"), cli_main)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(null, 1)
                os.dup2(saved_err, 2)
                os.close(saved_err)
            out.seek(0)
            err.seek(0)
            answer = {"status": status, "stdout": out.read().decode(errors="replace"),
                      "stderr": err.read().decode(errors="replace")}
            if not _answer(answers, answer):
                break
    return 0


def _answer(answers: BinaryIO, answer: dict[str, Any]) -> bool:
    """Send one answer line; False once the other side has gone."""
    try:
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()
    except BrokenPipeError:
        return False
    return True


def _one_request(line: str, cli_main: Callable[[list[str]], int]) -> int:
    """One request of a kept session, with the exit status a one-shot would have had: an error is
    its answer (one line, as the CLI prints it), never the end of the session."""
    from cockpit.core.errors import one_line
    try:
        request = json.loads(line)
        if isinstance(request, dict) and request.get("op") in ("serve", "follow"):
            raise CockpitError(f"{request.get('op')} is not a request a session serves")
        return main(line, cli_main)
    except CockpitError as exc:
        print(f"cockpit: {one_line(exc)}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # argparse's refusal of a bad argv
        return exc.code if isinstance(exc.code, int) else 2
    except ValueError:
        print("cockpit: _remote: a request is not JSON", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug: the answer says so, the session goes on
        print(f"cockpit: internal error: {one_line(exc)}", file=sys.stderr)
        return 1


def _status(path: Path, name: str) -> int:
    """``{"dirty": [...]}``: what ``git status`` shows in agent ``name``'s worktree (none when it
    has no worktree)."""
    from cockpit.core import worktrees
    from cockpit.core.layout import Layout
    from cockpit.core.spec import validate_name
    worktree = Layout(path).worktree(validate_name(name))
    print(json.dumps({"dirty": worktrees.status_porcelain(worktree) if worktree.is_dir() else []}))
    return 0


def _capture(path: Path, request: dict[str, Any]) -> int:
    """Each named agent's tmux screen, as the local screen view captures it; an agent that has no
    screen here (no such agent, its session gone) is an error of its own, not of the request."""
    from cockpit.core.fleet import Fleet
    from cockpit.core.spec import validate_name
    names = request.get("names")
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise CockpitError("capture: names must be a list of strings")
    fleet = Fleet.discover(path)
    screens: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for name in names:
        try:
            screens[name] = fleet.screen(validate_name(name))
        except CockpitError as exc:
            errors[name] = str(exc)
    print(json.dumps({"screens": screens, "errors": errors}))
    return 0


FOLLOW_POLL_S = 0.1
"""The longest the stream sleeps between two looks at the logs. A write to a log it follows (or
to the event log) wakes it sooner, through the log watcher the TUI uses for local logs
(:class:`~cockpit.core.log_watch.LogWatcher`, within its step): with this sleep alone a line
waited half of it on average before leaving the host (``make bench``, figure ``remote``)."""
FOLLOW_WATCH_DEBOUNCE_MS = 4
"""The host's log watcher gathers changes this long, as the TUI's does for local logs
(``WATCH_DEBOUNCE_MS`` in cockpit/ui/live.py): a remote line then leaves the host as soon as a
local one reaches the TUI."""
FOLLOW_CHUNK = 1024 * 1024
FOLLOW_BEAT_S = 5.0


def _follow(path: Path, request: dict[str, Any]) -> int:
    """Stream every agent's session.log and the event log as they grow, until the other side goes
    away: frames of a JSON header ``{"name", "offset", "reset", "n"}`` (a log) or ``{"events": true,
    "offset", "n"}`` (whole lines of the event log from ``events_offset``, -1: its end) and ``n``
    bytes; ``{"n": 0}`` is a beat.
    ``offsets`` says where each known log was left; a log seen for the first time starts with its
    last ``first`` bytes (from a line start)."""
    import threading

    from cockpit.core.log_watch import LogWatcher
    changed = threading.Event()
    watcher = LogWatcher(lambda _paths: changed.set(), debounce_ms=FOLLOW_WATCH_DEBOUNCE_MS)
    try:
        watcher.start()
        _stream(path, request, watcher, changed)
    finally:
        watcher.stop()
    return 0


def _stream(path: Path, request: dict[str, Any], watcher: LogWatcher, changed: threading.Event) -> None:
    """:func:`_follow`'s loop (it ends when writing to the other side fails). ``changed`` is set
    by ``watcher`` when a log it watches may have grown."""
    import time
    offsets: dict[str, int] = {str(k): int(v) for k, v in (request.get("offsets") or {}).items()}
    first = int(request.get("first") or 256 * 1024)
    agents = path / ".cockpit" / "agents"
    events = path / ".cockpit" / "events.jsonl"
    events_at = int(request.get("events_offset", -1))
    out = sys.stdout.buffer
    out.write(b'{"n": 0}\n')
    out.flush()
    beat = time.monotonic()
    watcher.watch(events)
    watched: set[str] = set()
    while True:
        changed.clear()  # before looking: a write from now on wakes the wait below
        wrote = False
        try:
            with open(events, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if events_at < 0 or events_at > size:  # a first look, or a log replaced: from its end / start
                    events_at = size if events_at < 0 else 0
                f.seek(events_at)
                chunk = f.read(min(FOLLOW_CHUNK, size - events_at))
            chunk = chunk[:chunk.rfind(b"\n") + 1]  # whole lines only
            if chunk:
                out.write(json.dumps({"events": True, "offset": events_at, "n": len(chunk)}).encode() + b"\n" + chunk)
                events_at += len(chunk)
                wrote = True
        except FileNotFoundError:
            pass
        names = sorted(entry.name for entry in agents.iterdir()) if agents.is_dir() else []
        for name in names:
            log = agents / name / "session.log"
            if name not in watched:
                watcher.watch(log)
                watched.add(name)
            try:
                with open(log, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    offset, reset = offsets.get(name), False
                    if offset is None:
                        offset, reset = max(0, size - first), True
                        if offset:
                            f.seek(offset)
                            offset += len(f.readline())  # from a line start
                    elif size < offset:
                        offset, reset = 0, True  # truncated or re-created
                    if size <= offset and not reset:
                        continue
                    f.seek(offset)
                    data = f.read(min(FOLLOW_CHUNK, max(0, size - offset)))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
            header = {"name": name, "offset": offset, "reset": reset, "n": len(data)}
            out.write(json.dumps(header).encode() + b"\n" + data)
            offsets[name] = offset + len(data)
            wrote = True
        now = time.monotonic()
        if wrote or now - beat >= FOLLOW_BEAT_S:
            if not wrote:
                out.write(b'{"n": 0}\n')
            out.flush()
            beat = now
        changed.wait(FOLLOW_POLL_S)


def _preview(path: Path, name: str) -> int:
    """What a discard of ``name`` would archive here (the dialog of a cockpit elsewhere)."""
    import dataclasses

    from cockpit.core.fleet import Fleet
    from cockpit.core.spec import validate_name
    preview = Fleet.discover(path).discard_preview(validate_name(name))
    print(json.dumps(dataclasses.asdict(preview)))
    return 0
