"""The merge queue against real git and tmux: order, gates, conflicts, a moving base, a dirty
main checkout, crashes at every step, and a queue that outlives the process running it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import tomli_w

from cockpit.core.errors import ConfigError
from cockpit.core.fleet import Fleet
from cockpit.core.queue import MergeQueue, Outcome, enqueue, pending
from cockpit.core.spec import load_config
from conftest import git, tree_hashes, wait_until

pytestmark = pytest.mark.tmux


# -- helpers -------------------------------------------------------------------------------------
def configure(repo: Path, **cockpit: object) -> None:
    """Write cockpit.toml and commit it."""
    (repo / "cockpit.toml").write_text(tomli_w.dumps({"cockpit": cockpit}))
    git(repo, "add", "cockpit.toml")
    git(repo, "commit", "-qm", "cockpit config")


def log_text(fleet: Fleet, name: str) -> str:
    path = fleet.layout.session_log(name)
    return path.read_bytes().decode(errors="replace") if path.exists() else ""


def spawn_committer(fleet: Fleet, tmp_path: Path, name: str, files: dict[str, str], commits: int = 1,
                    after: str = "") -> None:
    """An agent that writes ``files``, commits them (in ``commits`` commits), runs ``after``
    (sh), prints DONE and sleeps."""
    lines = ["set -e"]
    items = list(files.items())
    for index in range(commits):
        for path, content in items[index::commits]:
            lines.append(f"mkdir -p \"$(dirname {shlex.quote(path)})\"")
            lines.append(f"printf %s {shlex.quote(content)} > {shlex.quote(path)}")
        lines += ["git add -A", f"git commit -qm {shlex.quote(f'{name}: part {index + 1}')}"]
    lines += [after, "echo DONE", "exec sleep 600"]
    script = tmp_path / f"agent-{name}.sh"
    script.write_text("\n".join(lines) + "\n")
    fleet.spawn(name, command=f"sh {script}")
    wait_until(lambda: "DONE" in log_text(fleet, name), message=f"{name} committed")


def run_queue(fleet: Fleet, names: list[str]) -> dict[str, object]:
    enqueue(fleet, names)
    lines: list[str] = []
    outcomes = MergeQueue(fleet, report=lambda outcome: lines.append(outcome.message)).run()
    return {"outcomes": {o.name: o for o in outcomes}, "lines": lines}


def cockpit(repo: Path, *args: str, crash: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {})}
    if crash:
        full["COCKPIT_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=repo, capture_output=True, text=True,
                          env=full, stdin=subprocess.DEVNULL, timeout=timeout)


def ls(repo: Path) -> dict[str, dict]:
    result = cockpit(repo, "ls", "--json")
    assert result.returncode == 0, result.stderr
    return {a["name"]: a for a in json.loads(result.stdout)}


def main_sha(repo: Path) -> str:
    return git(repo, "rev-parse", "main")


def assert_no_scratch(repo: Path) -> None:
    scratch = repo / ".cockpit" / "merge"
    assert not scratch.exists() or not any(scratch.iterdir())
    assert ".cockpit/merge" not in git(repo, "worktree", "list")


def files_on(repo: Path, ref: str = "main") -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", ref).splitlines())


# -- the queue -----------------------------------------------------------------------------------
def test_three_agents_merge_in_queue_order_with_linear_history(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    order = tmp_path / "gate-order.txt"
    configure(repo, gates=[f'echo "$COCKPIT_MERGE_AGENT" >> {order}', "test -f README.md"])
    for name in ("a", "b", "c"):
        spawn_committer(fleet, tmp_path, name, {f"{name}/one.txt": f"{name} 1\n", f"{name}/two.txt": f"{name} 2\n"},
                        commits=2)
    tips = {n: git(repo, "rev-parse", f"cockpit/{n}") for n in "abc"}
    trees = {n: tree_hashes(fleet.layout.worktree(n)) for n in "abc"}
    start = main_sha(repo)

    enqueue(fleet, ["b", "c", "a"])
    assert [(e.position, e.name, e.state) for e in pending(fleet)] == [(1, "b", "queued"), (2, "c", "queued"),
                                                                         (3, "a", "queued")]
    assert {a.name: a.state for a in fleet.agents()} == {"a": "queued", "b": "queued", "c": "queued"}
    result = run_queue(fleet, [])
    outcomes = result["outcomes"]
    assert [o.state for o in outcomes.values()] == ["merged"] * 3
    assert list(outcomes) == ["b", "c", "a"]
    assert order.read_text().split() == ["b", "c", "a"]  # each through the gates, in queue order

    # Linear: no merge commits, first-parent history is the whole history, in queue order.
    assert git(repo, "rev-list", "--merges", f"{start}..main") == ""
    subjects = git(repo, "log", "--format=%s", f"{start}..main").splitlines()
    assert subjects == ["a: part 2", "a: part 1", "c: part 2", "c: part 1", "b: part 2", "b: part 1"]
    assert {f"{n}/{f}.txt" for n in "abc" for f in ("one", "two")} <= files_on(repo)
    # The main checkout followed, and is clean; agents' branches and worktrees are untouched.
    assert (repo / "a" / "two.txt").read_text() == "a 2\n" and git(repo, "status", "--porcelain") == ""
    for n in "abc":
        assert git(repo, "rev-parse", f"cockpit/{n}") == tips[n]
        assert tree_hashes(fleet.layout.worktree(n)) == trees[n]
    agents = {a.name: a for a in fleet.agents()}
    assert agents["a"].state == "merged" and agents["a"].merge["commit"] == main_sha(repo)
    assert pending(fleet) == []
    # The others' tiles can show that base moved: b landed first as is, c and a were rebased.
    assert (fleet.base_moved("b"), fleet.base_moved("c"), fleet.base_moved("a")) == (4, 6, 6)
    assert_no_scratch(repo)
    assert "gate: test -f README.md" in (repo / ".cockpit" / "agents" / "a" / "merge.log").read_text()


def test_the_queue_reports_outcome_objects_not_lines(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    """Views pick how to show a report from its state, never by searching its text (the TUI
    used to look for ': merged ' in a line)."""
    spawn_committer(fleet, tmp_path, "first", {"README.md": "first's line\n"})
    spawn_committer(fleet, tmp_path, "second", {"README.md": "second's line\n"})
    enqueue(fleet, ["first", "second"])
    reports: list[Outcome] = []
    outcomes = MergeQueue(fleet, report=reports.append).run()
    assert [o for o in reports if o.final] == outcomes
    assert [(o.name, o.state, o.final, o.succeeded) for o in reports] == [
        ("first", "merged", True, True), ("second", "predicted", False, False), ("second", "conflict", True, False)]
    assert reports[0].message == f"first: merged into main at {main_sha(repo)[:12]} (rebase)"
    assert reports[1].message == "second: predicted to conflict with main in README.md (after first landed)"
    assert reports[2].message == "second: conflict in README.md; base unchanged"
    assert not Outcome("x", "blocked", reason="y: merged into main at 0123").succeeded
    news = Outcome("x", "rebuilding", reason="main moved to 0123 while gating", base="main")
    assert not news.final and not news.succeeded
    assert news.message == "x: main moved to 0123 while gating; rebuilding on the new tip"


def test_same_lines_conflict_leaves_base_with_the_first(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    spawn_committer(fleet, tmp_path, "first", {"README.md": "first's line\n"})
    spawn_committer(fleet, tmp_path, "second", {"README.md": "second's line\n", "other.txt": "x\n"})
    second_tip = git(repo, "rev-parse", "cockpit/second")
    outcomes = run_queue(fleet, ["first", "second"])["outcomes"]
    assert outcomes["first"].state == "merged"
    conflict = outcomes["second"]
    assert conflict.state == "conflict" and conflict.paths == ["README.md"]
    assert git(repo, "show", "main:README.md") == "first's line"
    assert "other.txt" not in files_on(repo)
    assert git(repo, "rev-parse", "cockpit/second") == second_tip
    second = fleet.agent("second")
    assert second.state == "conflict" and second.merge["paths"] == ["README.md"]
    assert git(repo, "status", "--porcelain") == ""
    assert_no_scratch(repo)


def test_failing_gate_rejects_and_base_is_unchanged(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    configure(repo, gates=["true", "echo checking; echo 'boom: 1 test failed' >&2; exit 3"])
    spawn_committer(fleet, tmp_path, "bad", {"bad.txt": "bad\n"})
    before = main_sha(repo)
    outcome = run_queue(fleet, ["bad"])["outcomes"]["bad"]
    assert outcome.state == "rejected" and outcome.reason == "exit 3"
    assert outcome.gate.startswith("echo checking") and "boom: 1 test failed" in outcome.tail
    assert main_sha(repo) == before and not (repo / "bad.txt").exists()
    agent = ls(repo)["bad"]
    assert agent["state"] == "rejected"
    assert set(agent["merge"]) == {"reason", "paths", "gate", "tail", "commit"}
    assert "boom" in agent["merge"]["tail"] and agent["merge"]["commit"] is None
    assert "boom: 1 test failed" in (repo / ".cockpit" / "agents" / "bad" / "merge.log").read_text()
    assert_no_scratch(repo)


def test_gates_run_on_base_plus_the_candidate(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    configure(repo, gates=["! { test -f one.txt && test -f two.txt; }"])
    spawn_committer(fleet, tmp_path, "one", {"one.txt": "1\n"})
    spawn_committer(fleet, tmp_path, "two", {"two.txt": "2\n"})
    outcomes = run_queue(fleet, ["one", "two"])["outcomes"]
    assert outcomes["one"].state == "merged" and outcomes["two"].state == "rejected"
    assert "one.txt" in files_on(repo) and "two.txt" not in files_on(repo)


def test_a_commit_made_on_base_while_a_gate_runs_survives(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    marker, runs = tmp_path / "marker", tmp_path / "runs"
    configure(repo, gates=[f"echo run >> {runs}; while [ ! -f {marker} ]; do sleep 0.05; done"])
    spawn_committer(fleet, tmp_path, "slow", {"slow.txt": "slow\n"})
    enqueue(fleet, ["slow"])
    lines: list[str] = []
    result: list = []
    runner = threading.Thread(target=lambda: result.append(
        MergeQueue(fleet, report=lambda outcome: lines.append(outcome.message)).run()))
    runner.start()
    try:
        wait_until(lambda: runs.exists(), message="the gate runs")
        (repo / "user.txt").write_text("the user's work\n")
        git(repo, "add", "user.txt")
        git(repo, "commit", "-qm", "user commit on base")
        user_commit = main_sha(repo)
        marker.write_text("go")
    finally:
        marker.write_text("go")
        runner.join(60)
    assert not runner.is_alive()
    [outcome] = result[0]
    assert outcome.state == "merged"
    assert runs.read_text().split() == ["run", "run"]  # rebuilt on the new tip and gated again
    assert any("rebuilding" in line for line in lines)
    assert git(repo, "merge-base", "--is-ancestor", user_commit, "main") == ""
    assert {"user.txt", "slow.txt"} <= files_on(repo)
    assert git(repo, "log", "-1", "--format=%s", "main") == "slow: part 1"
    assert git(repo, "status", "--porcelain") == ""


def test_the_users_files_in_the_way_block_the_merge_and_are_named(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    spawn_committer(fleet, tmp_path, "w", {"w.txt": "w\n", "README.md": "agent's readme\n", "dir/sub.txt": "sub\n"})
    (repo / "README.md").write_text("my uncommitted edit\n")  # a change to a file the commits change
    (repo / "w.txt").write_text("my own w.txt\n")              # untracked, where the commits add one
    (repo / "dir").write_text("a file where the commits need a directory\n")
    (repo / "notes.txt").write_text("my untracked notes\n")    # not in the way
    before, files = main_sha(repo), tree_hashes(repo)
    outcome = run_queue(fleet, ["w"])["outcomes"]["w"]
    assert outcome.state == "blocked" and outcome.paths == ["README.md", "dir", "w.txt"]
    assert outcome.reason == ("main checkout: landing would overwrite README.md (uncommitted change), dir (untracked), "
                              "w.txt (untracked); commit, move or remove them, then merge again")
    assert main_sha(repo) == before and tree_hashes(repo) == files  # the user's work is untouched
    assert fleet.agent("w").state == "blocked" and fleet.agent("w").merge["paths"] == outcome.paths
    assert_no_scratch(repo)

    git(repo, "checkout", "README.md")
    (repo / "w.txt").unlink()
    (repo / "dir").unlink()
    assert run_queue(fleet, ["w"])["outcomes"]["w"].state == "merged"
    assert (repo / "w.txt").read_text() == "w\n" and (repo / "dir" / "sub.txt").read_text() == "sub\n"
    assert (repo / "notes.txt").read_text() == "my untracked notes\n"
    assert git(repo, "status", "--porcelain") == "?? notes.txt"


def test_untracked_config_and_unrelated_edits_do_not_block_and_are_kept(fleet: Fleet, repo: Path,
                                                                         tmp_path: Path) -> None:
    """The cockpit.toml `cockpit init` wrote, the user's edits elsewhere (staged or not) and their
    untracked files: a fast-forward keeps every one of them exactly as it was."""
    init = cockpit(repo, "init")
    assert init.returncode == 0, init.stderr
    spawn_committer(fleet, tmp_path, "w", {"w.txt": "w\n"})
    (repo / "src" / "app.py").write_text("print('my edit, not staged')\n")
    (repo / "README.md").write_text("my edit, staged\n")
    git(repo, "add", "README.md")
    (repo / "staged-new.txt").write_text("new, staged\n")
    git(repo, "add", "staged-new.txt")
    (repo / "notes").mkdir()
    (repo / "notes" / "todo.txt").write_text("untracked\n")
    status, files = git(repo, "status", "--porcelain"), tree_hashes(repo)
    outcome = run_queue(fleet, ["w"])["outcomes"]["w"]
    assert outcome.state == "merged", outcome.reason
    assert main_sha(repo) == outcome.commit and git(repo, "rev-parse", "HEAD") == outcome.commit
    assert (repo / "w.txt").read_text() == "w\n"
    assert git(repo, "status", "--porcelain") == status  # staged stays staged, unstaged unstaged
    assert {k: v for k, v in tree_hashes(repo).items() if k != "w.txt"} == files
    assert git(repo, "diff", "--cached", "--name-only").splitlines() == ["README.md", "staged-new.txt"]


def test_an_ignored_file_in_the_way_blocks_instead_of_being_overwritten(fleet: Fleet, repo: Path,
                                                                        tmp_path: Path) -> None:
    """git's fast-forward overwrites ignored files without a word; cockpit does not let it."""
    (repo / ".gitignore").write_text("build/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-qm", "ignore build/")
    spawn_committer(fleet, tmp_path, "b", {"other.txt": "x\n"},
                    after="mkdir -p build && echo generated > build/out.js && git add -f build/out.js "
                          "&& git commit -qm 'commit a build file'")
    (repo / "build").mkdir()
    (repo / "build" / "out.js").write_text("my local build\n")
    before = main_sha(repo)
    outcome = run_queue(fleet, ["b"])["outcomes"]["b"]
    assert outcome.state == "blocked" and outcome.paths == ["build/out.js"]
    assert "build/out.js (ignored)" in outcome.reason
    assert main_sha(repo) == before and (repo / "build" / "out.js").read_text() == "my local build\n"


