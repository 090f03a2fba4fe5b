"""The cockpit engine: configuration, git worktrees, tmux sessions, logs, the event log and
fleet operations. Nothing in this package imports Textual or Rich (tests/test_import_hygiene.py)."""
