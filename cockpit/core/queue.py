"""The merge queue: finished branches land on base one at a time, gated, never breaking base.

The queue lives in the event log (``merge.queued`` .. ``merge.merged``/``blocked``/``conflict``/
``rejected``, replayed by :mod:`cockpit.core.state`), so it survives any restart. One process at
a time runs it, holding ``.cockpit/queue.lock`` for the whole run; the repository lock is taken
only for the short checks and the ref move, so agents can be spawned, paused or killed while a
gate runs. For each candidate, in queue order:

1. uncommitted changes in the agent's worktree (untracked files included) -> ``blocked``;
2. a detached scratch worktree under ``.cockpit/merge/`` at base's tip gets the agent's commits
   (rebase, merge or squash); a conflict -> ``conflict`` with the paths. If base is checked out
   (the main checkout) and landing would overwrite something of the user's there -> ``blocked``,
   naming the files (:func:`cockpit.core.candidate.checkout_blockers`; anything else of theirs is
   no obstacle). Then the gates run there, output appended to the agent's ``merge.log``; a red
   gate -> ``rejected``;
3. base advances by fast-forward only, from the tip the candidate was built on; if base moved
   meanwhile, the candidate is rebuilt on the new tip and gated again;
4. the scratch worktree is removed, whatever happened.

Before building, the queue says which candidates ``git merge-tree`` predicts to conflict with
base (news ``predicted``), and says it again for those whose prediction changed after each
landing (:class:`cockpit.core.radar.CandidateCheck`). It keeps the order given; ``reorder`` takes
the first candidate not predicted to conflict instead. A run that landed something ends with a
conflict-radar round, so every agent's prediction against the new base is current.

Crash safety: ``merge.candidate`` is recorded before a build and ``merge.landing`` (old, new)
before the ref moves; the ref move itself is one atomic git operation. So after a SIGKILL at any
point base is either unchanged or holds the whole candidate, and the next process to take the
queue sees which (:meth:`MergeQueue._settle`): it records ``merged`` (finished) or abandons the
attempt (the agent stays queued and is tried again), and says so.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cockpit.core import candidate, gates, lock, prediction, radar, worktrees
from cockpit.core.crash import crash_point
from cockpit.core.errors import CockpitError
from cockpit.core.merge_outcome import Outcome
from cockpit.core.repository import Repository
from cockpit.core.spec import FleetConfig, validate_name
from cockpit.core.state import Record

MAX_ROUNDS = 5  # rebuilds when base keeps moving under a candidate


class QueueBusy(CockpitError):
    """Another process is running the queue (it will take what was just queued)."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"another cockpit (pid {pid if pid else '?'}) is running the merge queue")
        self.pid = pid


class Stopped(Exception):
    """The queue was asked to stop (the TUI is quitting): the candidate stays queued."""


# -- where things live -------------------------------------------------------------------------
def merge_dir(repo: Repository) -> Path:
    return repo.layout.home / "merge"


def scratch_path(repo: Repository, name: str) -> Path:
    return merge_dir(repo) / name


def merge_log(repo: Repository, name: str) -> Path:
    return repo.layout.agent_dir(name) / "merge.log"


def lock_path(repo: Repository) -> Path:
    return repo.layout.home / "queue.lock"


# -- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueEntry:
    """One pending candidate, as ``cockpit queue --json`` shows it."""

    position: int
    name: str
    state: str  # "queued", or "merging" for the one a running queue is working on
    queued_at: str

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "name": self.name, "state": self.state, "queued_at": self.queued_at}


def _queued(repo: Repository) -> list[Record]:
    records = [r for r in repo.history().records.values() if not r.discarded and r.merge_state == "queued"]
    return sorted(records, key=lambda r: r.queued_seq)


def pending(repo: Repository) -> list[QueueEntry]:
    """The queue in order. Cheap: a replay of the event log (and one lock probe)."""
    records = _queued(repo)
    running = any(r.merging for r in records) and runner_pid(repo) is not None
    return [QueueEntry(i + 1, r.name, "merging" if (r.merging and running) else "queued", r.queued_at)
            for i, r in enumerate(records)]


def enqueue(repo: Repository, names: list[str]) -> list[tuple[str, int, bool]]:
    """Put agents in the queue in the given order. Returns ``(name, position, newly_queued)``;
    an agent already waiting keeps its place. Unknown names fail before anything is queued."""
    ordered = list(dict.fromkeys(names))
    for name in ordered:
        validate_name(name)
    with repo.locked():
        for name in ordered:
            repo.record(name)  # raises NotFound
        added = set()
        for name in ordered:
            if repo.history().records[name].merge_state != "queued":
                repo.events.append("merge.queued", name)
                added.add(name)
        positions = {r.name: i + 1 for i, r in enumerate(_queued(repo))}
    return [(name, positions.get(name, 0), name in added) for name in ordered]


