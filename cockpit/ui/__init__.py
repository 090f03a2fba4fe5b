"""Textual user interface: the app, its widgets and its themes."""
