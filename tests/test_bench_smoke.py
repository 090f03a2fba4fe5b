"""The benchmark harness cannot rot: its quickest mode (one agent, one round) runs and writes
every figure's keys. No timing is asserted here; ``make bench`` measures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.tmux


def test_the_bench_harness_runs_in_smoke_mode(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    result = subprocess.run([sys.executable, str(PROJECT / "bench" / "run.py"), "--smoke", "--out", str(out)],
                            capture_output=True, text=True, env=env, timeout=300, cwd=PROJECT)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert {"machine", "spawn_discard", "latency", "startup", "big_log", "idle", "flood", "scale",
            "radar", "hook", "hosts", "remote", "total_s"} <= set(data)
    assert "skipped" in data["remote"]  # (it starts an sshd: `make bench` measures it, tests/test_hosts.py tests it)
    assert {"spawn_ratio", "discard_ratio", "archive_share_of_discard", "seconds",
            "cli_spawn"} <= set(data["spawn_discard"])
    assert {"ratio", "seconds"} <= set(data["spawn_discard"]["cli_spawn"])
    assert {"latency_ms", "lines", "never_shown"} <= set(data["latency"]["1"])
    assert {"process_to_frame_s", "app_to_frame_s"} <= set(data["startup"]["1"])
    assert {"first_paint_s", "extra_growth_mb"} <= set(data["big_log"])
    assert {"cpu_percent", "rss_mb"} <= set(data["idle"])
    flood = data["flood"]
    assert {"missing_lines", "missing_bytes", "key_latency_ms", "keys", "cockpit_cpu_percent", "mb_per_s",
            "bytes_per_agent", "per_agent"} <= set(flood)
    assert flood["bytes_total"] > 0 and flood["keys"] > 0
    scale = data["scale"]
    assert {"spawn_s", "ls_s", "ops", "ops_ok", "ops_total", "failures"} <= set(scale)
    assert {"ls", "ls --json"} <= set(scale["ls_s"])
    assert {"pause", "resume", "kill", "respawn", "discard", "restore"} <= set(scale["ops"])
    assert {"hook", "python3_pass", "import_cockpit_cli"} <= set(data["hook"]["seconds"])
    assert data["hook"]["recorded"] == data["hook"]["rounds"]  # every run of the recorder recorded its event
    assert "| figure |" in result.stdout
    assert {"latency_ms", "radar_rounds_per_run", "never_shown", "p99_per_run_ms",
            "key_latency_ms"} <= set(data["radar_load"])
    assert set(data["radar_load"]["latency_ms"]) == {"off", "on"}
    radar = data["radar"]
    assert {"full_round_s", "incremental_round_s", "unchanged_round_s", "counts", "stepped_round"} <= set(radar)
    assert radar["counts"]["unchanged"]["merge_trees"] == 0
