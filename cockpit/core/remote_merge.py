"""Landing a remote agent's work on this machine's base, with the merge queue's gates.

The agent's committed work is fetched from its host into ``refs/cockpit/hosts/<host>/<name>``
here (git over the host's shared ssh connection); then, holding the merge queue's lock (so it
never runs beside the local queue), a scratch worktree at base's tip gets it (rebase, merge or
squash, as ``[cockpit] merge`` says), every gate runs there, and base advances by fast-forward
only from the tip the candidate was built on (:func:`cockpit.core.candidate.land`: a
compare-and-swap; base moved meanwhile: built and gated again). Uncommitted work there blocks the
merge, as it does for a local agent. The outcome is recorded in this repository's event log
(``remote.merge`` with the host, the agent and the commit).

Not built yet: a remote agent in the persistent queue (``cockpit queue`` lists local agents
only; a remote merge runs at once, in the ``cockpit merge`` that asked for it).
"""

from __future__ import annotations

import json
import threading

from cockpit.core import candidate, gates, worktrees
from cockpit.core.errors import CockpitError
from cockpit.core.hosts import BASE_PREFIX, fetch_branch, host_agents, transport
from cockpit.core.merge_outcome import Outcome
from cockpit.core.queue import QueueBusy, QueueLock, lock_path, merge_dir, merge_log, runner_pid, scratch_path
from cockpit.core.repository import Repository
from cockpit.core.transport import last_line

MAX_ROUNDS = 5


def uncommitted(repo: Repository, host: str, name: str) -> list[str]:
    """Paths ``git status`` shows in the agent's worktree on its host."""
    answer = transport(repo, host).request("status", {"name": name})
    if answer.returncode != 0:
        raise CockpitError(f"host {host}: {last_line(answer.stderr).removeprefix('cockpit: ')}")
    return list(json.loads(answer.stdout)["dirty"])


def merge(repo: Repository, name: str, host: str, stop: threading.Event | None = None) -> Outcome:
    """Land remote agent ``name``'s committed work on its base here (see the module doc)."""
    agents = {a.name: a for a in host_agents(repo, host)}
    if name not in agents:
        raise CockpitError(f"no agent named {name!r} on host {host}")
    agent = agents[name]
    base = agent.base.removeprefix(BASE_PREFIX)
    if not agent.branch:
        return _finish(repo, host, Outcome(name, "blocked", reason="it has no branch yet", base=base))
    if not worktrees.branch_exists(repo.root, base):
        return _finish(repo, host, Outcome(name, "blocked", reason=f"base {base!r} is not a local branch here",
                                           base=base))
    dirty = uncommitted(repo, host, name)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        return _finish(repo, host, Outcome(name, "blocked", reason=f"uncommitted changes on host {host}: {shown}",
                                           paths=dirty, base=base))
    tip = fetch_branch(repo, host, name, agent.branch)
    held = QueueLock(lock_path(repo))
    repo.layout.home.mkdir(exist_ok=True)
    if not held.acquire():
        raise QueueBusy(runner_pid(repo))
    try:
        for _ in range(MAX_ROUNDS):
            outcome = _attempt(repo, host, name, agent.task, base, tip, stop or threading.Event())
            if outcome is not None:
                return _finish(repo, host, outcome)
        return _finish(repo, host, Outcome(name, "blocked", reason=f"base kept moving: gave up after {MAX_ROUNDS} "
                                           "rebuilds", base=base))
    finally:
        held.release()


def _attempt(repo: Repository, host: str, name: str, task: str, base: str, tip: str,
             stop: threading.Event) -> Outcome | None:
    root, config = repo.root, repo.config
    onto = worktrees.run(root, "rev-parse", "--verify", f"refs/heads/{base}")
    if worktrees.is_ancestor(root, tip, onto):
        return Outcome(name, "merged", reason="already in base", commit=onto, base=base)
    scratch = scratch_path(repo, f"{host}--{name}")
    log = merge_log(repo, name)
    try:
        candidate.make_scratch(root, scratch, onto)
        message = (candidate.squash_message(root, name, task, onto, tip) if config.merge == "squash"
                   else f"Merge agent {name} (host {host}) into {base}")
        built = candidate.build(root, scratch, config.merge, onto, tip, message)
        if built.commit is None:
            return Outcome(name, "conflict", reason=f"{built.summary}: {', '.join(built.conflicts)}",
                           paths=built.conflicts, base=base)
        env = gates.gate_environment({"COCKPIT_MERGE_AGENT": name, "COCKPIT_MERGE_BASE": base,
                                      "COCKPIT_MERGE_ONTO": onto, "COCKPIT_MERGE_CANDIDATE": built.commit,
                                      "COCKPIT_MERGE_HOST": host, "COCKPIT_REPO": str(root)})
        for gate in config.gates:
            result = gates.run_gate(gate, scratch, log, config.gate_timeout, env, stop=stop)
            if result.stopped:
                raise CockpitError("the merge was stopped; base unchanged")
            if not result.passed:
                reason = "timeout" if result.timed_out else f"exit {result.code}"
                return Outcome(name, "rejected", reason=reason, gate=gate, tail=result.tail, base=base)
        with repo.locked():
            checkout = candidate.checkout_of(root, base, merge_dir(repo))
            try:
                candidate.land(root, base, onto, built.commit, checkout, f"cockpit: merge agent {name} (host {host})")
            except candidate.CheckoutNotClean as exc:
                return Outcome(name, "blocked", reason=str(exc), paths=exc.paths, base=base)
            except candidate.BaseMoved:
                return None  # built and gated again on the new tip
        return Outcome(name, "merged", reason=config.merge, commit=built.commit, base=base)
    finally:
        try:
            candidate.remove_scratch(root, scratch)
        except CockpitError:
            worktrees.ok(root, "worktree", "prune")


def _finish(repo: Repository, host: str, outcome: Outcome) -> Outcome:
    repo.events.append("remote.merge", None, agent_name=outcome.name, host=host, state=outcome.state,
                       reason=outcome.reason, commit=outcome.commit, base=outcome.base, paths=outcome.paths,
                       gate=outcome.gate)
    return outcome
