"""Textual user interface: the app, its widgets, their rendering helpers and the themes."""
