"""The Claude Code hook recorder's cost: the whole process, as Claude Code runs it (``/bin/sh -c``
with the command of the settings file, the hook's JSON on stdin), against Python doing nothing.

Claude Code waits for an event's hooks before it goes on, so this is added to every tool call
and prompt of a ``claude-code`` agent. Rounds alternate between the four commands so a busy
moment of the machine hits them all alike.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import PROJECT, summary
from cockpit.core import hook_record

PAYLOAD = {"session_id": "419241e6-982b-4839-b9c5-d53f0932a10c",
           "transcript_path": "/home/u/.claude/projects/-w/419241e6-982b-4839-b9c5-d53f0932a10c.jsonl",
           "cwd": "/w", "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
           "tool_input": {"command": "pytest -q", "description": "Run the tests"}, "tool_use_id": "toolu_01"}


def _time(argv: list[str], stdin: bytes) -> float:
    started = time.perf_counter()
    subprocess.run(argv, input=stdin, capture_output=True, check=True)
    return time.perf_counter() - started


def bench_hook(rounds: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="cockpit-bench-hook-"))
    agent_dir = tmp / ".cockpit" / "agents" / "a"
    agent_dir.mkdir(parents=True)
    try:
        recorder = shlex.join(hook_record.argv(sys.executable, str(PROJECT), str(agent_dir)))
        commands = {  # the same interpreter throughout (a python3 found on PATH may be a slow shim)
            "hook": ["/bin/sh", "-c", recorder],
            "python3_pass": [sys.executable, "-c", "pass"],
            "python_isolated_pass": [sys.executable, "-I", "-S", "-c", "pass"],
            "import_cockpit_cli": [sys.executable, "-c", "import cockpit.cli"],
        }
        stdin = json.dumps(PAYLOAD).encode()
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(rounds):
            for name, argv in commands.items():
                times[name].append(_time(argv, stdin))
        recorded = len((agent_dir / hook_record.HOOKS_FILE).read_text().splitlines())
        return {"rounds": rounds, "recorded": recorded, "python3": sys.executable,
                "seconds": {name: summary(values) for name, values in times.items()}}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
