"""Scope globs: which paths an agent owns.

Glob syntax, as in ``.gitignore``-style tools: ``*`` matches within one path segment, ``?`` one
character of a segment, ``[...]`` a character class, ``**`` any number of segments (``src/**``
is everything under ``src``; ``**/test_*.py`` a file at any depth). Patterns are relative to the
repository root; a pattern with no ``/`` also matches by the file name alone (``*.md``).
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip().lstrip("/")
    if pattern.endswith("/"):
        pattern += "**"
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1:end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches(path: str, pattern: str) -> bool:
    """Whether repository-relative ``path`` matches the scope glob ``pattern``."""
    path = path.lstrip("./") if path.startswith("./") else path
    if _compile(pattern).match(path):
        return True
    if "/" not in pattern.strip().rstrip("/"):
        return bool(_compile(pattern).match(path.rsplit("/", 1)[-1]))
    return False


def in_scope(path: str, scope: list[str] | tuple[str, ...]) -> bool:
    """No scope means the agent owns everything."""
    return not scope or any(matches(path, pattern) for pattern in scope)


def literal_prefix(pattern: str) -> str:
    """The directory part of a glob before its first wildcard (``src/auth/**`` → ``src/auth/``)."""
    cut = len(pattern)
    for token in "*?[":
        at = pattern.find(token)
        if at != -1:
            cut = min(cut, at)
    head = pattern[:cut]
    return head[: head.rfind("/") + 1] if "/" in head else ""


def overlap(a: list[str] | tuple[str, ...], b: list[str] | tuple[str, ...], paths: list[str]) -> list[str]:
    """Patterns of ``a`` and ``b`` that can claim the same file: both match one of ``paths``
    (the repository's files), or one's literal directory contains the other's. An empty scope
    owns everything, so it overlaps any declared scope; two agents that both declare none have
    not opted into ownership and are not reported."""
    found: list[str] = []
    if not a and not b:
        return []
    if not a or not b:
        return ["one of them has no scope and owns everything"]
    for pa in a:
        for pb in b:
            prefix_a, prefix_b = literal_prefix(pa), literal_prefix(pb)
            nested = prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a)
            shared = nested and any(matches(p, pa) and matches(p, pb) for p in paths)
            if shared or pa == pb or (nested and ("**" in pa or "**" in pb)):
                found.append(f"{pa} ~ {pb}")
    return found