def test_commits_that_write_into_cockpits_own_directory_are_blocked(fleet: Fleet, repo: Path,
                                                                    tmp_path: Path) -> None:
    spawn_committer(fleet, tmp_path, "c", {"fine.txt": "fine\n"},
                    after="mkdir -p .cockpit && echo x > .cockpit/events.jsonl && "
                          "git add -f .cockpit/events.jsonl && git commit -qm 'sneak into .cockpit'")
    events = (repo / ".cockpit" / "events.jsonl").read_bytes()
    before = main_sha(repo)
    outcome = run_queue(fleet, ["c"])["outcomes"]["c"]
    assert outcome.state == "blocked" and outcome.paths == [".cockpit/events.jsonl"]
    assert outcome.reason.startswith("main checkout: the agent's commits write into .cockpit/, cockpit's own directory")
    assert main_sha(repo) == before and (repo / ".cockpit" / "events.jsonl").read_bytes().startswith(events)


def test_a_file_put_in_the_way_during_the_gates_blocks_and_nothing_moves(fleet: Fleet, repo: Path,
                                                                         tmp_path: Path) -> None:
    configure(repo, gates=['echo dirt > "$COCKPIT_REPO/late.txt"; echo other > "$COCKPIT_REPO/other.txt"'])
    spawn_committer(fleet, tmp_path, "late", {"late.txt": "late\n"})
    before = main_sha(repo)
    outcome = run_queue(fleet, ["late"])["outcomes"]["late"]
    assert outcome.state == "blocked" and outcome.paths == ["late.txt"]
    assert outcome.reason.startswith("main checkout: landing would overwrite late.txt (untracked)")
    assert main_sha(repo) == before and (repo / "late.txt").read_text() == "dirt\n"
    assert_no_scratch(repo)


