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

Remote agents (their agent runs on a host, :mod:`cockpit.core.hosts`) are entries like any
other, in the same order (:mod:`cockpit.core.queue_entries` records them). When a remote entry's
turn comes, the runner asks ``remote`` (:func:`cockpit.core.remote_merge.fetch_work`) for its
work, outside the repository lock: the host is asked over ssh, uncommitted work there or a host
that does not answer ends the entry ``blocked`` (naming the host; nothing here changes, the queue
goes on), and its committed work is fetched into ``refs/cockpit/hosts/<host>/<agent>``. From
there it is built, gated and landed exactly as a local branch, under the same lock.

Crash safety: ``merge.candidate`` is recorded before a build and ``merge.landing`` (old, new)
before the ref moves; the ref move itself is one atomic git operation. So after a SIGKILL at any
point base is either unchanged or holds the whole candidate, and the next process to take the
queue sees which (:meth:`MergeQueue._settle`): it records ``merged`` (finished) or abandons the
attempt (the agent stays queued and is tried again), and says so.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cockpit.core import candidate, gates, prediction, radar, worktrees
from cockpit.core.crash import crash_point
from cockpit.core.errors import CockpitError
from cockpit.core.merge_outcome import Outcome
from cockpit.core.queue_entries import (
    QueueBusy,
    QueueEntry,
    QueueLock,
    Slot,
    current,
    enqueue,
    journal,
    lock_path,
    merge_dir,
    merge_log,
    pending,
    queued,
    runner_pid,
    scratch_path,
)
from cockpit.core.repository import Repository
from cockpit.core.spec import FleetConfig

__all__ = ["MAX_ROUNDS", "Fetched", "MergeQueue", "Outcome", "QueueBusy", "QueueEntry", "QueueLock", "RemoteFetch",
           "Report", "Stopped", "enqueue", "lock_path", "merge_dir", "merge_log", "pending", "runner_pid",
           "scratch_path", "shown"]

MAX_ROUNDS = 5  # rebuilds when base keeps moving under a candidate


class Stopped(Exception):
    """The queue was asked to stop (the TUI is quitting): the candidate stays queued."""


@dataclass(frozen=True)
class Fetched:
    """A remote agent's committed work, fetched here for its turn: ``ref`` is the cockpit-owned
    ref holding its branch's tip, ``base`` the local branch it lands on."""

    ref: str
    base: str
    branch: str
    base_sha: str
    task: str


RemoteFetch = Callable[[str, str], "Fetched | str"]
"""``(host, agent)`` -> its work fetched here, or the one-line reason it cannot merge now (its
host is unreachable, it has uncommitted work there, ...). Called without the repository lock."""


@dataclass(frozen=True)
class _Work:
    """What a round builds: the entry, the ref its tip is read from, and what messages name."""

    slot: Slot
    base: str
    tip_ref: str
    branch: str
    task: str
    base_sha: str


def _scratch(repo: Repository, slot: Slot) -> Path:
    return scratch_path(repo, slot.name if slot.host is None else f"{slot.host}--{slot.name}")


# -- running -------------------------------------------------------------------------------------
Report = Callable[[Outcome], None]


