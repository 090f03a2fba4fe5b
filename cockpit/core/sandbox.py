"""The optional write sandbox (``sandbox = "bwrap"``): an agent that cannot write outside its own
worktree, its TMPDIR and what git needs to record its own commits.

How it holds (bubblewrap 0.8, git 2.39):

* The whole filesystem is bound read-only; writable are the worktree, its TMPDIR, the worktree's
  own git directory ``<common>/worktrees/<id>`` (HEAD, index, reflog) and a private object
  directory ``.cockpit/agents/<name>/git-objects``. The files that tie the worktree to its
  repository (``<worktree>/.git``, ``commondir``, ``gitdir``, ``config.worktree``) are bound
  read-only on top, so the agent cannot point git commands run outside at a repository it made.
* Inside, ``GIT_OBJECT_DIRECTORY`` is the private directory and the shared store is a read-only
  alternate: new objects land in the private directory, the shared store cannot be written or
  deleted. Every ref under ``<common>/refs`` is read-only, so ``main`` and the other agents'
  branches cannot move; the worktree is checked out detached, so a commit moves only its
  per-worktree ``HEAD``.
* Outside, the private directory is listed in the shared store's ``objects/info/alternates`` (a
  file the agent cannot write), so every git command — ``git status`` in the worktree, ``git
  fsck`` in the repository — sees the agent's objects. cockpit moves the agent's branch to the
  worktree's HEAD itself (:func:`sync`), on every read of the fleet and before an archive, after
  copying the new commits' objects into the shared store through ``git index-pack`` (which hashes
  every object it stores: a corrupt private object is never imported under a false name).
* Before the private directory or its alternates line is removed (:func:`release`), every object
  in it is copied into the shared store and checked to be there without it.
* The tmux server's socket directory is hidden (a private tmpfs over it) and ``TMUX`` unset: the
  server runs outside the sandbox, and ``tmux run-shell`` would otherwise be a way out.

What it does not do: reads are not restricted, the network is not, and neither are other
sockets a process can connect to (a Docker or D-Bus socket, ssh-agent).

Every command is an argument list; nothing is ever passed through a shell.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from cockpit.core.errors import CockpitError, LockBusy
from cockpit.core.layout import Layout
from cockpit.core.repository import Repository
from cockpit.core.server import ensure_private_dir, socket_dir
from cockpit.core.spec import AgentSpec
from cockpit.core.state import Record
from cockpit.core.worktrees import SAFE_CONFIG

BWRAP = "bwrap"
INSTALL_HINT = "apt-get install -y bubblewrap"
PRIVATE_OBJECTS = "git-objects"  # under .cockpit/agents/<name>/
BRANCH_MARKER = "sandbox-branch"  # under .cockpit/agents/<name>/: the branch its detached worktree stands for
_checked: dict[str, None] = {}  # bwrap binaries that ran the trivial check in this process
_reported: set[tuple[str, str]] = set()  # (agent dir, error) already recorded by on_read: no event per refresh


class SandboxError(CockpitError):
    """The sandbox cannot be set up or kept consistent; the message says why in one line."""


# -- the spec ------------------------------------------------------------------------------------
def with_default(spec: AgentSpec, default: str | None) -> AgentSpec:
    """``spec`` with the fleet's ``[cockpit] sandbox`` applied when the agent names none, so the
    recorded spec says what actually ran."""
    if spec.sandbox is None and default is not None:
        return replace(spec, sandbox=default)
    return spec


def enabled(spec: AgentSpec) -> bool:
    """Whether the agent runs under the write sandbox ("none", or no key and no default: not)."""
    return spec.sandbox == "bwrap"


# -- bubblewrap ------------------------------------------------------------------------------------
def require() -> str:
    """The path of a bwrap that works here, or a one-line :class:`SandboxError` saying how to get
    one. Runs a trivial sandbox once per process: user namespaces or mounts may be forbidden."""
    binary = shutil.which(BWRAP)
    if binary is None:
        raise SandboxError(f'sandbox = "bwrap" needs bubblewrap, which is not installed (install it: {INSTALL_HINT})')
    if binary not in _checked:
        try:
            result = subprocess.run([binary, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"],
                                    capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxError(f"bubblewrap ({binary}) does not run here: {exc}") from None
        if result.returncode != 0:
            detail = " ".join(result.stderr.split()) or f"exit {result.returncode}"
            raise SandboxError(f"bubblewrap ({binary}) does not work here: {detail} "
                               "(are user namespaces disabled on this machine?)")
        _checked[binary] = None
    return binary


# -- paths -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Paths:
    """Everything the sandbox of one agent binds."""

    worktree: Path
    admin: Path  # <common>/worktrees/<id>: the worktree's HEAD, index, reflog
    common: Path  # the repository's git directory
    objects: Path  # the agent's private object directory
    tmp: Path


def private_objects(layout: Layout, name: str) -> Path:
    return layout.agent_dir(name) / PRIVATE_OBJECTS


def detached_checkout(layout: Layout, name: str, branch: str | None) -> Path | None:
    """The worktree that stands for ``branch`` although it is detached (a sandboxed one), else None.

    Recovery finds an interrupted spawn's worktree through its branch; a sandboxed worktree has
    none checked out, so :func:`prepare` records it in the agent's directory, which the agent
    cannot write."""
    if not branch:
        return None
    try:
        recorded = (layout.agent_dir(name) / BRANCH_MARKER).read_text().strip()
    except OSError:
        return None
    worktree = layout.worktree(name)
    return worktree if recorded == branch and worktree.is_dir() else None


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None, drop: Iterable[str] = (),
         input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """``git args`` with a controlled environment (``drop`` removes variables). Raises
    :class:`SandboxError` with git's last line when ``check`` and git fails."""
    full = {k: v for k, v in os.environ.items() if k not in set(drop)}
    full.update(env or {})
    try:
        result = subprocess.run(["git", *SAFE_CONFIG, *args], cwd=cwd, env=full, input=input, capture_output=True)
    except OSError as exc:
        raise SandboxError(f"git {args[0]} failed: {exc}") from None
    if check and result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        raise SandboxError(f"git {args[0]} failed: {lines[-1] if lines else f'exit {result.returncode}'}")
    return result


