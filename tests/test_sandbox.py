"""The write sandbox (``sandbox = "bwrap"``) against real git, tmux and bubblewrap: an adversarial
agent can change nothing outside its worktree, while its own edits and commits go through and
ls, the diff summary, discard and restore work on them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cockpit
from cockpit.core import sandbox
from cockpit.core.errors import ConfigError
from cockpit.core.fleet import Fleet
from cockpit.core.spec import load_config
from conftest import fleet_socket, git, sleeper, tmux, tree_hashes, wait_until

pytestmark = pytest.mark.tmux

CODE_ROOT = str(Path(cockpit.__file__).resolve().parent.parent)  # the CLI subprocess runs this code


def _bwrap_usable() -> str | None:
    try:
        sandbox.require()
    except sandbox.SandboxError as exc:
        return str(exc)
    return None


needs_bwrap = pytest.mark.skipif(_bwrap_usable() is not None,
                                 reason=f"bubblewrap cannot be used here: {_bwrap_usable()}")

# Every attempt runs in its own shell; its exit status is recorded as "<label> <status>".
ATTACKS = {
    "rm-main-file": 'rm -f "$COCKPIT_REPO/README.md"',
    "edit-main-file": 'echo pwned >> "$COCKPIT_REPO/src/app.py"',
    "new-main-file": 'echo pwned > "$COCKPIT_REPO/pwned.txt"',
    "rm-other-file": 'rm -f "$OTHER/mine.txt"',
    "edit-other-file": 'echo pwned >> "$OTHER/README.md"',
    "update-ref-main": "git update-ref refs/heads/main HEAD",
    "push-main": "git push -q . HEAD:main",
    "push-other": "git push -q --force . HEAD:refs/heads/cockpit/other",
    "push-feature": "git push -q --force . HEAD:refs/heads/feature",
    "branch-f-other": "git branch -f cockpit/other HEAD",
    "branch-f-feature": "git branch -f feature HEAD",  # a branch checked out nowhere
    "delete-main": "git update-ref -d refs/heads/main",
    "update-ref-other": "git update-ref refs/heads/cockpit/other HEAD",
    "new-branch": "git branch escape HEAD",
    "commit-in-main": 'git -C "$COCKPIT_REPO" commit -q --allow-empty -m pwned',
    "rm-object-store": 'rm -rf "$COMMON/objects"',
    "write-object-store": 'echo pwned > "$COMMON/objects/pwned"',
    "overwrite-object": 'for f in "$COMMON"/objects/??/*; do echo pwned > "$f" && exit 0; done; exit 1',
    "unset-objdir-add": 'echo x > unset.txt; env -u GIT_OBJECT_DIRECTORY git add unset.txt',
    "rm-packed-refs": 'rm -f "$COMMON/packed-refs" "$COMMON/HEAD"',
    "tamper-gitfile": 'echo "gitdir: /tmp" > .git',
    "tamper-commondir": 'echo /tmp > "$(git rev-parse --git-dir)/commondir"',
    "private-alternates": 'echo "$COMMON/objects" > "$GIT_OBJECT_DIRECTORY/info/alternates"',
    "tmux-escape": 'tmux -L "$(basename "$SOCK")" run-shell "touch $COCKPIT_REPO/escaped"',
    "tmux-socket-direct": 'tmux -S "$SOCK" run-shell "touch $COCKPIT_REPO/escaped"',
    "tmux-socket-visible": '[ -n "$(ls -A "/tmp/cockpit-$(id -u)" "/tmp/tmux-$(id -u)" 2>/dev/null | grep -v ":$")" ]',
}
OWN = {
    "commit-one": "echo mine > mine.txt && git add mine.txt && git commit -q -m one",
    "commit-two": "echo two > two.txt && git add two.txt && git commit -q -m two",
    "edit-own": "echo dirty >> README.md",
    "untracked-own": "printf 'a\\nb\\n' > new.txt",
    "tmpdir": 'echo t > "$TMPDIR/scratch"',
}


def _script(results: Path) -> str:
    lines = ['while [ ! -e "$TMPDIR/go" ]; do sleep 0.05; done']
    for label, command in {**OWN, **ATTACKS}.items():
        quoted = command.replace("'", "'\\''")
        lines.append(f"sh -c '{quoted}' >/dev/null 2>&1; echo \"{label} $?\" >> \"$TMPDIR/results.txt\"")
    lines.append('echo done >> "$TMPDIR/results.txt"; sleep 600')
    return "\n".join(lines)


def _store(common: Path) -> dict[str, str]:
    """Hash of every file of the shared object store, except the alternates file cockpit edits."""
    out: dict[str, str] = {}
    for path in sorted((common / "objects").rglob("*")):
        if path.is_file() and path.name != "alternates":
            out[str(path.relative_to(common))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _refs(repo: Path) -> str:
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


@pytest.fixture
def jail_config(repo: Path) -> Path:
    """cockpit.toml with one sandboxed adversary ("jail") and one ordinary agent ("other")."""
    lit = "'" * 3
    other = repo / ".cockpit" / "worktrees" / "other"
    results = repo / ".cockpit" / "agents" / "jail" / "tmp" / "results.txt"
    (repo / "cockpit.toml").write_text(
        f'[[agent]]\nname = "other"\ncommand = {lit}echo mine > mine.txt; git add mine.txt; git commit -qm other; '
        f'{sleeper("other")}{lit}\n'
        f'[[agent]]\nname = "jail"\nsandbox = "bwrap"\ncommand = {lit}{_script(results)}{lit}\n'
        f'env = {{ OTHER = "{other}", COMMON = "{repo / ".git"}", SOCK = "{fleet_socket(repo)}" }}\n')
    return results


def _results(path: Path) -> dict[str, int]:
    text = path.read_text() if path.exists() else ""
    return {line.split()[0]: int(line.split()[1]) for line in text.splitlines() if len(line.split()) == 2}


@needs_bwrap
def test_adversarial_agent_changes_nothing_outside_its_worktree(fleet: Fleet, repo: Path, jail_config: Path) -> None:
    git(repo, "branch", "feature", "main")
    fleet.spawn("other")
    other = repo / ".cockpit" / "worktrees" / "other"
    wait_until(lambda: git(repo, "rev-list", "--count", "main..cockpit/other") == "1", message="other commits")
    agent = fleet.spawn("jail")
    assert agent.sandbox == "bwrap" and agent.state == "running"
    jail = Path(agent.worktree)
    main_before, other_before = tree_hashes(repo), tree_hashes(other)
    refs_before, store_before = _refs(repo), _store(repo / ".git")
    status_before = git(repo, "status", "--porcelain")
    base = agent.base_sha

    (jail_config.parent / "go").write_text("")
    wait_until(lambda: "done" in jail_config.read_text() if jail_config.exists() else False,
               message="adversary finished", timeout=60)
    results = _results(jail_config)
    assert {label: results[label] for label in OWN} == dict.fromkeys(OWN, 0), results
    succeeded = [label for label in ATTACKS if results[label] == 0]
    assert succeeded == [], f"attacks that succeeded: {succeeded}"

    # Nothing outside changed: files, refs, the object store, and no escape through tmux.
    assert tree_hashes(repo) == main_before
    assert tree_hashes(other) == other_before
    assert not (repo / "escaped").exists() and not (repo / "pwned.txt").exists()
    store_after = _store(repo / ".git")
    assert {k: store_after.get(k) for k in store_before} == store_before  # nothing deleted or overwritten
    assert git(repo, "status", "--porcelain") == status_before

    # Its own work counts, as seen from outside: ls moves its branch, everything else is as before.
    agent = fleet.agent("jail")
    assert agent.state == "running"
    refs_after = _refs(repo)
    changed = set(refs_after.splitlines()) ^ set(refs_before.splitlines())
    assert {line.split()[0] for line in changed} == {"refs/heads/cockpit/jail"}, changed
    head = git(jail, "rev-parse", "HEAD")
    assert git(repo, "rev-parse", "cockpit/jail") == head
    assert git(repo, "log", "--format=%s", f"{base}..cockpit/jail").splitlines() == ["two", "one"]
    assert git(repo, "cat-file", "-t", head) == "commit"
    status = {line.strip() for line in git(jail, "status", "--porcelain", "--untracked-files=all").splitlines()}
    assert status == {"M README.md", "?? new.txt", "?? unset.txt"}, status
    assert fleet.diff_summary("jail") == (5, 6, 0)  # mine, two, README, new (2 lines), unset
    assert fleet.discard_preview("jail").ahead == 2
    subprocess.run(["git", "fsck", "--no-progress"], cwd=repo, check=True, capture_output=True)

    # Discard, then restore: byte-identical, its commits reachable, the private store gone.
    jail_before = tree_hashes(jail)
    ref = fleet.discard("jail")
    private = repo / ".cockpit" / "agents" / "jail" / "git-objects"
    assert not private.exists()
    assert str(private) not in (repo / ".git" / "objects" / "info" / "alternates").read_text()
    subprocess.run(["git", "fsck", "--no-progress"], cwd=repo, check=True, capture_output=True)
    assert "mine.txt" in git(repo, "ls-tree", "-r", "--name-only", ref)
    restored = fleet.restore("jail")
    assert tree_hashes(Path(restored.worktree)) == jail_before
    assert git(Path(restored.worktree), "rev-parse", "HEAD") == head
    assert git(repo, "rev-list", "--count", f"{base}..cockpit/jail") == "2"
    assert tree_hashes(repo) == main_before and tree_hashes(other) == other_before


@needs_bwrap
def test_restored_agent_runs_sandboxed_again_and_keeps_committing(fleet: Fleet, repo: Path) -> None:
    (repo / "cockpit.toml").write_text('[cockpit]\nsandbox = "bwrap"\n')  # the fleet-wide default
    agent = fleet.spawn("s", command="git commit -q --allow-empty -m first && echo ok > $TMPDIR/ok; sleep 600")
    assert agent.sandbox == "bwrap"
    ok = repo / ".cockpit" / "agents" / "s" / "tmp" / "ok"
    wait_until(ok.exists, message="first commit")
    wait_until(lambda: fleet.agents() and git(repo, "log", "-1", "--format=%s", "cockpit/s") == "first",
               message="branch synced on a read")
    fleet.discard("s")
    fleet.restore("s")
    ok.unlink()
    agent = fleet.respawn("s", keep=True, command="git commit -q --allow-empty -m second && echo ok > $TMPDIR/ok; "
                                                  "echo x > ../escape.txt; sleep 600")
    assert agent.sandbox == "bwrap"
    wait_until(ok.exists, message="second commit")
    wait_until(lambda: fleet.agents() and git(repo, "log", "-1", "--format=%s", "cockpit/s") == "second",
               message="branch synced on a read")
    assert git(repo, "log", "--format=%s", "-2", "cockpit/s").splitlines() == ["second", "first"]
    assert not (repo / ".cockpit" / "worktrees" / "escape.txt").exists()
    fleet.pause("s")
    assert fleet.agent("s").state == "paused"
    fleet.resume("s")
    fleet.kill("s")
    # Unsandboxed again ("none" overrides the default): the branch is checked out once more.
    (repo / "cockpit.toml").write_text('[cockpit]\nsandbox = "bwrap"\n[[agent]]\nname = "s"\nsandbox = "none"\n'
                                       'command = "git commit -q --allow-empty -m third; sleep 600"\n')
    agent = fleet.respawn("s", keep=True)
    assert agent.sandbox is None
    worktree = Path(agent.worktree)
    assert git(worktree, "branch", "--show-current") == "cockpit/s"
    wait_until(lambda: git(repo, "log", "-1", "--format=%s", "cockpit/s") == "third", message="plain commit")
    assert not (repo / ".cockpit" / "agents" / "s" / "git-objects").exists()
    subprocess.run(["git", "fsck", "--no-progress"], cwd=repo, check=True, capture_output=True)


def _path_without_bwrap(tmp_path: Path) -> str:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for tool in ("git", "tmux"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        (bindir / tool).symlink_to(found)
    return str(bindir)


def _untouched(repo: Path) -> tuple:
    sessions = tmux(repo, "list-sessions").stdout
    return (git(repo, "branch", "--list"), git(repo, "worktree", "list"), sessions, (repo / ".cockpit").exists(),
            git(repo, "status", "--porcelain"))


def test_missing_bwrap_refuses_before_creating_anything(fleet: Fleet, repo: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "cockpit.toml").write_text('[[agent]]\nname = "j"\nsandbox = "bwrap"\ncommand = "sleep 60"\n')
    before = _untouched(repo)
    monkeypatch.setenv("PATH", _path_without_bwrap(tmp_path))
    monkeypatch.setattr(sandbox, "_checked", {})
    with pytest.raises(sandbox.SandboxError, match="apt-get install -y bubblewrap"):
        fleet.spawn("j")
    with pytest.raises(sandbox.SandboxError, match="not installed"):
        fleet.spawn("j", command="sleep 60")  # --command keeps the configured sandbox
    assert _untouched(repo) == before


def test_missing_bwrap_via_cli_is_one_clear_line(repo: Path, tmp_path: Path) -> None:
    (repo / "cockpit.toml").write_text('[cockpit]\nsandbox = "bwrap"\n')
    before = _untouched(repo)
    env = {**os.environ, "PATH": _path_without_bwrap(tmp_path), "PYTHONPATH": CODE_ROOT}
    result = subprocess.run([sys.executable, "-m", "cockpit", "spawn", "a", "--command", "true"], cwd=repo, env=env,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.strip().count("\n") == 0 and "apt-get install -y bubblewrap" in result.stderr
    assert "Traceback" not in result.stderr
    assert _untouched(repo) == before


def test_bwrap_that_cannot_run_reports_its_error(fleet: Fleet, repo: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = _path_without_bwrap(tmp_path)
    fake = Path(path) / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", path)
    monkeypatch.setattr(sandbox, "_checked", {})
    (repo / "cockpit.toml").write_text('[cockpit]\nsandbox = "bwrap"\n')
    before = _untouched(repo)
    with pytest.raises(sandbox.SandboxError, match="does not work here: bwrap: No permissions to create new namespace"):
        fleet.spawn("j", command="true")
    assert _untouched(repo) == before


@pytest.mark.parametrize("text, where", [
    ('[[agent]]\nname = "a"\ncommand = "x"\nsandbox = "docker"\n',
     ":4: agent[0] ('a').sandbox: unknown sandbox 'docker'"),
    ('[cockpit]\nsandbox = "firejail"\n', ":2: cockpit.sandbox: unknown sandbox 'firejail'"),
    ('[[agent]]\nname = "a"\ncommand = "x"\nsandbox = true\n', ":4: agent[0] ('a').sandbox: expected str"),
])
def test_sandbox_key_is_validated(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "cockpit.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}{where}" in str(info.value)


def test_fleet_default_and_opt_out(fleet: Fleet, repo: Path) -> None:
    (repo / "cockpit.toml").write_text('[cockpit]\nsandbox = "bwrap"\n[[agent]]\nname = "free"\ncommand = "x"\n'
                                       'sandbox = "none"\n')
    assert sandbox.enabled(fleet.resolve_spec("adhoc", command="true"))
    assert not sandbox.enabled(fleet.resolve_spec("free"))
    assert not sandbox.enabled(fleet.resolve_spec("free", command="true"))


@needs_bwrap
def test_config_of_a_nested_repository_never_runs_outside(fleet: Fleet, repo: Path) -> None:
    """A sandboxed agent writes a repository inside its worktree whose config runs a command
    (core.fsmonitor) and registers it as a submodule. git run outside in the worktree would start
    git in that repository; cockpit's own git commands must not run its config, unsandboxed."""
    escaped = repo / "escaped-through-fsmonitor"
    own = "env -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES"  # a repository with its own objects
    script = (f"{own} git init -q sub && {own} git -C sub -c user.name=a -c user.email=a@b commit -q --allow-empty -m s"
              f" && git -C sub config core.fsmonitor 'touch {escaped}; false' && "
              f"git update-index --add --cacheinfo 160000,$({own} git -C sub rev-parse HEAD),sub && "
              "echo dirty > sub/file && "
              # and one git cannot even open from outside (its objects went to the private store)
              "git init -q broken && git -C broken -c user.name=a -c user.email=a@b commit -q --allow-empty -m b && "
              "git update-index --add --cacheinfo 160000,$(git -C broken rev-parse HEAD),broken && "
              "echo ready > $TMPDIR/ready; sleep 600")
    (repo / "cockpit.toml").write_text('[cockpit]\nsandbox = "bwrap"\n')
    fleet.spawn("nest", command=script)
    ready = repo / ".cockpit" / "agents" / "nest" / "tmp" / "ready"
    assert fleet.agent("nest").state == "running"
    wait_until(ready.exists, message="nested repository written")
    fleet.discard_preview("nest")
    fleet.diff_summary("nest")
    fleet.agents()
    ref = fleet.discard("nest")
    fleet.restore("nest")
    assert ref and not escaped.exists()


