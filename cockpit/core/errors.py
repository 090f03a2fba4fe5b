"""Errors the engine raises on purpose. Each carries a one-line message meant for the user."""

from __future__ import annotations


class CockpitError(Exception):
    """An operation was refused or failed; the message says why in one line. Exit status 1."""


class ConfigError(CockpitError):
    """cockpit.toml (or another config file) is malformed; the message names file, line and key."""


class NotFound(CockpitError):
    """The named agent (or archive) does not exist."""


class LockBusy(CockpitError):
    """Another cockpit process holds the repository lock for longer than we are willing to wait."""


def one_line(exc: BaseException) -> str:
    """The message a user sees for ``exc``, wherever it surfaces (the CLI's stderr, a TUI
    notification, an ``*.failed`` event): a :class:`CockpitError` says why in its own words;
    anything else is a bug or an OS error, so its type is named too (``OSError: ...``)."""
    if isinstance(exc, CockpitError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