def _out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode(errors="replace").strip()


def common_dir(root: Path) -> Path:
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    return Path(_out(_git(root, "rev-parse", "--path-format=absolute", "--git-common-dir")))


def paths(root: Path, layout: Layout, name: str) -> Paths | None:
    """The agent's sandbox paths, or None when its worktree is not a worktree of ``root``.

    The worktree's git directory is read from ``<worktree>/.git`` and accepted only if it lies in
    ``<common>/worktrees/`` and its ``gitdir`` file points back: a worktree whose link was
    tampered with is not trusted for anything.
    """
    worktree = layout.worktree(name)
    common = common_dir(root)
    try:
        link = (worktree / ".git").read_text()
    except OSError:
        return None
    if not link.startswith("gitdir: "):
        return None
    admin = Path(link[len("gitdir: "):].strip())
    if not admin.is_absolute():
        admin = (worktree / admin)
    try:
        admin = admin.resolve(strict=True)
        back = Path((admin / "gitdir").read_text().strip())
    except OSError:
        return None
    if admin.parent != (common / "worktrees").resolve() or back.resolve() != (worktree / ".git").resolve():
        return None
    return Paths(worktree=worktree, admin=admin, common=common, objects=private_objects(layout, name),
                 tmp=layout.tmp_dir(name))


def _tmux_socket_dirs() -> list[Path]:
    """Where tmux servers of this user put their sockets: every cockpit fleet's
    (``/tmp/cockpit-UID``, :mod:`cockpit.core.server`) and tmux's own (``$TMUX_TMPDIR`` or /tmp,
    ``tmux-UID``)."""
    uid = os.getuid()
    dirs = [socket_dir(), Path("/tmp") / f"tmux-{uid}"]
    custom = os.environ.get("TMUX_TMPDIR")
    if custom and Path(custom) / f"tmux-{uid}" not in dirs:
        dirs.append(Path(custom) / f"tmux-{uid}")
    return dirs


