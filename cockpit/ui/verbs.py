"""The actions a user can take on one agent: their names in the palette, and when each applies.

One rule, used by the keys (which say at once why an action cannot apply), the palette (which
does not offer it) and the zoomed view.
"""

from __future__ import annotations

from cockpit.core.agent import Agent

AGENT_VERBS: tuple[tuple[str, str, str], ...] = (
    ("pause", "pause", "Freeze the agent's processes in place"),
    ("resume", "resume", "Continue a paused agent"),
    ("kill", "kill", "End the agent's processes and session (asks first)"),
    ("discard", "discard", "Archive, then remove worktree and branch (asks first)"),
    ("respawn", "respawn", "Start the next attempt"),
    ("fail", "mark_failed", "Mark the agent failed: counts towards max_failures (asks first)"),
    ("attach", "attach", "Attach this terminal to the agent's tmux session"),
    ("zoom", "zoom", "Show the agent full-screen"),
    ("diff", "diff", "Show what the agent changed against base"),
    ("merge", "merge", "Queue the agent for merging into base and run the queue"),
    ("screen view", "toggle_screen", "Switch between its log and its tmux screen"),
)
"""``(words in the palette, app agent action, help)`` offered for every agent."""


def unavailable(agent: Agent, action: str) -> str | None:
    """Why ``action`` cannot apply to ``agent`` in its present state, or None when it can.
    Keys say this at once instead of asking first; the palette does not offer the action."""
    name, process = agent.name, agent.process
    alive = process in ("running", "paused")
    if action in ("pause", "kill") and not alive:
        hint = "; r respawns it" if action == "pause" else ""
        return f"{name} is not running ({process}): nothing to {action}{hint}"
    if action == "resume" and process != "paused":
        return f"{name} is not paused ({process})"
    if action == "pause_only" and process != "running":
        return f"{name} is not running ({process})"
    if action == "mark_failed" and process in ("failed", "halted"):
        return f"{name} has already failed ({process}, {agent.failures} of {agent.max_failures} failures counted)"
    if action in ("attach", "toggle_screen") and agent.host and process == "unknown":
        return f"{name} cannot be reached now: {agent.reason}"
    if action in ("attach", "toggle_screen") and (not alive if agent.host else agent.pid is None):
        return f"{name} has no terminal any more ({process}): r respawns it"
    return None
