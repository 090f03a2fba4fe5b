"""cockpit: run several coding agents in parallel on one repository, each isolated."""

__version__ = "0.1.0"