def argv(bwrap: str, p: Paths) -> list[str]:
    """The bwrap command line that runs a command inside the sandbox (append the command).

    Order matters: later mounts go on top of earlier ones, so the read-only links are bound after
    the writable directories that contain them.
    """
    args = [bwrap, "--die-with-parent",
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc"]
    for directory in (p.worktree, p.admin, p.objects, p.tmp):
        args += ["--bind", str(directory), str(directory)]
    for pinned in (p.worktree / ".git", p.admin / "commondir", p.admin / "gitdir", p.admin / "config.worktree",
                   p.objects / "info"):
        args += ["--ro-bind", str(pinned), str(pinned)]
    for hidden in _tmux_socket_dirs():
        args += ["--tmpfs", str(hidden)]
    runtime = Path(f"/run/user/{os.getuid()}")  # the user's D-Bus and systemd sockets
    if runtime.is_dir():
        args += ["--tmpfs", str(runtime)]
    args += ["--unsetenv", "TMUX", "--unsetenv", "TMUX_PANE",
             "--setenv", "GIT_OBJECT_DIRECTORY", str(p.objects),
             "--setenv", "GIT_ALTERNATE_OBJECT_DIRECTORIES", str(p.common / "objects"),
             "--chdir", str(p.worktree),
             "--"]
    return args


# -- the shared store's alternates ------------------------------------------------------------------
def _alternates_file(common: Path) -> Path:
    return common / "objects" / "info" / "alternates"


def _read_alternates(common: Path) -> list[str]:
    try:
        return _alternates_file(common).read_text().splitlines()
    except FileNotFoundError:
        return []


def _write_alternates(common: Path, lines: list[str]) -> None:
    path = _alternates_file(common)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("alternates.cockpit-tmp")
    tmp.write_text("".join(f"{line}\n" for line in lines))
    os.replace(tmp, path)


def _add_alternate(common: Path, directory: Path) -> None:
    lines = _read_alternates(common)
    if str(directory) not in lines:
        _write_alternates(common, lines + [str(directory)])


def _remove_alternate(common: Path, directory: Path) -> None:
    lines = _read_alternates(common)
    if str(directory) in lines:
        _write_alternates(common, [line for line in lines if line != str(directory)])


def stale_alternates(root: Path, layout: Layout) -> list[str]:
    """Alternates lines of private directories that no longer exist (``.cockpit`` deleted by
    hand): git prints an error on every command for a missing alternate. One small file read."""
    common = root / ".git"
    if not _alternates_file(common).is_file():
        return []
    prefix = str(layout.agents) + os.sep
    return [line for line in _read_alternates(common) if line.startswith(prefix) and not Path(line).is_dir()]


def prune_alternates(root: Path, layout: Layout) -> None:
    """Drop the :func:`stale_alternates` lines. Caller holds the repository lock."""
    stale = stale_alternates(root, layout)
    if stale:
        common = root / ".git"
        _write_alternates(common, [line for line in _read_alternates(common) if line not in stale])


# -- objects ------------------------------------------------------------------------------------------
def _import(root: Path, objects: Path, pack_args: list[str], stdin: bytes) -> None:
    """Copy objects from ``objects`` (and the shared store) into the shared store: ``git
    pack-objects`` reads them, ``git index-pack`` hashes and stores each one."""
    pack = _git(root, "pack-objects", "--stdout", "--quiet", *pack_args, input=stdin,
                env={"GIT_ALTERNATE_OBJECT_DIRECTORIES": str(objects)}).stdout
    if len(pack) < 12 or int.from_bytes(pack[8:12], "big") == 0:
        return  # nothing new: an empty pack is not worth a file
    _git(root, "index-pack", "--stdin", input=pack)


def _private_oids(objects: Path, root: Path) -> list[str]:
    """Every object stored in the private directory itself (never those of its alternates)."""
    if not objects.is_dir():
        return []
    out = _git(root, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)",
               env={"GIT_OBJECT_DIRECTORY": str(objects)}, drop=("GIT_ALTERNATE_OBJECT_DIRECTORIES",))
    return _out(out).split()


