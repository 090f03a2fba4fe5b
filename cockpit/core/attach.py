"""Attaching the user's terminal to an agent's tmux session: a plain attach, or a popup of the
user's own tmux when cockpit runs inside one (a nested client would lose its keys to it)."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from cockpit.core.tmux_setup import MIN_TMUX

DETACH_KEYS = "C-b d"
"""What detaches from an agent's session: the agent server's prefix, then d (its status line says so)."""


@dataclass(frozen=True)
class AttachPlan:
    """A command that attaches the user's terminal to an agent, and the environment to run it in."""

    argv: list[str]
    env: dict[str, str]
    popup: bool       # opens in a popup of the user's own tmux: the terminal is not handed over
    note: str = ""    # to tell the user before attaching (how to detach, when it is not the usual way)


def plan(nested: list[str], name: str, environ: Mapping[str, str]) -> AttachPlan:
    """How to attach the user's terminal (whose environment is ``environ``) to the agent.

    Outside tmux: a plain ``attach-session`` in this terminal. Inside the user's own tmux
    (``TMUX`` set) a nested client would lose its keys to the outer tmux — ``C-b d`` would
    detach the user's own session — so the agent opens in a popup of the user's tmux
    (``display-popup -E``, tmux >= 3.2), which takes every key: there ``C-b d`` detaches the
    agent's client and closes the popup. An outer tmux that cannot show a popup gets the
    nested attach and a note with the keys that work there. ``nested``: the plain attach command
    (:meth:`cockpit.core.sessions.Tmux.attach_argv`)."""
    plain = {key: value for key, value in environ.items() if key not in ("TMUX", "TMUX_PANE")}
    if not environ.get("TMUX"):
        return AttachPlan(nested, plain, popup=False)
    if not _outer_has_popups(environ):
        return AttachPlan(nested, plain, popup=False,
                          note="your tmux cannot open popups (tmux < 3.2): attached inside it; detach "
                               "with your prefix twice, then d (C-b C-b d)")
    inner = shlex.join(["env", "-u", "TMUX", "-u", "TMUX_PANE", *nested])
    popup = ["tmux", "display-popup", "-E", "-w", "100%", "-h", "100%",
             "-T", f" cockpit: {name} · detach: {DETACH_KEYS} ", inner]
    return AttachPlan(popup, dict(environ), popup=True)


def _outer_has_popups(environ: Mapping[str, str]) -> bool:
    """Whether the user's own tmux (the one ``$TMUX`` names) is 3.2 or newer and has a client
    to show a popup on."""
    try:
        result = subprocess.run(["tmux", "display-message", "-p", "#{version} #{client_name}"], env=dict(environ),
                                capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    match = re.match(r"(\d+)\.(\d+)\S* (\S+)", result.stdout.strip())
    return result.returncode == 0 and match is not None and (int(match[1]), int(match[2])) >= MIN_TMUX