class MergeQueue:
    """Runs the queue until it is empty (or ``stop`` is set). One instance per run. ``remote``
    fetches a remote entry's work (:func:`cockpit.core.remote_merge.merge_queue` builds a queue
    with it); without it remote entries are left waiting for a runner that has it."""

    def __init__(self, repo: Repository, report: Report | None = None, stop: threading.Event | None = None,
                 reorder: bool = False, remote: RemoteFetch | None = None) -> None:
        self.repo = repo
        self.report: Report = report or (lambda outcome: None)
        self.stop = stop or threading.Event()
        self.reorder = reorder  # conflict-free candidates first (predicted by merge-tree)
        self.remote = remote

    def run(self) -> list[Outcome]:
        """Process every queued candidate, including any queued while this runs. Raises
        :class:`QueueBusy` when another process runs the queue."""
        repo = self.repo
        repo.layout.home.mkdir(exist_ok=True)
        worktrees.ensure_excluded(repo.root)
        held = QueueLock(lock_path(repo))
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
                    queue = [slot for slot in queued(repo) if slot.host is None or self.remote is not None]
                    if not queue:
                        # Released under the repository lock: whoever queues after this sees
                        # the queue lock free and runs the queue itself; nothing is stranded.
                        held.release()
                        break
                check.refresh()
                local = [slot.record for slot in queue if slot.record is not None]
                for news in check.news(local, landed):  # before building: what merge-tree predicts
                    self.report(news)
                landed = None
                chosen = queue[0]
                if self.reorder:  # a remote entry's prediction is unknown, which counts as no conflict
                    chosen = next((s for s in queue if s.record is None or not check.conflicts(s.record)), chosen)
                try:
                    ended = self._process(chosen)
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
    def _log(self, slot: Slot, text: str) -> None:
        path = merge_log(self.repo, slot.name, slot.host)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with path.open("a") as handle:
            handle.write(f"[cockpit] {stamp} {text}\n")

    def _finish(self, slot: Slot, state: str, base: str = "", **details: Any) -> Outcome:
        data = {k: v for k, v in details.items() if v is not None}
        journal(self.repo, slot, state, base=base, **data)
        outcome = Outcome(slot.name, state, base=base, host=slot.host, **details)
        self._log(slot, f"outcome: {outcome.describe()}")
        return outcome

    def _check(self, slot: Slot, fetched: Fetched | None) -> tuple[_Work, str, str] | Outcome:
        """Under the repository lock: what to build, base's tip and the candidate's tip, or the
        outcome that ends it."""
        repo, root = self.repo, self.repo.root
        if slot.record is not None:
            record = slot.record
            work = _Work(slot, record.base, f"refs/heads/{record.branch}", record.branch, record.spec.task,
                         record.base_sha)
            base = record.base
            if not base or not worktrees.branch_exists(root, base):
                return self._finish(slot, "blocked", base, reason=f"base {base!r} is not a local branch")
            if not record.branch or not worktrees.branch_exists(root, record.branch):
                return self._finish(slot, "blocked", base, reason=f"branch {record.branch!r} does not exist")
            worktree = repo.layout.worktree(slot.name)
            if worktree.is_dir():
                dirty = worktrees.status_porcelain(worktree)
                if dirty:
                    return self._finish(slot, "blocked", base, reason=f"uncommitted changes: {shown(dirty)}",
                                        paths=dirty)
        else:
            assert fetched is not None
            work = _Work(slot, fetched.base, fetched.ref, fetched.branch, fetched.task, fetched.base_sha)
            base = fetched.base
            if not base or not worktrees.branch_exists(root, base):
                return self._finish(slot, "blocked", base, reason=f"base {base!r} is not a local branch here")
        onto = worktrees.run(root, "rev-parse", "--verify", f"refs/heads/{base}")
        tip = worktrees.ref_sha(root, work.tip_ref)
        if tip is None:
            return self._finish(slot, "blocked", base, reason=f"{work.tip_ref} is missing")
        if worktrees.is_ancestor(root, tip, onto):  # nothing of the branch is missing from base
            if tip == work.base_sha:
                return self._finish(slot, "blocked", base, reason="nothing to merge: no commits on its branch")
            return self._finish(slot, "merged", base, commit=onto, reason="already in base")
        return work, onto, tip

    def _process(self, slot: Slot) -> Outcome | None:
        repo = self.repo
        base = slot.record.base if slot.record is not None else ""
        try:
            config = repo.config
        except CockpitError as exc:
            return self._finish(slot, "blocked", base, reason=f"config: {exc}")
        fetched = None
        if slot.host is not None and self.remote is not None:
            found = self.remote(slot.host, slot.name)  # over ssh: no repository lock held
            if isinstance(found, str):
                with repo.locked():
                    now = current(repo, slot)
                    return self._finish(now, "blocked", reason=found) if now is not None else None
            fetched = found
        scratch = _scratch(repo, slot)
        for round_ in range(1, MAX_ROUNDS + 1):
            with repo.locked():
                now = current(repo, slot)
                if now is None:
                    return None  # left the queue (respawned, discarded) meanwhile
                checked = self._check(now, fetched)
                if isinstance(checked, Outcome):
                    return checked
                work, onto, tip = checked
                base = work.base
                journal(repo, now, "candidate", base=base, onto=onto, tip=tip, mode=config.merge,
                        scratch=str(scratch), round=round_)
            try:
                result = self._attempt(work, config, onto, tip, scratch)
            except (CockpitError, OSError) as exc:  # git or the filesystem refused: not retried blindly
                now = current(repo, slot)
                if now is None:
                    return None
                landed = self._landed(now)
                if landed:
                    return self._finish(now, "merged", base, commit=landed, reason=config.merge)
                return self._finish(now, "blocked", base, reason=str(exc))
            except BaseException:
                # Interrupted (Ctrl-C, the TUI quitting, a bug): settle now, as the next runner would.
                self._settle(slot, "interrupted")
                raise
            finally:
                self._remove_scratch(scratch)
            if result is not None:
                return result
            # None: base (or the branch) moved under the candidate: build again on the new tip.
        last = current(repo, slot)
        return self._finish(last, "blocked", base,
                            reason=f"base kept moving: gave up after {MAX_ROUNDS} rebuilds") if last else None

    def _attempt(self, work: _Work, config: FleetConfig, onto: str, tip: str, scratch: Path) -> Outcome | None:
        """Build, gate and land one candidate. None means "rebuild": base or the branch moved."""
        repo, root, slot, base = self.repo, self.repo.root, work.slot, work.base
        name, where = slot.name, (work.branch if slot.host is None else f"host {slot.host}")
        crash_point("merge", "after-candidate")
        self._log(slot, f"candidate: {config.merge} {work.branch} ({tip[:12]}) onto {base} ({onto[:12]})")
        candidate.make_scratch(root, scratch, onto)
        message = (candidate.squash_message(root, name, work.task, onto, tip) if config.merge == "squash"
                   else f"Merge agent {name} ({where}) into {base}")
        built = candidate.build(root, scratch, config.merge, onto, tip, message)
        if built.commit is None:
            return self._finish(slot, "conflict", base, paths=built.conflicts,
                                reason=f"{built.summary}: {', '.join(built.conflicts)}")
        self._log(slot, f"built {built.commit[:12]}: {built.summary}")
        checkout = candidate.checkout_of(root, base, merge_dir(repo))
        blockers = candidate.checkout_blockers(checkout, onto, built.commit) if checkout is not None else []
        if checkout is not None and blockers:  # before the gates: they cannot change that landing would overwrite these
            return self._finish(slot, "blocked", base, paths=[path for path, _ in blockers],
                                reason=candidate.describe_blockers(root, checkout, blockers))
        names = {"COCKPIT_MERGE_AGENT": name, "COCKPIT_MERGE_BASE": base, "COCKPIT_MERGE_ONTO": onto,
                 "COCKPIT_MERGE_CANDIDATE": built.commit, "COCKPIT_REPO": str(root)}
        env = gates.gate_environment({**names, "COCKPIT_MERGE_HOST": slot.host} if slot.host else names)

        def started(pgid: int) -> None:
            journal(repo, slot, "gate", pgid=pgid)
            crash_point("merge", "during-gate")

        for gate in config.gates:
            result = gates.run_gate(gate, scratch, merge_log(repo, name, slot.host), config.gate_timeout, env,
                                    stop=self.stop, on_start=started)
            if result.stopped:
                journal(repo, slot, "abandoned", reason="the queue was stopped")
                raise Stopped()
            if not result.passed:
                reason = "timeout" if result.timed_out else f"exit {result.code}"
                return self._finish(slot, "rejected", base, gate=gate, tail=result.tail, reason=reason)
        crash_point("merge", "after-gates")
        with repo.locked():
            if current(repo, slot) is None:
                journal(repo, slot, "abandoned", reason="left the queue while gating")
                return None
            now_tip = worktrees.ref_sha(root, work.tip_ref)
            now_onto = worktrees.ref_sha(root, f"refs/heads/{base}")
            if now_tip != tip or now_onto != onto:
                what = f"{base} moved to {now_onto[:12] if now_onto else '?'}" if now_onto != onto \
                    else f"{work.branch} moved to {now_tip[:12] if now_tip else '?'}"
                journal(repo, slot, "abandoned", reason=f"{what}: rebuilding")
                self.report(Outcome(name, "rebuilding", reason=f"{what} while gating", base=base, host=slot.host))
                self._log(slot, f"{what} while gating: rebuilding")
                return None
            if built.commit == onto:
                return self._finish(slot, "merged", base, commit=onto, reason="already in base")
            checkout = candidate.checkout_of(root, base, merge_dir(repo))
            journal(repo, slot, "landing", base=base, old=onto, new=built.commit,
                    checkout=str(checkout) if checkout else None)
            crash_point("merge", "before-ref")
            try:
                candidate.land(root, base, onto, built.commit, checkout,
                               f"cockpit: merge agent {name}" + (f" (host {slot.host})" if slot.host else ""))
            except candidate.CheckoutNotClean as exc:
                return self._finish(slot, "blocked", base, reason=str(exc), paths=exc.paths)
            except candidate.BaseMoved as exc:
                journal(repo, slot, "abandoned", reason=f"{exc}: rebuilding")
                self.report(Outcome(name, "rebuilding", reason=str(exc), base=base, host=slot.host))
                return None
            crash_point("merge", "after-ref")
            return self._finish(slot, "merged", base, commit=built.commit, reason=config.merge)

    # -- crash recovery --------------------------------------------------------------------------
    def _recover(self) -> list[Outcome]:
        """Settle every candidate a dead runner left open (remote ones too: what git shows here
        decides, the host is not asked), and remove its scratch worktrees. Returns the candidates
        found landed (the others stay queued)."""
        finished = []
        for slot in queued(self.repo):
            if slot.merging:
                outcome = self._settle(slot, "interrupted by a crash")
                if outcome is not None:
                    finished.append(outcome)
        root = merge_dir(self.repo)
        if root.is_dir():
            for path in sorted(root.iterdir()):
                self._remove_scratch(path)
        return finished

    def _settle(self, slot: Slot, why: str) -> Outcome | None:
        """Finish or abandon ``slot``'s open candidate, from what git shows: if base holds the
        landing commit, it merged; otherwise base is unchanged and the attempt is dropped (the
        agent stays queued and is tried again). Says which through ``report``."""
        repo = self.repo
        with repo.locked():
            now = current(repo, slot)
            if now is None or not now.merging:
                return None
            merging, name = now.merging, now.name
            pgid = merging.get("gate_pgid")
            scratch = Path(str(merging.get("scratch") or _scratch(repo, now)))
            if isinstance(pgid, int) and _group_in(pgid, scratch):
                gates.kill_group(pgid, grace=0.5)  # a gate the dead runner left running
            base = str(merging.get("base") or (now.record.base if now.record is not None else ""))
            new = self._landed(now)
            outcome = None
            if new:
                self.report(Outcome(name, "recovered", reason=why, commit=new, base=base, host=now.host))
                outcome = self._finish(now, "merged", base, commit=new, reason=f"finished after being {why}")
            else:
                journal(repo, now, "abandoned", reason=why)
                self._log(now, f"attempt {why}: abandoned, {base} unchanged")
                self.report(Outcome(name, "abandoned", reason=why, base=base, host=now.host))
            self._remove_scratch(scratch)
            return outcome

    def _landed(self, slot: Slot) -> str | None:
        """The candidate commit if its landing was recorded and base now contains it."""
        landing = (slot.merging or {}).get("landing") or {}
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


def shown(paths: list[str]) -> str:
    """The first few of ``paths`` for a one-line reason."""
    return ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


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
