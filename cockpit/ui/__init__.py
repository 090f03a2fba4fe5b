"""Terminal user interface of cockpit (Textual widgets and their rendering helpers)."""