def test_uncommitted_work_in_the_agent_blocks_it(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    spawn_committer(fleet, tmp_path, "u", {"done.txt": "done\n"}, after="echo wip > wip.txt")
    before = main_sha(repo)
    outcome = run_queue(fleet, ["u"])["outcomes"]["u"]
    assert outcome.state == "blocked" and outcome.paths == ["wip.txt"] and "uncommitted" in outcome.reason
    assert main_sha(repo) == before and (fleet.layout.worktree("u") / "wip.txt").exists()


@pytest.mark.parametrize("mode", ["merge", "squash"])
def test_merge_and_squash_modes(fleet: Fleet, repo: Path, tmp_path: Path, mode: str) -> None:
    configure(repo, merge=mode)
    spawn_committer(fleet, tmp_path, "m", {"m1.txt": "1\n", "m2.txt": "2\n"}, commits=2, )
    tip, before = git(repo, "rev-parse", "cockpit/m"), main_sha(repo)
    outcome = run_queue(fleet, ["m"])["outcomes"]["m"]
    assert outcome.state == "merged" and outcome.commit == main_sha(repo)
    parents = git(repo, "rev-list", "--parents", "-n", "1", "main").split()[1:]
    if mode == "merge":
        assert parents == [before, tip]
    else:
        assert parents == [before]
        body = git(repo, "log", "-1", "--format=%B", "main")
        assert body.startswith("m: ") and "* m: part 1" in body and "* m: part 2" in body
    assert {"m1.txt", "m2.txt"} <= files_on(repo)
    assert git(repo, "rev-parse", "cockpit/m") == tip


def test_gate_timeout_kills_the_gate_group_and_rejects(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    configure(repo, gates=[f"sleep 120 & echo $! >> {pids}; echo $$ >> {pids}; wait"], gate_timeout=1)
    spawn_committer(fleet, tmp_path, "t", {"t.txt": "t\n"})
    before = main_sha(repo)
    outcome = run_queue(fleet, ["t"])["outcomes"]["t"]
    assert outcome.state == "rejected" and outcome.reason == "timeout"
    assert main_sha(repo) == before
    for pid in map(int, pids.read_text().split()):
        wait_until(lambda: not Path(f"/proc/{pid}").exists()
                   or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3],
                   timeout=10, message=f"gate process {pid} gone")


def test_merge_state_lasts_until_respawn_and_requeue(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    spawn_committer(fleet, tmp_path, "r", {"r.txt": "r\n"})
    enqueue(fleet, ["r"])
    listed = ls(repo)["r"]
    assert listed["state"] == "queued" and listed["merge"] is None
    assert listed["process_state"] == "running" and fleet.agent("r").alive  # its process is untouched
    assert enqueue(fleet, ["r"]) == [("r", 1, False)]  # already waiting: keeps its place
    run_queue(fleet, [])
    assert fleet.agent("r").state == "merged"
    fleet.respawn("r", keep=True, command="sleep 600")
    agent = fleet.agent("r")
    assert agent.state == "running" and agent.merge is None
    # Already in base: queuing it again merges nothing new and says so.
    outcome = run_queue(fleet, ["r"])["outcomes"]["r"]
    assert outcome.state == "merged" and outcome.reason == "already in base"


def test_merge_config_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "cockpit.toml"
    path.write_text('[cockpit]\nmerge = "octopus"\n')
    with pytest.raises(ConfigError, match=r"cockpit.toml:2: cockpit.merge: expected one of: rebase, merge, squash"):
        load_config(path)
    path.write_text('[cockpit]\ngates = ["ok", 3]\n')
    with pytest.raises(ConfigError, match="cockpit.gates"):
        load_config(path)
    path.write_text('[cockpit]\ngate_timeout = 0\n')
    with pytest.raises(ConfigError, match="gate_timeout: must be 1 or more"):
        load_config(path)
    path.write_text('[cockpit]\ngates = ["python -m pytest -q"]\ngate_timeout = 30\nmerge = "squash"\n')
    config = load_config(path)
    assert (config.gates, config.gate_timeout, config.merge) == (("python -m pytest -q",), 30, "squash")
    assert load_config(tmp_path / "absent.toml").merge == "rebase"


# -- through the CLI: crashes, exit codes, quitting ---------------------------------------------
def test_cli_merge_exit_status_and_queue_json(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    configure(repo, gates=['test "$COCKPIT_MERGE_AGENT" != no'])
    spawn_committer(fleet, tmp_path, "yes", {"yes.txt": "y\n"})
    spawn_committer(fleet, tmp_path, "no", {"no.txt": "n\n"})
    result = cockpit(repo, "merge", "yes")
    assert result.returncode == 0 and "yes: merged into main" in result.stdout, result.stdout + result.stderr
    result = cockpit(repo, "merge", "yes", "no")
    assert result.returncode == 1 and "no: rejected by gate" in result.stdout
    assert cockpit(repo, "merge", "ghost").returncode == 1
    assert json.loads(cockpit(repo, "queue", "--json").stdout) == []
    assert cockpit(repo, "merge").stdout.strip() == "the merge queue is empty"


CRASH_STEPS = ["after-candidate", "during-gate", "after-gates", "before-ref", "after-ref"]


@pytest.mark.parametrize("step", CRASH_STEPS)
def test_sigkill_at_any_step_leaves_base_unchanged_or_fully_merged(fleet: Fleet, repo: Path, tmp_path: Path,
                                                                   step: str) -> None:
    pidfile = tmp_path / "gate.pid"
    # On the crashing run the gate lingers (its runner is dead); on the next it passes at once.
    configure(repo, gates=[f'if [ -n "$LINGER" ]; then echo $$ > {pidfile}; sleep 120; fi'])
    spawn_committer(fleet, tmp_path, "k", {"k.txt": "k\n", "k2.txt": "k2\n"}, commits=2)
    before = main_sha(repo)
    crashed = cockpit(repo, "merge", "k", crash=f"merge:{step}", env={"LINGER": "1"} if step == "during-gate" else {})
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr

    after = main_sha(repo)
    if after == before:
        assert not (repo / "k.txt").exists()
    else:  # the whole candidate, never part of it
        assert step == "after-ref"
        assert git(repo, "rev-list", "--count", f"{before}..main") == "2" and {"k.txt", "k2.txt"} <= files_on(repo)
        assert (repo / "k2.txt").exists()
    assert git(repo, "status", "--porcelain") == ""
    assert ls(repo)["k"]["state"] == "queued"
    if step == "during-gate":
        wait_until(pidfile.exists, message="the gate started")
        gate_pid = int(pidfile.read_text())
        assert Path(f"/proc/{gate_pid}").exists()

    resumed = cockpit(repo, "merge", "k")  # named again: it is still queued, and must end merged
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "k: already queued" in resumed.stdout and "k: merged into main" in resumed.stdout
    said = "finished" if step == "after-ref" else "abandoned"
    assert f"k: the merge interrupted by a crash was {said}" in resumed.stdout or (
        said == "finished" and "k: the merge interrupted by a crash had landed: finished it" in resumed.stdout)
    assert ls(repo)["k"]["state"] == "merged"
    assert git(repo, "rev-list", "--count", f"{before}..main") == "2"  # merged exactly once
    assert git(repo, "status", "--porcelain") == ""
    assert_no_scratch(repo)
    if step == "during-gate":
        wait_until(lambda: not Path(f"/proc/{gate_pid}").exists(), message="the orphaned gate was killed")


def test_queue_survives_quit_and_restart(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    marker, runs = tmp_path / "marker", tmp_path / "runs"
    configure(repo, gates=[f'echo "$COCKPIT_MERGE_AGENT" >> {runs}; while [ ! -f {marker} ]; do sleep 0.05; done'])
    for name in ("q1", "q2", "q3"):
        spawn_committer(fleet, tmp_path, name, {f"{name}.txt": f"{name}\n"})
    runner = subprocess.Popen([sys.executable, "-m", "cockpit", "merge", "q1", "q2"], cwd=repo, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: runs.exists(), message="q1's gate runs")
        queue = json.loads(cockpit(repo, "queue", "--json").stdout)
        assert [(e["position"], e["name"], e["state"]) for e in queue] == [(1, "q1", "merging"), (2, "q2", "queued")]
        assert all(e["queued_at"] for e in queue)
        # A second process only enqueues, and says so.
        second = cockpit(repo, "merge", "q3")
        assert second.returncode == 1 and "is running the merge queue" in second.stdout
        assert [e["name"] for e in json.loads(cockpit(repo, "queue", "--json").stdout)] == ["q1", "q2", "q3"]
        runner.send_signal(signal.SIGTERM)  # quit cockpit mid-gate
        out, _ = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert "q1: the merge interrupted was abandoned" in out
    before = main_sha(repo)
    assert "q1.txt" not in files_on(repo)
    fresh = Fleet(repo)  # a restarted cockpit
    assert [(e.name, e.state) for e in pending(fresh)] == [("q1", "queued"), ("q2", "queued"), ("q3", "queued")]

    marker.write_text("go")
    resumed = cockpit(repo, "merge")
    assert resumed.returncode == 0, resumed.stdout
    assert [line.split(":")[0] for line in resumed.stdout.splitlines() if "merged" in line] == ["q1", "q2", "q3"]
    assert git(repo, "log", "--format=%s", f"{before}..main").splitlines() == \
        ["q3: part 1", "q2: part 1", "q1: part 1"]
    assert pending(fresh) == []
    assert_no_scratch(repo)


# -- landing, directly ----------------------------------------------------------------------------
def test_land_is_a_fast_forward_compare_and_swap(repo: Path) -> None:
    from cockpit.core import candidate
    old = main_sha(repo)
    git(repo, "checkout", "-q", "-b", "elsewhere")  # main is now checked out nowhere
    git(repo, "commit", "-q", "--allow-empty", "-m", "next")
    new = git(repo, "rev-parse", "HEAD")
    git(repo, "commit", "-q", "--allow-empty", "-m", "unrelated")
    with pytest.raises(candidate.BaseMoved):  # base is not at the tip the candidate was built on
        candidate.land(repo, "main", new, git(repo, "rev-parse", "HEAD"), None, "test")
    with pytest.raises(Exception, match="not a fast-forward"):
        candidate.land(repo, "elsewhere", new, old, None, "test")
    assert main_sha(repo) == old
    candidate.land(repo, "main", old, new, None, "test")
    assert main_sha(repo) == new
    assert git(repo, "reflog", "-1", "--format=%gs", "main") == "test"


def test_land_in_a_checkout_moves_files_and_ref_together(repo: Path) -> None:
    from cockpit.core import candidate
    old = main_sha(repo)
    git(repo, "checkout", "-q", "-b", "side")
    (repo / "f.txt").write_text("f\n")
    git(repo, "add", "f.txt")
    git(repo, "commit", "-qm", "f")
    new = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    (repo / "README.md").write_text("dirty\n")  # not touched by the commit: kept, no obstacle
    (repo / "f.txt").write_text("mine\n")       # where the commit adds f.txt: in the way
    with pytest.raises(candidate.CheckoutNotClean) as refused:
        candidate.land(repo, "main", old, new, repo, "test")
    assert refused.value.paths == ["f.txt"] and "f.txt (untracked)" in str(refused.value)
    assert main_sha(repo) == old and (repo / "f.txt").read_text() == "mine\n"
    (repo / "f.txt").unlink()
    candidate.land(repo, "main", old, new, repo, "test")
    assert main_sha(repo) == new and (repo / "f.txt").read_text() == "f\n"
    assert (repo / "README.md").read_text() == "dirty\n" and git(repo, "status", "--porcelain") == "M README.md"


def test_base_checked_out_nowhere_lands_by_update_ref(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    spawn_committer(fleet, tmp_path, "n", {"n.txt": "n\n"})
    git(repo, "checkout", "-q", "-b", "mine")
    (repo / "mine.txt").write_text("uncommitted, on another branch\n")
    outcome = run_queue(fleet, ["n"])["outcomes"]["n"]
    assert outcome.state == "merged" and main_sha(repo) == outcome.commit
    assert "n.txt" in files_on(repo) and not (repo / "n.txt").exists()  # the checkout on 'mine' untouched
    assert git(repo, "branch", "--show-current") == "mine" and (repo / "mine.txt").exists()


def test_stopping_the_queue_keeps_the_candidate_queued(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    configure(repo, gates=[f"echo run >> {runs}; sleep 120"])
    spawn_committer(fleet, tmp_path, "s", {"s.txt": "s\n"})
    enqueue(fleet, ["s"])
    stop = threading.Event()
    result: list = []
    runner = threading.Thread(target=lambda: result.append(MergeQueue(fleet, stop=stop).run()))
    runner.start()
    wait_until(runs.exists, message="the gate runs")
    before = main_sha(repo)
    stop.set()  # the TUI is quitting
    runner.join(30)
    assert not runner.is_alive() and result == [[]]
    assert main_sha(repo) == before and [(e.name, e.state) for e in pending(fleet)] == [("s", "queued")]
    assert fleet.history().records["s"].merging is None
    assert_no_scratch(repo)
