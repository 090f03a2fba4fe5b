"""Each preset's screen patterns against what the real programs showed (tests/screens/: tmux
captures of Claude Code 2.1.197, codex-cli 0.171.0, Gemini CLI 0.61.0 and aider 0.86.2, taken
offline; docs/presets.md says how each was made)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core.presets import PRESETS, screen_says, screen_shows_prompt

SCREENS = Path(__file__).with_name("screens")


def screen(name: str) -> list[str]:
    return (SCREENS / f"{name}.txt").read_text().splitlines()


@pytest.mark.parametrize(("preset", "capture", "expected"), [
    ("claude-code", "claude-permission", ("waiting", "permission")),
    ("claude-code", "claude-question", ("waiting", "question")),
    ("claude-code", "claude-trust", ("waiting", "trust")),
    ("claude-code", "claude-limit", ("rate-limited", "resets 7:39pm (UTC)")),
    ("claude-code", "claude-not-logged-in", ("waiting", "sign-in")),
    ("claude-code", "claude-busy", None),  # working, a message queued: nothing to answer
    ("codex", "codex-sign-in", ("waiting", "sign-in")),
    ("gemini", "gemini-trust", ("waiting", "trust")),
    ("aider", "aider-question", ("waiting", "question")),
    ("aider", "aider-question-2", ("waiting", "question")),
    ("aider", "aider-prompt", ("waiting", "done")),  # the earlier question is answered: only the prompt counts
])
def test_what_each_preset_reads_from_the_real_programs_screens(preset: str, capture: str,
                                                               expected: tuple[str, str | None] | None) -> None:
    assert screen_says(preset, screen(capture)) == expected


def test_a_preset_does_not_read_another_programs_screens() -> None:
    assert screen_says("aider", screen("claude-permission")) is None
    assert screen_says("codex", screen("claude-question")) is None
    assert screen_says("nope", screen("claude-permission")) is None
    assert screen_shows_prompt("claude-code", screen("claude-permission"))
    assert not screen_shows_prompt("claude-code", screen("claude-limit")[:-8])  # the limit line alone: not a prompt


def test_codex_and_gemini_prompts_are_the_programs_own_strings() -> None:
    """Neither gets past sign-in offline; their prompts are matched against the strings their
    released builds contain (codex-cli 0.171.0's binary, Gemini CLI 0.61.0's bundle)."""
    codex = ["  Would you like to run the following command?", "  $ touch x", "› 1. Yes, just this once"]
    assert screen_says("codex", codex) == ("waiting", "permission")
    assert screen_says("codex", ["■ You've hit your usage limit. Upgrade to Pro or try again at 4:05 PM."]) == (
        "rate-limited", "resets 4:05 PM")
    gemini = ["│ ? Shell touch x", "│ Allow execution of: 'touch'?", "│ ● 1. Allow once"]
    assert screen_says("gemini", gemini) == ("waiting", "permission")
    assert screen_says("gemini", ["✕ You have exhausted your daily quota on this model."])[0] == "rate-limited"
    assert set(PRESETS) == {"claude-code", "codex", "gemini", "aider"}
