"""``cockpit check``: out-of-scope edits, collisions and predicted merge conflicts, this
machine's agents and the hosts' alike (what crosses machines: cockpit/core/remote_radar.py)."""

from __future__ import annotations

import argparse
import json
import sys

from cockpit.core.errors import CockpitError


def check(fleet, args: argparse.Namespace) -> int:
    from cockpit.core import radar
    if args.agent:
        from cockpit.core.spec import validate_name
        validate_name(args.agent)
    remote_status = 0
    agents = fleet.agents(ownership=True)
    if fleet.config.hosts:  # the hosts' agents, with what crosses machines
        from cockpit.core import hosts, remote_radar
        remote, warnings = hosts.all_agents(fleet, [])
        agents = across(fleet, [*agents, *remote])
        for warning in warnings + remote_radar.left_out(radar.read(fleet)):
            print(f"cockpit: {warning}", file=sys.stderr)
        remote_status = int(any("unreachable" in w for w in warnings))
    if args.agent and args.agent not in {a.name for a in agents}:
        raise CockpitError(f"no agent named {args.agent!r} (see 'cockpit ls')")
    chosen = [a for a in agents if not args.agent or a.name == args.agent]
    findings = [a for a in chosen if a.out_of_scope or a.collisions or a.conflicts]
    if args.json:
        print(json.dumps([{"name": a.name, "host": a.host, "out_of_scope": a.out_of_scope,
                           "collisions": a.collisions, "conflicts": a.conflicts} for a in chosen], indent=2))
    else:
        for a in findings:
            for path in a.out_of_scope or []:
                print(f"{a.name}: out of scope: {path} (scope: {', '.join(a.scope) or '-'})")
            for collision in a.collisions or []:
                print(f"{a.name}: collision: {collision['path']} also changed by {', '.join(collision['agents'])}")
            for conflict in a.conflicts or []:
                print(f"{a.name}: {describe_conflict(conflict, a.base)}")
        if not findings:
            print(f"ok: {len(chosen)} agent(s), no out-of-scope edits, no collisions, no predicted conflicts")
    unknown = [a.name for a in chosen
               if a.conflicts is None and a.worktree is not None and a.state not in ("merged", "missing")]
    if unknown:
        why = radar.unsupported_reason(radar.read(fleet)) or (
            "not predicted yet (the watcher predicts while agents run; the merge queue after each landing)")
        print(f"cockpit: merge conflicts of {', '.join(unknown)}: unknown: {why}", file=sys.stderr)
    if findings:
        print(f"cockpit: {len(findings)} agent(s) with out-of-scope edits, collisions or predicted conflicts",
              file=sys.stderr)
    return 1 if findings or remote_status else 0


def across(fleet, agents: list) -> list:
    """This machine's agents and the hosts' in one list, with the collisions and predicted
    conflicts between machines (cockpit.core.remote_radar), by name."""
    from cockpit.core import radar, remote_radar
    from cockpit.core.agent import name_order
    found = remote_radar.cross(agents, radar.read(fleet), fleet.ownership_tracker.changed)
    return sorted(found, key=lambda a: name_order(a.name))


def describe_conflict(conflict: dict, base: str) -> str:
    """``conflict with api: src/auth.py (lines 3-5)``: one predicted conflict of an agent."""
    other = f"base {base}" if conflict.get("with") == ":base" else str(conflict.get("with"))
    if conflict.get("host"):
        other += f" (host {conflict['host']})"
    lines = conflict.get("lines") or {}
    paths = []
    for path in conflict.get("paths") or []:
        ranges = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in lines.get(path) or [])
        paths.append(f"{path} (lines {ranges})" if ranges else path)
    return f"conflict with {other}: {', '.join(paths)}"
