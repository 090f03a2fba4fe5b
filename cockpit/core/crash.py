"""Crash points: places where an operation may be killed in the crash tests.

Every operation records its steps in the event log so that a crash between any two of them can
be found and finished or rolled back (:mod:`cockpit.core.recovery`, the merge queue's settle).
The tests prove it by killing a real cockpit process at a named step: ``COCKPIT_CRASH_AT=op:step``
in its environment makes :func:`crash_point` SIGKILL the process there. Unset, it costs one
environment look-up.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "COCKPIT_CRASH_AT"


def crash_point(op: str, step: str) -> None:
    """Die here, at once and without cleanup, if :data:`CRASH_ENV` names ``op:step``."""
    if os.environ.get(CRASH_ENV) == f"{op}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)
