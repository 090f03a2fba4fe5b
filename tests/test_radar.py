"""The conflict radar against real git, real tmux and real agents: which agents would conflict if
merged (with each other and with base), from their committed, uncommitted and untracked work,
without touching their worktrees; incremental rounds; ls, check, notifications and the queue."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.core import radar
from cockpit.core.fleet import Fleet
from cockpit.core.layout import snapshot_ref
from cockpit.core.queue import MergeQueue, enqueue
from conftest import git, wait_until

pytestmark = pytest.mark.tmux

LINES = "".join(f"line {i}\n" for i in range(1, 31))


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture
def quiet(repo: Path) -> Fleet:
    """A fleet whose watcher runs no radar round during the test (its first comes one
    ``radar_interval`` after it starts): the test drives the rounds itself. ``src/app.py``
    holds 30 numbered lines."""
    (repo / "src" / "app.py").write_text(LINES)
    git(repo, "commit", "-qam", "thirty lines")
    (repo / "cockpit.toml").write_text("[cockpit]\nradar_interval = 3600\n")
    return Fleet(repo)


def log_text(fleet: Fleet, name: str) -> str:
    path = fleet.layout.session_log(name)
    return path.read_bytes().decode(errors="replace") if path.exists() else ""


def agent(fleet: Fleet, name: str, script: str = "") -> Path:
    """A real agent that runs ``script`` (sh, in its worktree), says READY and stays up."""
    fleet.spawn(name, command=f"{script}\necho READY; exec sleep 600" if script else "echo READY; exec sleep 600")
    wait_until(lambda: "READY" in log_text(fleet, name), message=f"{name} ready")
    return fleet.layout.worktree(name)


def edit_line(number: int, text: str, path: str = "src/app.py") -> str:
    """sh: replace line ``number`` of ``path``."""
    return f"sed -i {shlex.quote(f's/^line {number}$/{text}/')} {shlex.quote(path)}"


def by_name(fleet: Fleet) -> dict:
    return {a.name: a for a in fleet.agents(ownership=True)}


def withs(conflicts: list[dict] | None) -> dict[str, list[str]]:
    assert conflicts is not None
    return {c["with"]: c["paths"] for c in conflicts}


def cockpit(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=repo, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def state_bytes(fleet: Fleet, name: str) -> dict[str, object]:
    """Everything of an agent's a prediction must leave alone: every file of its worktree (bytes
    and mtime), its index (bytes and mtime), HEAD, and every ref but cockpit's snapshots."""
    worktree = fleet.layout.worktree(name)
    files = {}
    for path in sorted(worktree.rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(worktree).parts[:1]:
            files[str(path.relative_to(worktree))] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                     path.stat().st_mtime_ns)
    gitdir = Path(git(worktree, "rev-parse", "--absolute-git-dir"))
    index = gitdir / "index"
    refs = [line for line in git(fleet.root, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
            if not line.startswith("refs/cockpit/snapshot/")]
    packed = fleet.root / ".git" / "packed-refs"
    return {"files": files, "index": (index.read_bytes(), index.stat().st_mtime_ns),
            "HEAD": (gitdir / "HEAD").read_bytes(), "refs": refs,
            "packed": packed.read_bytes() if packed.exists() else None,
            "status": subprocess.run(["git", "status", "--porcelain=v1", "--untracked-files=all"], cwd=worktree,
                                     env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # (no index refresh)
                                     capture_output=True, text=True, check=True).stdout}


# -- what conflicts ------------------------------------------------------------------------------
def test_same_lines_conflict_same_file_elsewhere_overlaps_other_files_nothing(quiet: Fleet) -> None:
    fleet = quiet
    agent(fleet, "api", f"{edit_line(5, 'api five')}\n{edit_line(6, 'api six')}\ngit commit -qam api")
    agent(fleet, "web", edit_line(5, "web five"))  # the same line, uncommitted
    agent(fleet, "docs", edit_line(25, "docs 25"))  # the same file, far away
    agent(fleet, "misc", "echo notes > NOTES.md")  # another file, untracked
    done = radar.Radar(fleet).run_round()
    assert done.merge_trees == 4 + 6  # each against base, and the six pairs
    agents = by_name(fleet)
    assert withs(agents["api"].conflicts) == {"web": ["src/app.py"]}
    assert withs(agents["web"].conflicts) == {"api": ["src/app.py"]}
    lines = {c["with"]: c["lines"] for c in agents["api"].conflicts + agents["web"].conflicts}
    assert lines == {"web": {"src/app.py": [[5, 6]]}, "api": {"src/app.py": [[5, 5]]}}
    # docs changed the same file in another region: a collision ("overlap") and no conflict
    assert agents["docs"].conflicts == [] and {c["path"] for c in agents["docs"].collisions} == {"src/app.py"}
    assert agents["misc"].conflicts == [] and agents["misc"].collisions == []
    # one event per new conflicting pair, naming both sides
    events = [e for e in fleet.events.all() if e.type == "conflict.predicted"]
    assert [(e.agent, e.data["with"], e.data["paths"]) for e in events] == [("api", "web", ["src/app.py"])]
    assert done.new == [{"agent": "api", "with": "web", "paths": ["src/app.py"]}]


def test_untracked_and_uncommitted_work_counts(quiet: Fleet) -> None:
    fleet = quiet
    agent(fleet, "one", "printf 'one\\n' > new.py")  # untracked, never added
    agent(fleet, "two", "printf 'two\\n' > new.py; git add new.py")  # staged, not committed
    radar.Radar(fleet).run_round()
    agents = by_name(fleet)
    assert withs(agents["one"].conflicts) == {"two": ["new.py"]}
    assert withs(agents["two"].conflicts) == {"one": ["new.py"]}


def test_conflict_with_base_and_after_one_merges_the_other_conflicts_with_base(quiet: Fleet) -> None:
    fleet = quiet
    agent(fleet, "first", f"{edit_line(3, 'first')}\ngit commit -qam first")
    agent(fleet, "second", f"{edit_line(3, 'second')}\ngit commit -qam second")
    agent(fleet, "late", f"{edit_line(20, 'late')}\ngit commit -qam late")
    radar.Radar(fleet).run_round()
    agents = by_name(fleet)
    assert withs(agents["second"].conflicts) == {"first": ["src/app.py"]}
    assert withs(agents["late"].conflicts) == {}
    # The user edits base where late works: late now conflicts with base (":base", not an agent).
    (fleet.root / "src" / "app.py").write_text(LINES.replace("line 20\n", "main 20\n"))
    git(fleet.root, "commit", "-qam", "main moves on")
    radar.Radar(fleet).run_round()
    assert withs(by_name(fleet)["late"].conflicts) == {":base": ["src/app.py"]}

    enqueue(fleet, ["first"])
    said: list[str] = []
    outcomes = MergeQueue(fleet, report=lambda o: said.append(o.message)).run()
    assert [o.state for o in outcomes] == ["merged"]
    # The queue ended with a radar round on the new base: no one ran one by hand.
    agents = by_name(fleet)
    assert agents["first"].conflicts is None  # merged: no longer predicted
    assert withs(agents["second"].conflicts) == {":base": ["src/app.py"]}
    check = cockpit(fleet.root, "check", "--agent", "second")
    assert check.returncode == 1 and "second: conflict with base main: src/app.py (lines 3)" in check.stdout


def test_rename_against_an_edit(quiet: Fleet) -> None:
    fleet = quiet
    agent(fleet, "mover", "git mv src/app.py src/core.py")  # staged rename, uncommitted
    agent(fleet, "editor", edit_line(5, "edited"))
    agent(fleet, "both", f"git mv src/app.py src/main.py\n{edit_line(5, 'both', 'src/main.py')}\n"
                         "git commit -qm both")
    radar.Radar(fleet).run_round()
    agents = by_name(fleet)
    # mover and editor: git follows the rename, the edit lands in src/core.py: overlap only
    assert "mover" not in withs(agents["editor"].conflicts)
    assert {c["path"] for c in agents["mover"].collisions} >= {"src/app.py"}
    # a rename and an edit of the same line conflict; two renames of one file conflict
    assert withs(agents["both"].conflicts)["editor"] == ["src/main.py"]
    assert set(withs(agents["both"].conflicts)["mover"]) == {"src/app.py", "src/core.py", "src/main.py"}


def test_a_binary_file_conflicts_without_line_ranges(quiet: Fleet) -> None:
    fleet = quiet
    (fleet.root / "logo.bin").write_bytes(b"\x00\x01\x02 original")
    git(fleet.root, "add", "logo.bin")
    git(fleet.root, "commit", "-qm", "a binary file")
    agent(fleet, "red", "printf '\\000red' > logo.bin")
    agent(fleet, "blue", "printf '\\000blue' > logo.bin")
    radar.Radar(fleet).run_round()
    red = by_name(fleet)["red"].conflicts
    assert red == [{"with": "blue", "paths": ["logo.bin"], "lines": {}}]


# -- never touching the agents ---------------------------------------------------------------------
def test_a_round_leaves_worktree_index_head_and_refs_byte_identical(quiet: Fleet) -> None:
    fleet = quiet
    script = (f"{edit_line(2, 'staged')}\ngit add src/app.py\n{edit_line(9, 'unstaged')}\n"
              "printf 'new\\n' > untracked.txt\nrm README.md")
    agent(fleet, "a", script)
    agent(fleet, "b", f"{edit_line(2, 'other')}\ngit commit -qam b")
    before = {name: state_bytes(fleet, name) for name in "ab"}
    done = radar.Radar(fleet).run_round()
    after = {name: state_bytes(fleet, name) for name in "ab"}
    assert done.snapshots == 2 and withs(done.agents["a"]) == {"b": ["src/app.py"]}
    assert after == before
    # the snapshot holds the whole state (staged, unstaged, untracked, the deletion) on top of HEAD
    snap = git(fleet.root, "rev-parse", snapshot_ref("a"))
    assert git(fleet.root, "rev-parse", f"{snap}^") == git(fleet.layout.worktree("a"), "rev-parse", "HEAD")
    assert git(fleet.root, "show", f"{snap}:untracked.txt") == "new"
    assert "unstaged" in git(fleet.root, "show", f"{snap}:src/app.py")
    assert "README.md" not in git(fleet.root, "ls-tree", "--name-only", snap).split()


def test_discard_removes_the_snapshot_ref(quiet: Fleet) -> None:
    fleet = quiet
    agent(fleet, "gone", "echo x > x.txt")
    radar.Radar(fleet).run_round()
    assert git(fleet.root, "for-each-ref", snapshot_ref("gone"))
    fleet.discard("gone")
    assert git(fleet.root, "for-each-ref", "refs/cockpit/snapshot/") == ""
    assert git(fleet.root, "for-each-ref", "refs/cockpit/archive/gone/")  # the archive is the record


# -- incremental and bounded ---------------------------------------------------------------------------
def test_rounds_are_incremental_and_cached_by_snapshot(quiet: Fleet) -> None:
    fleet = quiet
    for i, name in enumerate(("p", "q", "r", "s")):
        agent(fleet, name, edit_line(3 + 5 * i, name))
    first = radar.Radar(fleet)
    assert first.run_round().merge_trees == 4 + 6
    again = first.run_round()
    assert (again.merge_trees, again.snapshots) == (0, 0)  # nothing changed: no merge-tree, no snapshot
    # a restarted watcher starts from the last round: still nothing to run
    restarted = radar.Radar(fleet)
    assert restarted.run_round().merge_trees == 0
    # one agent edits a file: only its snapshot and its pairs (3 agents, base) run again
    (fleet.layout.worktree("q") / "src" / "app.py").write_text(LINES.replace("line 14\n", "q again\n"))
    after = restarted.run_round()
    assert (after.merge_trees, after.snapshots) == (4, 1)
    assert withs(by_name(fleet)["q"].conflicts) == {"r": ["src/app.py"]}  # line 14 touches r's line 13


def test_a_round_goes_on_over_several_budgeted_steps(quiet: Fleet) -> None:
    fleet = quiet
    for name in ("x", "y", "z"):
        agent(fleet, name, edit_line(7, name))
    work = radar.Radar(fleet, interval=1000)
    steps, done = 0, None
    while done is None:
        done = work.step(budget=0, now=0)  # one unit of work per step
        steps += 1
    assert steps > 3 and withs(done.agents["x"]) == {"y": ["src/app.py"], "z": ["src/app.py"]}
    assert work.step(budget=0, now=1) is None  # the next round waits for the interval
    assert work.step(budget=10, now=1000) is not None


# -- where git is too old -----------------------------------------------------------------------------
def test_git_older_than_2_38_says_so_once_and_conflicts_are_unknown(quiet: Fleet) -> None:
    fleet = quiet
    agent(fleet, "a", edit_line(4, "a"))
    agent(fleet, "b", edit_line(4, "b"))
    old = radar.Radar(fleet, git_version=lambda: (2, 37))
    old.run_round()
    old.run_round()
    assert [e.data["reason"] for e in fleet.events.all() if e.type == "radar.unsupported"] == [
        "conflict prediction needs git >= 2.38 (this is git 2.37)"]
    listing = json.loads(cockpit(fleet.root, "ls", "--json").stdout)
    assert [a["conflicts"] for a in listing] == [None, None]  # unknown, never [] ("no conflicts")
    check = cockpit(fleet.root, "check", "--json")
    assert [a["conflicts"] for a in json.loads(check.stdout)] == [None, None]
    assert "needs git >= 2.38" in check.stderr


def test_ls_and_check_read_the_last_round_and_never_predict(quiet: Fleet) -> None:
    fleet = quiet
    agent(fleet, "a", edit_line(4, "a"))
    agent(fleet, "b", edit_line(4, "b"))
    listing = json.loads(cockpit(fleet.root, "ls", "--json").stdout)
    assert [a["conflicts"] for a in listing] == [None, None]  # no round yet: unknown
    assert not fleet.layout.radar.exists()
    check = cockpit(fleet.root, "check")
    assert "unknown: not predicted yet" in check.stderr
    radar.Radar(fleet).run_round()
    listing = {a["name"]: a for a in json.loads(cockpit(fleet.root, "ls", "--json").stdout)}
    assert listing["a"]["conflicts"] == [{"with": "b", "paths": ["src/app.py"], "lines": {"src/app.py": [[4, 4]]}}]
    table = cockpit(fleet.root, "ls").stdout
    assert "1 conflict(s)" in table
    check = cockpit(fleet.root, "check")
    assert check.returncode == 1 and "a: conflict with b: src/app.py (lines 4)" in check.stdout


# -- the watcher ------------------------------------------------------------------------------------
def test_the_watcher_predicts_records_and_notifies(repo: Path) -> None:
    (repo / "src" / "app.py").write_text(LINES)
    git(repo, "commit", "-qam", "thirty lines")
    (repo / "cockpit.toml").write_text("[cockpit]\nradar_interval = 0.5\nnotify_command = \"cat >> notes.jsonl\"\n")
    fleet = Fleet(repo)
    agent(fleet, "api", edit_line(11, "api"))
    agent(fleet, "web", "")

    def predicted() -> list[dict] | None:
        return by_name(fleet)["web"].conflicts

    wait_until(lambda: predicted() == [], timeout=30, message="a round of the watcher's with both")
    (fleet.layout.worktree("web") / "src" / "app.py").write_text(LINES.replace("line 11\n", "web\n"))
    with fleet.layout.session_log("web").open("a") as out:  # as an agent says what it did (a silent
        out.write("edited src/app.py\n")                   # edit waits for RADAR_IDLE_S: test_watch)
    wait_until(lambda: predicted(), timeout=30, message="the watcher's round")
    assert withs(predicted()) == {"api": ["src/app.py"]}
    events = [e for e in fleet.events.all() if e.type == "conflict.predicted"]
    assert [(e.agent, e.data["with"]) for e in events] == [("web", "api")]  # web made it: web's event
    wait_until(lambda: (repo / "notes.jsonl").exists() and "conflict.predicted" in (repo / "notes.jsonl").read_text(),
               timeout=30, message="the notification")
    note = json.loads((repo / "notes.jsonl").read_text().splitlines()[-1])
    assert note["agent"] == "web" and note["data"]["with"] == "api"


def test_the_watcher_predicts_once_more_before_it_ends(quiet: Fleet) -> None:
    """Agents that finish before any round (the first comes an hour in, here) are still
    predicted: the watcher runs one last round when no agent is live, then ends."""
    from cockpit.core import watch
    fleet = quiet
    for name in ("one", "two"):
        fleet.spawn(name, command=f"{edit_line(17, name)}; git commit -qam {name}")
    wait_until(lambda: not watch.running(fleet), timeout=60, message="the watcher ended")
    agents = by_name(fleet)
    assert [a.state for a in agents.values()] == ["exited", "exited"]
    assert withs(agents["one"].conflicts) == {"two": ["src/app.py"]}


# -- the merge queue ---------------------------------------------------------------------------------
def test_merge_says_predicted_conflicts_first_and_reorder_puts_clean_ones_first(quiet: Fleet) -> None:
    fleet = quiet
    agent(fleet, "aa", f"{edit_line(8, 'aa')}\ngit commit -qam aa")
    agent(fleet, "bb", f"{edit_line(20, 'bb')}\ngit commit -qam bb")
    agent(fleet, "cc", f"{edit_line(20, 'cc')}\ngit commit -qam cc")
    (fleet.root / "src" / "app.py").write_text(LINES.replace("line 8\n", "main 8\n"))
    git(fleet.root, "commit", "-qam", "main edits line 8")
    result = cockpit(fleet.root, "merge", "aa", "bb", "cc", "--reorder")
    lines = result.stdout.splitlines()
    predicted = lines.index("aa: predicted to conflict with main in src/app.py")
    landed = [i for i, line in enumerate(lines) if ": merged into main" in line]
    assert predicted < landed[0] and lines[landed[0]].startswith("bb: merged")  # aa's turn went to bb
    # after bb landed, cc is re-checked against the new base, before it is built
    recheck = lines.index("cc: predicted to conflict with main in src/app.py (after bb landed)")
    assert recheck > landed[0]
    # both left conflict now: the order given again
    assert lines[-2:] == ["aa: conflict in src/app.py; base unchanged", "cc: conflict in src/app.py; base unchanged"]
    assert result.returncode == 1


def test_merge_keeps_the_order_given_without_reorder(quiet: Fleet) -> None:
    fleet = quiet
    agent(fleet, "aa", f"{edit_line(8, 'aa')}\ngit commit -qam aa")
    agent(fleet, "bb", f"{edit_line(20, 'bb')}\ngit commit -qam bb")
    (fleet.root / "src" / "app.py").write_text(LINES.replace("line 8\n", "main 8\n"))
    git(fleet.root, "commit", "-qam", "main edits line 8")
    lines = cockpit(fleet.root, "merge", "aa", "bb").stdout.splitlines()
    assert lines[2:] == ["aa: predicted to conflict with main in src/app.py",
                         "aa: conflict in src/app.py; base unchanged",
                         f"bb: merged into main at {git(fleet.root, 'rev-parse', 'main')[:12]} (rebase)"]


def test_radar_interval_is_validated(tmp_path: Path) -> None:
    from cockpit.core.errors import ConfigError
    from cockpit.core.spec import load_config
    path = tmp_path / "cockpit.toml"
    for bad in ("-1", "inf", "\"often\""):
        path.write_text(f"[cockpit]\nradar_interval = {bad}\n")
        with pytest.raises(ConfigError, match="radar_interval"):
            load_config(path)
    path.write_text("[cockpit]\nradar_interval = 0\n")
    assert load_config(path).radar_interval == 0


def test_describe_a_predicted_conflict() -> None:
    from cockpit.core.notify import describe
    note = {"type": "conflict.predicted", "agent": "api", "data": {"with": ":base", "paths": ["a.py"], "base": "main"}}
    assert describe(note) == ("cockpit: api", "would conflict with main in a.py")
    note = {"type": "conflict.predicted", "agent": "api", "data": {"with": "web", "paths": ["a.py", "b.py"]}}
    assert describe(note) == ("cockpit: api", "would conflict with web in a.py, b.py")