# -- the queue lock ------------------------------------------------------------------------------
class _QueueLock:
    """``flock`` on ``.cockpit/queue.lock`` holding the runner's pid. The kernel drops it when the
    runner dies, so a crash never wedges the queue."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, wait: float = 0.3) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not lock.take(fd, wait, interval=0.02):  # rides over a momentary probe by runner_pid()
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


QueueLock = _QueueLock
"""The queue lock, for a merge that must not run beside the queue (cockpit.core.remote_merge)."""


def runner_pid(repo: Repository) -> int | None:
    """The pid of the process running the queue now, or None when nobody does."""
    path = lock_path(repo)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        return None
    finally:
        os.close(fd)


# -- running -------------------------------------------------------------------------------------
Report = Callable[[Outcome], None]


class MergeQueue:
    """Runs the queue until it is empty (or ``stop`` is set). One instance per run."""

    def __init__(self, repo: Repository, report: Report | None = None, stop: threading.Event | None = None,
                 reorder: bool = False) -> None:
        self.repo = repo
        self.report: Report = report or (lambda outcome: None)
        self.stop = stop or threading.Event()
        self.reorder = reorder  # conflict-free candidates first (predicted by merge-tree)

    def run(self) -> list[Outcome]:
        """Process every queued candidate, including any queued while this runs. Raises
        :class:`QueueBusy` when another process runs the queue."""
        repo = self.repo
        repo.layout.home.mkdir(exist_ok=True)
        worktrees.ensure_excluded(repo.root)
        held = _QueueLock(lock_path(repo))
        if not held.acquire():
            raise QueueBusy(runner_pid(repo))
        outcomes: list[Outcome] = []
        check, landed, any_landed = prediction.CandidateCheck(repo.root), None, False
        try:
            for outcome in self._recover():
                outcomes.append(outcome)
                self.report(outcome)
            while not self.stop.is_set():
                with repo.locked():
                    queue = _queued(repo)
                    if not queue:
                        # Released under the repository lock: whoever queues after this sees
                        # the queue lock free and runs the queue itself; nothing is stranded.
                        held.release()
                        break
                check.refresh()
                for news in check.news(queue, landed):  # before building: what merge-tree predicts
                    self.report(news)
                landed = None
                try:
                    ended = self._process(check.pick(queue).name if self.reorder else queue[0].name)
                except Stopped:
                    break
                if ended is not None:
                    outcomes.append(ended)
                    self.report(ended)
                    if ended.succeeded:
                        landed, any_landed = ended.name, True
        finally:
            held.release()
        if any_landed:
            self._refresh_radar()
        return outcomes

    def _refresh_radar(self) -> None:
        """A conflict-radar round on the new base (the watcher may not run: no agent live)."""
        try:
            interval = self.repo.config.radar_interval
            if interval > 0:
                radar.Radar(self.repo, interval=interval).run_round()
        except (CockpitError, OSError):
            pass  # a prediction is a hint: the merges stand, the watcher's next round tries again

    # -- one candidate --------------------------------------------------------------------------
    def _log(self, name: str, text: str) -> None:
        path = merge_log(self.repo, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with path.open("a") as handle:
            handle.write(f"[cockpit] {stamp} {text}\n")

    def _finish(self, record: Record, state: str, base: str = "", **details: Any) -> Outcome:
        data = {k: v for k, v in details.items() if v is not None}
        self.repo.events.append(f"merge.{state}", record.name, queued_seq=record.queued_seq, base=base, **data)
        outcome = Outcome(record.name, state, base=base, **details)
        self._log(record.name, f"outcome: {outcome.describe()}")
        return outcome

    def _current(self, name: str, seq: int) -> Record | None:
        """The agent's record if it is still waiting under the same queue entry."""
        record = self.repo.history().records.get(name)
        if record is None or record.discarded or record.merge_state != "queued" or record.queued_seq != seq:
            return None
        return record

    def _check(self, record: Record) -> tuple[str, str, str] | Outcome:
        """Under the repository lock: ``(base, onto, tip)`` to build, or the outcome that ends it."""
        repo, root, name = self.repo, self.repo.root, record.name
        base = record.base
        if not base or not worktrees.branch_exists(root, base):
            return self._finish(record, "blocked", base, reason=f"base {base!r} is not a local branch")
        if not record.branch or not worktrees.branch_exists(root, record.branch):
            return self._finish(record, "blocked", base, reason=f"branch {record.branch!r} does not exist")
        worktree = repo.layout.worktree(name)
        if worktree.is_dir():
            dirty = worktrees.status_porcelain(worktree)
            if dirty:
                shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
                return self._finish(record, "blocked", base, reason=f"uncommitted changes: {shown}", paths=dirty)
        onto = worktrees.run(root, "rev-parse", "--verify", f"refs/heads/{base}")
        tip = worktrees.run(root, "rev-parse", "--verify", f"refs/heads/{record.branch}")
        if worktrees.is_ancestor(root, tip, onto):  # nothing of the branch is missing from base
            if tip == record.base_sha:
                return self._finish(record, "blocked", base, reason="nothing to merge: no commits on its branch")
            return self._finish(record, "merged", base, commit=onto, reason="already in base")
        return base, onto, tip

    def _process(self, name: str) -> Outcome | None:
        repo = self.repo
        try:
            config = repo.config
        except CockpitError as exc:
            queued = repo.history().records[name]
            return self._finish(queued, "blocked", queued.base, reason=f"config: {exc}")
        seq = repo.history().records[name].queued_seq
        scratch = scratch_path(repo, name)
        for round_ in range(1, MAX_ROUNDS + 1):
            with repo.locked():
                record = self._current(name, seq)
                if record is None:
                    return None  # left the queue (respawned, discarded) meanwhile
                checked = self._check(record)
                if isinstance(checked, Outcome):
                    return checked
                base, onto, tip = checked
                repo.events.append("merge.candidate", name, queued_seq=seq, base=base, onto=onto, tip=tip,
                                    mode=config.merge, scratch=str(scratch), round=round_)
            try:
                result = self._attempt(record, config, base, onto, tip, scratch)
            except (CockpitError, OSError) as exc:  # git or the filesystem refused: not retried blindly
                now = self._current(name, seq)
                if now is None:
                    return None
                landed = self._landed(now)
                if landed:
                    return self._finish(now, "merged", base, commit=landed, reason=config.merge)
                return self._finish(now, "blocked", base, reason=str(exc))
            except BaseException:
                # Interrupted (Ctrl-C, the TUI quitting, a bug): settle now, as the next runner would.
                self._settle(name, "interrupted")
                raise
            finally:
                self._remove_scratch(scratch)
            if result is not None:
                return result
            # None: base (or the branch) moved under the candidate: build again on the new tip.
        last = self._current(name, seq)
        return self._finish(last, "blocked", last.base,
                            reason=f"base kept moving: gave up after {MAX_ROUNDS} rebuilds") if last else None

    def _attempt(self, record: Record, config: FleetConfig, base: str, onto: str, tip: str,
                 scratch: Path) -> Outcome | None:
        """Build, gate and land one candidate. None means "rebuild": base or the branch moved."""
        repo, root, name, seq = self.repo, self.repo.root, record.name, record.queued_seq
        crash_point("merge", "after-candidate")
        self._log(name, f"candidate: {config.merge} {record.branch} ({tip[:12]}) onto {base} ({onto[:12]})")
        candidate.make_scratch(root, scratch, onto)
        message = (candidate.squash_message(root, name, record.spec.task, onto, tip) if config.merge == "squash"
                   else f"Merge agent {name} ({record.branch}) into {base}")
        built = candidate.build(root, scratch, config.merge, onto, tip, message)
        if built.commit is None:
            return self._finish(record, "conflict", base, paths=built.conflicts,
                                reason=f"{built.summary}: {', '.join(built.conflicts)}")
        self._log(name, f"built {built.commit[:12]}: {built.summary}")
        checkout = candidate.checkout_of(root, base, merge_dir(repo))
        blockers = candidate.checkout_blockers(checkout, onto, built.commit) if checkout is not None else []
        if checkout is not None and blockers:  # before the gates: they cannot change that landing would overwrite these
            return self._finish(record, "blocked", base, paths=[path for path, _ in blockers],
                                reason=candidate.describe_blockers(root, checkout, blockers))
        env = gates.gate_environment({"COCKPIT_MERGE_AGENT": name, "COCKPIT_MERGE_BASE": base,
                                      "COCKPIT_MERGE_ONTO": onto, "COCKPIT_MERGE_CANDIDATE": built.commit,
                                      "COCKPIT_REPO": str(root)})

        def started(pgid: int) -> None:
            repo.events.append("merge.gate", name, queued_seq=seq, pgid=pgid)
            crash_point("merge", "during-gate")

        for gate in config.gates:
            result = gates.run_gate(gate, scratch, merge_log(repo, name), config.gate_timeout, env,
                                    stop=self.stop, on_start=started)
            if result.stopped:
                repo.events.append("merge.abandoned", name, queued_seq=seq, reason="the queue was stopped")
                raise Stopped()
            if not result.passed:
                reason = "timeout" if result.timed_out else f"exit {result.code}"
                return self._finish(record, "rejected", base, gate=gate, tail=result.tail, reason=reason)
        crash_point("merge", "after-gates")
        with repo.locked():
            if self._current(name, seq) is None:
                repo.events.append("merge.abandoned", name, queued_seq=seq, reason="left the queue while gating")
                return None
            now_tip = worktrees.ref_sha(root, f"refs/heads/{record.branch}")
            now_onto = worktrees.ref_sha(root, f"refs/heads/{base}")
            if now_tip != tip or now_onto != onto:
                what = f"{base} moved to {now_onto[:12] if now_onto else '?'}" if now_onto != onto \
                    else f"{record.branch} moved to {now_tip[:12] if now_tip else '?'}"
                repo.events.append("merge.abandoned", name, queued_seq=seq, reason=f"{what}: rebuilding")
                self.report(Outcome(name, "rebuilding", reason=f"{what} while gating", base=base))
                self._log(name, f"{what} while gating: rebuilding")
                return None
            if built.commit == onto:
                return self._finish(record, "merged", base, commit=onto, reason="already in base")
            checkout = candidate.checkout_of(root, base, merge_dir(repo))
            repo.events.append("merge.landing", name, queued_seq=seq, base=base, old=onto, new=built.commit,
                                checkout=str(checkout) if checkout else None)
            crash_point("merge", "before-ref")
            try:
                candidate.land(root, base, onto, built.commit, checkout, f"cockpit: merge agent {name}")
            except candidate.CheckoutNotClean as exc:
                return self._finish(record, "blocked", base, reason=str(exc), paths=exc.paths)
            except candidate.BaseMoved as exc:
                repo.events.append("merge.abandoned", name, queued_seq=seq, reason=f"{exc}: rebuilding")
                self.report(Outcome(name, "rebuilding", reason=str(exc), base=base))
                return None
            crash_point("merge", "after-ref")
            return self._finish(record, "merged", base, commit=built.commit, reason=config.merge)

    # -- crash recovery --------------------------------------------------------------------------
    def _recover(self) -> list[Outcome]:
        """Settle every candidate a dead runner left open, and remove its scratch worktrees.
        Returns the candidates found landed (the others stay queued)."""
        finished = []
        for record in _queued(self.repo):
            if record.merging:
                outcome = self._settle(record.name, "interrupted by a crash")
                if outcome is not None:
                    finished.append(outcome)
        root = merge_dir(self.repo)
        if root.is_dir():
            for path in sorted(root.iterdir()):
                self._remove_scratch(path)
        return finished

    def _settle(self, name: str, why: str) -> Outcome | None:
        """Finish or abandon ``name``'s open candidate, from what git shows: if base holds the
        landing commit, it merged; otherwise base is unchanged and the attempt is dropped (the
        agent stays queued and is tried again). Says which through ``report``."""
        repo = self.repo
        with repo.locked():
            record = repo.history().records.get(name)
            if record is None or record.merge_state != "queued" or not record.merging:
                return None
            merging = record.merging
            pgid = merging.get("gate_pgid")
            scratch = Path(str(merging.get("scratch") or scratch_path(repo, name)))
            if isinstance(pgid, int) and _group_in(pgid, scratch):
                gates.kill_group(pgid, grace=0.5)  # a gate the dead runner left running
            base = str(merging.get("base") or record.base)
            new = self._landed(record)
            outcome = None
            if new:
                self.report(Outcome(name, "recovered", reason=why, commit=new, base=base))
                outcome = self._finish(record, "merged", base, commit=new, reason=f"finished after being {why}")
            else:
                repo.events.append("merge.abandoned", name, queued_seq=record.queued_seq, reason=why)
                self._log(name, f"attempt {why}: abandoned, {base} unchanged")
                self.report(Outcome(name, "abandoned", reason=why, base=base))
            self._remove_scratch(scratch)
            return outcome

    def _landed(self, record: Record) -> str | None:
        """The candidate commit if its landing was recorded and base now contains it."""
        landing = (record.merging or {}).get("landing") or {}
        new, base = landing.get("new"), landing.get("base")
        if not new or not base:
            return None
        tip = worktrees.ref_sha(self.repo.root, f"refs/heads/{base}")
        return str(new) if tip and worktrees.is_ancestor(self.repo.root, str(new), tip) else None

    def _remove_scratch(self, path: Path) -> None:
        try:
            candidate.remove_scratch(self.repo.root, path)
        except CockpitError:
            shutil.rmtree(path, ignore_errors=True)
            worktrees.ok(self.repo.root, "worktree", "prune")


def _group_in(pgid: int, scratch: Path) -> bool:
    """Whether process group ``pgid`` still runs a gate of ``scratch``. Guards against pid reuse:
    some member's working directory must be inside the scratch worktree."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_bytes()
            if int(raw[raw.rfind(b")") + 2:].split()[2]) != pgid:
                continue
            cwd = Path(os.readlink(f"/proc/{entry}/cwd").removesuffix(" (deleted)"))
        except (OSError, ValueError, IndexError):
            continue
        if cwd == scratch or scratch in cwd.parents:
            return True
    return False
