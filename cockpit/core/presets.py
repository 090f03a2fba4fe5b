"""Presets: what a known agent program's "I am asking you something" screen looks like.

Most programs that wait for an answer sleep in a ``read`` of their terminal, which
:mod:`cockpit.core.activity` sees in ``/proc`` without looking at the screen. Full-screen agents
(Claude Code, Codex, Gemini CLI, anything built on a TUI toolkit) instead watch the terminal
with poll/select/epoll, so they look the same whether they are thinking or asking. For them, and
only for agents whose spec names a preset, the bottom of the visible screen is matched against a
few patterns, each saying why the agent waits (``permission``, ``question``, ``trust``,
``sign-in``) or that it hit its usage limit (``rate-limited``, with the reset time when the screen
shows one). There is no screen hashing and no guessing from "the screen stopped changing", and
cockpit never sends keys because of what a screen says.

The ``claude-code`` preset has better than the screen: Claude Code's own hooks report what it
does (:mod:`cockpit.core.hook_record`); its screen patterns are the fallback for what comes
before any hook (the trust and API-key dialogs) and for hooks switched off. docs/presets.md says
what each preset detects and how each pattern was checked against the real program.

Patterns are matched against plain text (``capture-pane -p``, no escapes) of the last
:data:`BOTTOM_LINES` non-blank lines, so a prompt that was answered and scrolled up no longer
counts.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime

BOTTOM_LINES = 15


@dataclass(frozen=True)
class Prompt:
    """One screen pattern and why an agent showing it waits (``permission``, ``question``...)."""

    source: str
    reason: str

    @property
    def pattern(self) -> re.Pattern[str]:
        return compiled(self.source)


@dataclass(frozen=True)
class Preset:
    """A known agent program: the screen text it shows while it waits for the user, the text of
    its usage limit, and whether cockpit registers its hooks."""

    name: str
    description: str
    prompts: tuple[Prompt, ...]
    limit_sources: tuple[str, ...] = ()
    hooks: bool = False

    @property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        return tuple(p.pattern for p in self.prompts)

    @property
    def limits(self) -> tuple[re.Pattern[str], ...]:
        return tuple(compiled(source) for source in self.limit_sources)


@functools.cache
def compiled(source: str) -> re.Pattern[str]:
    """``source`` compiled (case-insensitive) on its first use: every cockpit process imports the
    presets, and only those that look at an agent's screen need their patterns (compiling them
    all was ~3 ms of each command's start-up)."""
    return re.compile(source, re.IGNORECASE)


def _p(reason: str, *patterns: str) -> tuple[Prompt, ...]:
    return tuple(Prompt(p, reason) for p in patterns)


def _limits(*patterns: str) -> tuple[str, ...]:
    return patterns


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("claude-code", "Anthropic's Claude Code CLI: its own hooks, then permission, question and "
                              "trust dialogs and the usage-limit message on screen",
               _p("permission", r"Do you want to (proceed|make this edit|create|overwrite|delete|run|allow)\b",
                  r"No, and tell Claude what to do differently",
                  r"Esc to cancel · Tab to amend")
               + _p("question", r"Enter to select · ↑/↓ to navigate",
                    r"Do you want to use this API key\?")
               + _p("trust", r"Yes, I trust this folder", r"Do you trust the files in this folder")
               + _p("sign-in", r"Not logged in · (?:Please )?run /login"),
               _limits(r"You(?:'|’)ve hit your (?:\w+ )?limit\b", r"Claude (?:AI )?usage limit reached",
                       r"Stop and wait for limit to reset"),
               hooks=True),
        Preset("codex", "OpenAI's Codex CLI: approval prompts, sign-in and the usage-limit message on screen",
               _p("permission", r"Would you like to (run the following command|make the following edits|"
                                r"grant these permissions|send input to)",
                  r"Yes, just this once", r"Yes, and don't ask again")
               + _p("sign-in", r"Sign in with ChatGPT[\s\S]*Press enter to continue"),
               _limits(r"hit your usage limit", r"Usage limit reached")),
        Preset("gemini", "Google's Gemini CLI: confirmation prompts, trust and sign-in dialogs and the "
                         "quota message on screen",
               _p("permission", r"Allow execution of\b", r"Apply this change\?", r"Do you want to proceed\?",
                  r"Waiting for user confirmation")
               + _p("trust", r"Do you trust the files in this folder\?")
               + _p("sign-in", r"How would you like to authenticate"),
               _limits(r"You have exhausted your daily quota", r"Please wait and try again later\. To increase "
                                                               r"your limits")),
        Preset("aider", "aider: its yes/no questions and its input prompt on screen",
               _p("question", r"\(Y\)es/\(N\)o(?: \[\w+\])?: ?\Z")  # unanswered: the last thing on screen
               + _p("done", r"─{20,}\n(?:\w+)?> ?(?:\S.*)?\Z")),
    )
}


# -- usage limits -----------------------------------------------------------------------------------
_RESETS = (
    re.compile(r"\bresets? (?:at )?(.+?)(?:\.\s*$|$)", re.IGNORECASE | re.MULTILINE),
    re.compile(r"\btry again at (.+?)(?:\.\s*$|$)", re.IGNORECASE | re.MULTILINE),
)
_EPOCH = re.compile(r"usage limit reached\|(\d{9,11})", re.IGNORECASE)


def rate_limit_reset(text: str) -> str | None:
    """``resets 7:39pm (UTC)`` from a usage-limit message (``You've hit your session limit ·
    resets 7:39pm (UTC)``, ``Your limit will reset at 5pm (America/Chicago).``, the machine form
    ``Claude AI usage limit reached|<epoch>``), or None when it shows no reset time."""
    if not text:
        return None
    epoch = _EPOCH.search(text)
    if epoch:
        return "resets " + datetime.fromtimestamp(int(epoch.group(1))).strftime("%Y-%m-%d %H:%M")
    for pattern in _RESETS:
        match = pattern.search(text)
        if match and match.group(1).strip():
            return "resets " + match.group(1).strip()[:60]
    return None


# -- the screen ----------------------------------------------------------------------------------------
def screen_says(preset: str, screen: list[str]) -> tuple[str, str | None] | None:
    """What the bottom of ``screen`` (plain text lines) shows for ``preset``: ``("waiting",
    reason)`` for one of its prompts, ``("rate-limited", reset)`` for its usage-limit message, or
    None. An unknown preset never matches (the config loader rejects unknown names)."""
    known = PRESETS.get(preset)
    if known is None:
        return None
    lines = [line for line in screen if line.strip()][-BOTTOM_LINES:]
    text = "\n".join(lines)
    for prompt in known.prompts:
        if prompt.pattern.search(text):
            return "waiting", prompt.reason
    for limit in known.limits:
        match = limit.search(text)
        if match:
            return "rate-limited", rate_limit_reset(text[match.start():])
    return None


def screen_shows_prompt(preset: str, screen: list[str]) -> bool:
    """Whether the bottom of ``screen`` shows one of ``preset``'s prompts."""
    found = screen_says(preset, screen)
    return found is not None and found[0] == "waiting"