# -- the worktree's HEAD and the agent's branch -----------------------------------------------------------
def _head(p: Paths) -> str | None:
    """The worktree's HEAD commit, read from its per-worktree HEAD (a symbolic HEAD — the agent
    checked a branch out — is resolved by git)."""
    try:
        text = (p.admin / "HEAD").read_text().strip()
    except OSError:
        return None
    if len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text):
        return text
    result = _git(p.worktree, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if result.returncode != 0:
        return None
    return _out(result) or None


def _branch_tip(root: Path, common: Path, branch: str) -> str | None:
    try:
        text = (common / "refs" / "heads" / branch).read_text().strip()
        if len(text) in (40, 64):
            return text
    except OSError:
        pass
    result = _git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    if result.returncode != 0:
        return None
    return _out(result) or None


def needs_sync(root: Path, layout: Layout, name: str, branch: str) -> bool:
    """The cheap check (two small files read): has the sandboxed agent's HEAD left its branch?"""
    if not branch or not private_objects(layout, name).is_dir():
        return False
    p = paths(root, layout, name)
    if p is None:
        return False
    head = _head(p)
    tip = _branch_tip(root, p.common, branch)
    return head is not None and tip is not None and head != tip


def sync(root: Path, layout: Layout, name: str, branch: str) -> str | None:
    """Move ``branch`` to the sandboxed worktree's HEAD, after copying the new commits' objects
    into the shared store. Returns the new tip, or None when there was nothing to do.

    The move is a compare-and-swap (``update-ref NEW OLD``): a branch deleted or moved meanwhile is
    left alone. Caller holds the repository lock.
    """
    if not needs_sync(root, layout, name, branch):
        return None
    p = paths(root, layout, name)
    if p is None:
        return None
    head, tip = _head(p), _branch_tip(root, p.common, branch)
    if head is None or tip is None:
        return None
    kind = _git(root, "cat-file", "-t", head, check=False,
                env={"GIT_ALTERNATE_OBJECT_DIRECTORIES": str(p.objects)})
    if _out(kind) != "commit":
        raise SandboxError(f"agent {name!r}: its worktree's HEAD {head[:12]} is not a commit; "
                           f"branch {branch!r} left at {tip[:12]}")
    _import(root, p.objects, ["--revs"], f"{head}\n^{tip}\n".encode())
    _git(root, "update-ref", "-m", f"cockpit: commits of sandboxed agent {name}", f"refs/heads/{branch}", head, tip)
    return head


# -- set up and take down ---------------------------------------------------------------------------
def prepare(root: Path, layout: Layout, name: str, branch: str) -> list[str]:
    """Make the agent's worktree ready for the sandbox and return the bwrap prefix for its command.

    Idempotent: also used by ``respawn --keep`` on a worktree that ran sandboxed before, or was
    restored with its branch checked out (the branch is first brought up to the worktree's HEAD).
    """
    bwrap = require()
    p = paths(root, layout, name)
    if p is None:
        raise SandboxError(f"agent {name!r}: {layout.worktree(name)} is not a worktree of {root}")
    p.objects.mkdir(parents=True, exist_ok=True)
    (p.objects / "info").mkdir(exist_ok=True)
    p.tmp.mkdir(parents=True, exist_ok=True)
    (p.admin / "config.worktree").touch()
    for directory in _tmux_socket_dirs():
        ensure_private_dir(directory)  # as tmux would; it must exist to be hidden
    _add_alternate(p.common, p.objects)
    (layout.agent_dir(name) / BRANCH_MARKER).write_text(f"{branch}\n")
    sync(root, layout, name, branch)
    head = _head(p)
    if head is None:
        raise SandboxError(f"agent {name!r}: its worktree has no HEAD commit")
    # Detached: a commit then moves only the per-worktree HEAD, never a ref in the shared refs/.
    _git(p.worktree, "update-ref", "--no-deref", "-m", "cockpit: sandboxed, detached", "HEAD", head)
    return argv(bwrap, p)


def release(root: Path, layout: Layout, name: str) -> None:
    """Copy every object of the agent's private directory into the shared store, then remove its
    alternates line and the directory — but only once the shared store, without it, holds them all.
    If not (a corrupt object the agent wrote), both stay and :class:`SandboxError` says so.
    Caller holds the repository lock."""
    objects = private_objects(layout, name)
    common = common_dir(root)
    (layout.agent_dir(name) / BRANCH_MARKER).unlink(missing_ok=True)
    if not objects.is_dir():
        _remove_alternate(common, objects)
        return
    oids = _private_oids(objects, root)
    stdin = "".join(f"{oid}\n" for oid in oids).encode()
    if oids:
        _import(root, objects, [], stdin)
    _remove_alternate(common, objects)
    if oids:
        check = _git(root, "cat-file", "--batch-check=%(objectname) %(objecttype)", input=stdin,
                     drop=("GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_OBJECT_DIRECTORY"))
        missing = [line.split()[0] for line in _out(check).splitlines() if line.endswith(" missing")]
        if missing:
            _add_alternate(common, objects)
            raise SandboxError(f"agent {name!r}: {len(missing)} object(s) of {objects} could not be copied into the "
                               f"shared store (first: {missing[0]}); kept the directory and its alternates line")
    shutil.rmtree(objects)


def leave(root: Path, layout: Layout, name: str, branch: str) -> None:
    """A worktree that ran sandboxed is about to run unsandboxed: bring its branch up to its HEAD,
    check the branch out again and release the private directory."""
    if not private_objects(layout, name).is_dir():
        return
    sync(root, layout, name, branch)
    p = paths(root, layout, name)
    if p is not None and _head(p) == _branch_tip(root, p.common, branch):
        _git(p.worktree, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
    release(root, layout, name)


# -- where the lifecycle hooks in: one line at each place ----------------------------------------------------
def launch_prefix(repo: Repository, spec: AgentSpec, branch: str) -> list[str] | None:
    """The bwrap prefix for the agent's command, or None when it runs unsandboxed (a worktree
    that ran sandboxed before is handed back to its branch first)."""
    if enabled(spec):
        return prepare(repo.root, repo.layout, spec.name, branch)
    leave(repo.root, repo.layout, spec.name, branch)
    return None


def command_prefix(repo: Repository, spec: AgentSpec) -> list[str] | None:
    """The bwrap prefix for a command cockpit itself runs in a sandboxed agent's worktree (its
    teardown and stop commands), or None when the agent runs unsandboxed. Raises
    :class:`SandboxError` rather than run such a command outside the sandbox."""
    if not enabled(spec):
        return None
    p = paths(repo.root, repo.layout, spec.name)
    if p is None:
        raise SandboxError(f"agent {spec.name!r}: {repo.layout.worktree(spec.name)} is not a worktree of {repo.root}")
    (p.objects / "info").mkdir(parents=True, exist_ok=True)  # (a restored worktree that never ran has none)
    p.tmp.mkdir(parents=True, exist_ok=True)
    (p.admin / "config.worktree").touch()
    for directory in _tmux_socket_dirs():
        ensure_private_dir(directory)
    _add_alternate(p.common, p.objects)
    return argv(require(), p)


def on_read(repo: Repository, records: Iterable[Record]) -> None:
    """Every read of the fleet: move sandboxed agents' branches to their HEADs. Only when the
    lock is free at once — an operation holding it syncs what it needs itself."""
    pending = [r for r in records if not r.discarded and needs_sync(repo.root, repo.layout, r.name, r.branch)]
    if not pending and not stale_alternates(repo.root, repo.layout):
        return
    try:
        with repo.locked(timeout=0):
            prune_alternates(repo.root, repo.layout)
            for record in pending:
                try:
                    sync(repo.root, repo.layout, record.name, record.branch)
                except SandboxError as exc:
                    key = (str(repo.layout.agent_dir(record.name)), str(exc))
                    if key not in _reported:
                        _reported.add(key)
                        repo.events.append("sandbox.sync.failed", record.name, error=str(exc))
    except LockBusy:
        return


def before_archive(repo: Repository, name: str, branch: str) -> None:
    """Before an archive: the branch must hold the agent's commits (the archive of a missing
    worktree is the branch). A failure is recorded, not raised: the snapshot still holds HEAD."""
    try:
        sync(repo.root, repo.layout, name, branch)
    except SandboxError as exc:
        repo.events.append("sandbox.sync.failed", name, error=str(exc))


def after_teardown(repo: Repository, name: str) -> None:
    """After the worktree is gone (archive already taken): release the private directory. A
    failure keeps it, readable through its alternates line, and is recorded."""
    try:
        release(repo.root, repo.layout, name)
    except SandboxError as exc:
        repo.events.append("sandbox.release.failed", name, error=str(exc))
