"""Presets: what a known agent program's "I am asking you something" screen looks like.

Most programs that wait for an answer sleep in a ``read`` of their terminal, which
:mod:`cockpit.core.activity` sees in ``/proc`` without looking at the screen. Full-screen agents
(Claude Code, Codex, anything built on a TUI toolkit) instead watch the terminal with
poll/select/epoll, so they look the same whether they are thinking or asking. For them, and only
for agents whose spec names a preset, the bottom of the visible screen is matched against a few
patterns. There is no screen hashing and no guessing from "the screen stopped changing".

Patterns are matched against plain text (``capture-pane -p``, no escapes) of the last
:data:`BOTTOM_LINES` non-blank lines, so a prompt that was answered and scrolled up no longer
counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BOTTOM_LINES = 15


@dataclass(frozen=True)
class Preset:
    """A known agent program and the screen text it shows while it waits for the user."""

    name: str
    description: str
    prompts: tuple[re.Pattern[str], ...]


def _p(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("claude-code", "Anthropic's Claude Code CLI: permission and trust prompts", _p(
            r"Do you want to (proceed|make this edit|create|overwrite|delete|run|allow)\b",
            r"No, and tell Claude what to do differently",
            r"Do you trust the files in this folder",
        )),
        Preset("codex", "OpenAI's Codex CLI: approval prompts", _p(
            r"Allow command\?",
            r"Would you like to (run|make|apply) the following",
            r"Yes, (proceed|allow)\b.*\(y\)",
        )),
        Preset("aider", "aider: yes/no questions", _p(
            r"\(Y\)es/\(N\)o",
        )),
    )
}


def screen_shows_prompt(preset: str, screen: list[str]) -> bool:
    """Whether the bottom of ``screen`` (plain text lines) shows one of ``preset``'s prompts.
    An unknown preset never matches (the config loader rejects unknown names)."""
    known = PRESETS.get(preset)
    if known is None:
        return False
    lines = [line for line in screen if line.strip()][-BOTTOM_LINES:]
    text = "\n".join(lines)
    return any(pattern.search(text) for pattern in known.prompts)