def _cli(repo: Path, *args: str, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": CODE_ROOT}
    if crash:
        env["COCKPIT_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=repo, capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=60)


@needs_bwrap
@pytest.mark.parametrize("step", ["after-worktree", "after-session"])
def test_crash_inside_sandboxed_spawn_rolls_back(repo: Path, step: str) -> None:
    """The sandboxed worktree is detached, so recovery cannot find it through its branch."""
    (repo / "cockpit.toml").write_text('[cockpit]\nsandbox = "bwrap"\n')
    assert _cli(repo, "spawn", "s", "--command", "sleep 60", crash=f"spawn:{step}").returncode == -9
    listing = _cli(repo, "ls", "--json")
    assert listing.returncode == 0 and listing.stdout.strip() == "[]", listing
    assert git(repo, "branch", "--list", "cockpit/*") == ""
    assert not (repo / ".cockpit" / "worktrees" / "s").exists()
    assert "git-objects" not in (repo / ".git" / "objects" / "info" / "alternates").read_text() \
        if (repo / ".git" / "objects" / "info" / "alternates").exists() else True
    assert _cli(repo, "spawn", "s", "--command", "sleep 60").returncode == 0
    subprocess.run(["git", "fsck", "--no-progress"], cwd=repo, check=True, capture_output=True)


@needs_bwrap
@pytest.mark.parametrize("step", ["before-archive", "after-archive", "after-teardown"])
def test_crash_inside_sandboxed_discard_completes_it(repo: Path, step: str) -> None:
    (repo / "cockpit.toml").write_text('[cockpit]\nsandbox = "bwrap"\n')
    spawned = _cli(repo, "spawn", "d", "--command", "echo data > work.txt && git add work.txt && "
                                                    "git commit -qm work && echo ok > $TMPDIR/ok; sleep 60")
    assert spawned.returncode == 0, spawned.stderr
    wait_until((repo / ".cockpit" / "agents" / "d" / "tmp" / "ok").exists, message="agent committed")
    assert _cli(repo, "discard", "d", "--yes", crash=f"discard:{step}").returncode == -9
    listing = _cli(repo, "ls", "--json")
    assert listing.returncode == 0 and listing.stdout.strip() == "[]", listing
    assert not (repo / ".cockpit" / "agents" / "d" / "git-objects").exists()
    subprocess.run(["git", "fsck", "--no-progress"], cwd=repo, check=True, capture_output=True)
    assert _cli(repo, "restore", "d").returncode == 0
    assert (repo / ".cockpit" / "worktrees" / "d" / "work.txt").read_text() == "data\n"
    assert git(repo, "log", "-1", "--format=%s", "cockpit/d") == "work"


@needs_bwrap
@pytest.mark.parametrize("step", ["after-archive", "after-teardown", "after-session"])
def test_crash_inside_sandboxed_respawn_is_consistent(repo: Path, step: str) -> None:
    (repo / "cockpit.toml").write_text('[cockpit]\nsandbox = "bwrap"\n')
    command = "git commit -q --allow-empty -m mine && echo ok > $TMPDIR/ok; sleep 60"
    assert _cli(repo, "spawn", "r", "--command", command).returncode == 0
    wait_until((repo / ".cockpit" / "agents" / "r" / "tmp" / "ok").exists, message="agent committed")
    assert _cli(repo, "respawn", "r", crash=f"respawn:{step}").returncode == -9
    listing = _cli(repo, "ls", "--json")
    assert listing.returncode == 0, listing.stderr
    agents = {a["name"]: a for a in json.loads(listing.stdout)}
    branches = {b.strip("*+ ") for b in git(repo, "branch", "--list", "cockpit/*").splitlines()}
    worktree = repo / ".cockpit" / "worktrees" / "r"
    if "r" in agents and agents["r"]["state"] != "missing":
        assert worktree.is_dir() and branches == {agents["r"]["branch"]}
    else:
        assert not worktree.exists() and branches == set()
    subprocess.run(["git", "fsck", "--no-progress"], cwd=repo, check=True, capture_output=True)
    archive = git(repo, "for-each-ref", "--format=%(refname)", "refs/cockpit/archive/r/")
    assert archive and git(repo, "log", "-1", "--format=%s", f"{archive.splitlines()[0]}^") == "mine"
