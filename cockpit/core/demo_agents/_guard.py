"""The demo agents run only where cockpit runs them: inside their own cockpit worktree.

They edit files in their current directory, so run by hand (or imported by a doc tool, a test
collector or an IDE indexer) they must do nothing: ``COCKPIT_WORKTREE`` is set by cockpit to the
agent's worktree, and it must be the current directory."""

import os
import sys


def inside_own_worktree() -> bool:
    """True when this process runs in the cockpit worktree it was given; else says why."""
    worktree = os.environ.get("COCKPIT_WORKTREE")
    try:
        here = os.path.realpath(os.getcwd())
    except OSError:
        here = ""
    if worktree and os.path.realpath(worktree) == here:
        return True
    print("this is a cockpit demo agent: it runs only inside its own cockpit worktree "
          "(COCKPIT_WORKTREE equal to its working directory); try 'cockpit demo'", file=sys.stderr)
    return False
