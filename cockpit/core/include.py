"""``.worktreeinclude``: the ignored files a new worktree gets from the main checkout.

A fresh worktree is a checkout: the files git ignores (``.env``, local config, caches) are not
in it. ``.worktreeinclude`` at the repository root lists, in gitignore syntax, the ones a new
agent should have; every file of the main checkout that matches it **and is ignored by git** is
copied into the new worktree before the agent starts. git itself decides both: ``git ls-files
--others --ignored --exclude-from=.worktreeinclude`` lists the untracked files that match, and
``git check-ignore`` keeps those git ignores (tracked files are already in the worktree; an
untracked file that is not ignored is the user's work in progress, not environment).

What a copy guarantees:

* a file the worktree already has is never overwritten (counted as ``kept``);
* nothing is read or written through a symlink: a matching symlink is recreated as the same
  relative link when it points inside the repository, and skipped otherwise; a directory on the
  way that is a symlink (in the main checkout or in the worktree) skips the file;
* a regular file keeps its mode and its modification time;
* a pattern that leaves the repository (``../x``, an absolute path) is refused before anything is
  copied, naming the file and the line.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cockpit.core.errors import CockpitError
from cockpit.core.worktrees import SAFE_CONFIG

INCLUDE_FILE = ".worktreeinclude"
_NOT_COCKPIT = ":(exclude).cockpit"  # cockpit's own directory (worktrees, logs) is never a source
_GLOB = set("*?[")


class IncludeError(CockpitError):
    """``.worktreeinclude`` cannot be used as it is; the message names the file and the line."""


@dataclass(frozen=True)
class Pattern:
    line: int
    text: str

    @property
    def negated(self) -> bool:
        return self.text.startswith("!")


@dataclass
class Copied:
    """What one copy did: paths relative to the repository root."""

    copied: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # the worktree had them already: never overwritten
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


def _escape_reason(root: Path, text: str) -> str | None:
    """Why the pattern ``text`` would reach outside the repository, or None."""
    body = text[1:] if text.startswith("!") else text
    body = body[1:] if body.startswith("\\") else body
    parts = [p for p in body.split("/") if p]
    if ".." in parts:
        return "escapes the repository ('..')"
    if body.startswith("~"):
        return "looks like a path in a home directory"
    if body.startswith("/") and parts:
        first = parts[0]
        # A leading / anchors a gitignore pattern at the repository root; a pattern whose first
        # part names a directory of the filesystem's root and nothing in the repository is an
        # absolute path by mistake (/home/me/.env, /etc/hosts).
        if not (_GLOB & set(first)) and os.path.lexists(f"/{first}") and not os.path.lexists(root / first):
            return f"looks like an absolute path (/{first} is outside the repository)"
        if str(root).startswith("/") and body.startswith(str(root) + "/"):
            return "is an absolute path"
    return None


def patterns(root: Path) -> list[Pattern]:
    """The patterns of ``<root>/.worktreeinclude`` (none when there is no such file). Raises
    :class:`IncludeError` for a pattern that would reach outside the repository."""
    path = root / INCLUDE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise IncludeError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise IncludeError(f"{path}: not UTF-8 text") from None
    found: list[Pattern] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        why = _escape_reason(root, line.strip())
        if why:
            raise IncludeError(f"{path}:{number}: {line.strip()!r} {why}: patterns are relative to the repository "
                               "root, in gitignore syntax (a leading / anchors one there)")
        found.append(Pattern(number, line))
    return found


def _git(root: Path, args: list[str], stdin: bytes | None = None, ok: tuple[int, ...] = (0,)) -> bytes:
    try:
        result = subprocess.run(["git", *SAFE_CONFIG, *args], cwd=root, input=stdin, capture_output=True,
                                stdin=None if stdin is not None else subprocess.DEVNULL)
    except OSError as exc:
        raise IncludeError(f"git {args[0]} failed: {exc}") from None
    if result.returncode not in ok:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        raise IncludeError(f"git {args[0]} failed: {lines[-1] if lines else f'exit {result.returncode}'}")
    return result.stdout


def _ignored(root: Path, paths: list[str]) -> list[str]:
    """Those of ``paths`` git ignores (``check-ignore`` answers 1 when it ignores none)."""
    if not paths:
        return []
    out = _git(root, ["check-ignore", "--stdin", "-z"], stdin=b"".join(p.encode() + b"\0" for p in paths),
               ok=(0, 1))
    ignored = set(filter(None, out.decode(errors="surrogateescape").split("\0")))
    return [p for p in paths if p in ignored]


def _listed(root: Path, exclude: list[str]) -> list[str]:
    out = _git(root, ["ls-files", "--others", "--ignored", *exclude, "-z", "--", ".", _NOT_COCKPIT])
    return sorted(filter(None, out.decode(errors="surrogateescape").split("\0")))


def matching(root: Path) -> list[str]:
    """Every file of the main checkout that ``.worktreeinclude`` names and git ignores, sorted."""
    if not patterns(root):
        return []
    return _ignored(root, _listed(root, [f"--exclude-from={root / INCLUDE_FILE}"]))


def unmatched(root: Path) -> list[Pattern]:
    """The patterns (not negations) that match no ignored file of the main checkout: a typo, or
    a file the main checkout does not have yet (for the pre-spawn checklist's warnings)."""
    found = []
    for pattern in patterns(root):
        if not pattern.negated and not _ignored(root, _listed(root, [f"--exclude={pattern.text}"])):
            found.append(pattern)
    return found


def _inside(relative: str) -> bool:
    """Whether the relative path ``relative`` stays inside the directory it is relative to."""
    normal = os.path.normpath(relative)
    return not (os.path.isabs(normal) or normal == ".." or normal.startswith("../"))


def _plain_dirs(base: Path, parts: tuple[str, ...], create_from: Path | None = None) -> str | None:
    """Check (and with ``create_from``, create like the source's) the directories ``parts`` under
    ``base``: None when each is a real directory, else why not."""
    current = base
    source = create_from
    for part in parts:
        current = current / part
        source = source / part if source is not None else None
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            if source is None:
                return f"{current} does not exist"
            os.mkdir(current, stat.S_IMODE(os.lstat(source).st_mode) | 0o700)
            continue
        if stat.S_ISLNK(info.st_mode):
            return f"{current} is a symlink"
        if not stat.S_ISDIR(info.st_mode):
            return f"{current} is not a directory"
    return None


def _copy_file(source: Path, target: Path, info: os.stat_result) -> None:
    """Copy a regular file without following a symlink at either end; mode and mtime kept."""
    fd_in = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd_in).st_mode):
            raise OSError(f"{source} changed while it was copied")
        fd_out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            while True:
                chunk = os.read(fd_in, 1 << 20)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd_out, view):]
            os.fchmod(fd_out, stat.S_IMODE(info.st_mode))
            os.utime(fd_out, ns=(info.st_atime_ns, info.st_mtime_ns))
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def copy_into(root: Path, worktree: Path, paths: list[str] | None = None) -> Copied:
    """Copy every :func:`matching` file (or ``paths``) from the main checkout ``root`` into
    ``worktree`` (see the module's guarantees). Raises :class:`IncludeError` for a pattern that
    leaves the repository, before anything is copied; a file that cannot be copied is skipped,
    saying why."""
    result = Copied()
    for relative in matching(root) if paths is None else paths:
        parts = PurePosixPath(relative).parts
        if not parts or not _inside(relative) or any(p in (".", "..") for p in parts):
            result.skipped.append((relative, "not a path inside the repository"))
            continue
        source, target = root.joinpath(*parts), worktree.joinpath(*parts)
        why = _plain_dirs(root, parts[:-1])
        if why:
            result.skipped.append((relative, why))
            continue
        try:
            info = os.lstat(source)
        except OSError as exc:
            result.skipped.append((relative, exc.strerror or str(exc)))
            continue
        link = os.readlink(source) if stat.S_ISLNK(info.st_mode) else None
        if link is not None and (os.path.isabs(link) or not _inside(os.path.join(os.path.dirname(relative), link))):
            result.skipped.append((relative, f"a symlink out of the repository ({link}): not followed"))
            continue
        if link is None and not stat.S_ISREG(info.st_mode):
            result.skipped.append((relative, "not a regular file"))
            continue
        try:
            why = _plain_dirs(worktree, parts[:-1], create_from=root)
            if why:
                result.skipped.append((relative, f"in the worktree, {why}"))
                continue
            if os.path.lexists(target):
                result.kept.append(relative)
                continue
            if link is not None:
                os.symlink(link, target)
            else:
                _copy_file(source, target, info)
        except OSError as exc:
            result.skipped.append((relative, exc.strerror or str(exc)))
            continue
        result.copied.append(relative)
    return result
