"""Remote agents in the merge queue: their work landed on this machine's base, with the queue's
gates and compare-and-swap.

``cockpit merge`` (and the TUI's merge key) queue remote and local agents alike, in the order
given (:func:`enqueue`: a remote entry records its host), and one runner takes them in turn
(:func:`merge_queue`: :class:`cockpit.core.queue.MergeQueue` with :func:`fetch_work`). When a
remote entry's turn comes, holding the queue's lock as for any entry, the runner asks the host
over its shared ssh connection what the agent is: a host that does not answer, an agent it does
not list, or uncommitted work in the agent's worktree there ends the entry ``blocked`` with a
one-line reason (nothing changes here, the queue goes on with the next entry). Otherwise its
committed work is fetched into ``refs/cockpit/hosts/<host>/<name>`` here, and from that ref it is
built, gated and landed exactly like a local branch: a scratch worktree at base's tip gets it
(rebase, merge or squash, as ``[cockpit] merge`` says), every gate runs there, and base advances
by fast-forward only from the tip the candidate was built on (base moved meanwhile: built and
gated again). Its steps and outcome are recorded in this repository's event log (``remote.queued``
.. ``remote.merge`` with the host, the agent and the commit), so ``cockpit queue`` lists it and a
runner that dies mid-merge is settled by the next one, as for a local agent.
"""

from __future__ import annotations

import json
import threading

from cockpit.core import queue_entries
from cockpit.core.errors import CockpitError
from cockpit.core.hosts import BASE_PREFIX, FETCH_PREFIX, fetch_branch, host_agents, host_of, host_spec, transport
from cockpit.core.queue import Fetched, MergeQueue, Report, shown
from cockpit.core.repository import Repository
from cockpit.core.spec import validate_name
from cockpit.core.transport import last_line


def uncommitted(repo: Repository, host: str, name: str) -> list[str]:
    """Paths ``git status`` shows in the agent's worktree on its host."""
    answer = transport(repo, host).request("status", {"name": name})
    if answer.returncode != 0:
        raise CockpitError(f"host {host}: {last_line(answer.stderr).removeprefix('cockpit: ')}")
    return list(json.loads(answer.stdout)["dirty"])


def fetch_work(repo: Repository, host: str, name: str) -> Fetched | str:
    """Remote agent ``name``'s committed work fetched from ``host`` into a ref here, or the
    one-line reason it cannot merge now (see the module doc)."""
    try:
        agents = {a.name: a for a in host_agents(repo, host)}
        if name not in agents:
            return f"no agent named {name!r} on host {host}"
        agent = agents[name]
        if not agent.branch:
            return f"it has no branch yet on host {host}"
        dirty = uncommitted(repo, host, name)
        if dirty:
            return f"uncommitted changes on host {host}: {shown(dirty)}"
        fetch_branch(repo, host, name, agent.branch)
    except CockpitError as exc:  # HostUnreachable among them: it names the host
        return " ".join(str(exc).split()) or f"host {host}: failed"
    except (OSError, ValueError, KeyError, TypeError) as exc:  # ssh or git could not run; a garbled answer
        return f"host {host}: {' '.join(str(exc).split()) or type(exc).__name__}"
    return Fetched(ref=f"{FETCH_PREFIX}{host}/{name}", base=agent.base.removeprefix(BASE_PREFIX),
                   branch=agent.branch, base_sha=agent.base_sha, task=agent.task)


def hosts_of(repo: Repository, names: list[str]) -> dict[str, str]:
    """Which of ``names`` are remote agents, and their hosts. A bad name, or a host no longer
    configured, fails before anything is queued."""
    found = {}
    for name in names:
        validate_name(name)
        host = host_of(repo, name)
        if host is not None:
            host_spec(repo, host)
            found[name] = host
    return found


def enqueue(repo: Repository, names: list[str]) -> list[tuple[str, str | None, int, bool]]:
    """Queue local and remote agents in the order given (:func:`cockpit.core.queue.enqueue`):
    ``(name, host, position, newly_queued)``, ``host`` None for this machine's agent."""
    hosts = hosts_of(repo, names)
    return [(name, hosts.get(name), position, added)
            for name, position, added in queue_entries.enqueue(repo, names, hosts)]


def merge_queue(repo: Repository, report: Report | None = None, stop: threading.Event | None = None,
                reorder: bool = False) -> MergeQueue:
    """The queue runner every view uses: local entries and remote ones (:func:`fetch_work`)."""
    return MergeQueue(repo, report=report, stop=stop, reorder=reorder,
                      remote=lambda host, name: fetch_work(repo, host, name))
