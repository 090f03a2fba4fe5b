"""A remote agent's latencies against one round trip on the host's open connection, all in one
run so a busy moment of the shared machine hits them alike (issue 18, "Speed").

- keys: a line typed into ``cockpit attach`` of a remote agent (``ssh -t`` over the shared
  connection, tmux attach there; the terminal here is a pty) until the agent's own process has
  read it (it appends the line and ``time.time()`` to a file), against the same line typed into
  ``cockpit attach`` of a local agent (tmux's own path: the baseline); and the TUI's pause/resume of a
  remote agent (``Fleet.pause``/``resume``, what the ``p`` key runs) until the agent's process
  is stopped/running again (its state in ``/proc``, polled every millisecond): over the kept
  session the TUI holds to each host, as a one-shot request (what a key cost before the kept
  sessions), and the same keys on a local agent (the baseline: local + one round trip);
- logs: the ``bench.ui latency`` child (the real app, headless) on one local and one remote
  agent, each printing a timestamped line every 10 ms; a line counts as on screen at the first
  paint of its tile that shows it or a newer one (as in the local figure);
- round trip: one line echoed by ``cat`` over an ssh session already open on the connection
  (no process start on either side), and ``ssh HOST true`` (a new session on it, ssh's own
  client start included).

The host is the test harness's (tests/hosts_support.py: a Unix user with an sshd of its own on
loopback, this checkout installed there), so both clocks are this machine's and a remote time
stamp compares with a local one. Needs root; without it the figure says why it was skipped.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import PROJECT, make_repo, summary
from devsupport.polling import wait_until

sys.path.insert(0, str(PROJECT / "tests"))

KEY_AGENT = """\
import os, sys, time
out = sys.argv[1]
with open(out + ".pid", "w") as f:
    f.write(str(os.getpid()))
print("KEY-AGENT-READY", flush=True)
while True:
    line = sys.stdin.readline()
    seen = time.time()
    if not line:
        break
    with open(out, "a") as f:
        f.write(f"{line.strip()} {seen:.6f}\\n")
"""


PAUSES_PER_ROUND = 3
"""Pauses and resumes of each kind per round (a round's keys are many; these were one: n was 10)."""


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _until_state(pid: int, stopped: bool, deadline: float = 30.0) -> float:
    """The time at which ``pid`` is first seen stopped (``T``) or not, polled every 0.2 ms (a
    millisecond was as much as the differences measured)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if (_state(pid) == "T") == stopped:
            return time.time()
        time.sleep(0.0002)
    raise TimeoutError(f"pid {pid} never {'stopped' if stopped else 'ran again'}")


class Echo:
    """``cat`` on the host over one ssh session of the shared connection: a line there and back
    is one round trip with no process started."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.round_trip()  # the session is open

    def round_trip(self) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        started = time.perf_counter()
        self.proc.stdin.write(b"x\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline() != b"x\n":
            raise RuntimeError("the echo session ended")
        return time.perf_counter() - started

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class AttachedTerminal:
    """``argv`` (an ``ssh -t ... tmux attach``) on a pty of its own; its output is drained."""

    def __init__(self, argv: list[str]) -> None:
        master, slave = pty.openpty()
        import fcntl
        import struct
        import termios
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        env = {k: v for k, v in os.environ.items() if k != "TMUX"} | {"TERM": "xterm-256color"}
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.fd = master
        self.screen = bytearray()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            self.screen += data[-4096:]
            del self.screen[:-8192]

    def type(self, text: str) -> float:
        """Writes ``text`` as typed keys; when (``time.time()``)."""
        at = time.time()
        os.write(self.fd, text.encode())
        return at

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        finally:
            os.close(self.fd)


def bench_remote(rounds: int, keys: int, log_rounds: int, log_seconds: float) -> dict[str, object]:
    """``rounds`` rounds, each: ``keys`` typed lines and round trips alternating, one pause and one
    resume, ``ssh true``; then ``log_rounds`` runs of the TUI on a local and a remote writer."""
    from hosts_support import VENV, Lab, unavailable
    reason = unavailable()
    if reason:
        return {"skipped": reason}
    from bench.tui import match_lines, run_child
    from bench.ui import WRITER
    from cockpit.core import hosts as remote
    from cockpit.core import transport
    from cockpit.core.fleet import Fleet
    from cockpit.core.host_table import HostSpec
    from cockpit.core.transport import Transport
    lab = Lab()
    tmp = Path(tempfile.mkdtemp(prefix="cockpit-bench-remote-"))
    shared = Path(tempfile.mkdtemp(prefix="ckbench-"))  # the host user's agents read and write here
    shared.chmod(0o777)
    fleet: Fleet | None = None
    try:
        host, = lab.up("big")
        lab.install_cockpit(host)
        python = host.python()
        for name, text in (("key_agent.py", KEY_AGENT), ("writer.py", WRITER)):
            (shared / name).write_text(text)
            (shared / name).chmod(0o644)
        repo = make_repo(tmp, files=5)
        (repo / "cockpit.toml").write_text(
            f'[[host]]\nname = "big"\nssh = "big"\nrepo = "~/repo"\ncockpit = "~/{VENV}/bin/cockpit"\n'
            f'ssh_config = "{lab.config}"\n')
        os.environ.pop("TMUX", None)
        fleet = Fleet(repo)
        link = Transport(HostSpec("big", "big", "~/repo", f"~/{VENV}/bin/cockpit", str(lab.config)))
        times: dict[str, list[float]] = {"round_trip": [], "ssh_true": [], "attach_key": [], "local_attach_key": [],
                                         "pause": [],
                                         "resume": [], "pause_call": [], "resume_call": [], "remote_python": [],
                                         "remote_cockpit_version": [], "one_shot_pause": [], "one_shot_resume": [],
                                         "local_pause": [], "local_resume": [], "one_shot_pause_call": [],
                                         "one_shot_resume_call": [], "local_pause_call": [], "local_resume_call": []}

        # -- keys ----------------------------------------------------------------------------
        keys_file = shared / "keys.txt"
        remote.spawn(fleet, _spec("rkey", f"{python} -u {shared / 'key_agent.py'} {keys_file}"), "big")
        wait_until(lambda: Path(f"{keys_file}.pid").exists(), 30, message="the remote key agent's pid")
        pid = int(Path(f"{keys_file}.pid").read_text())
        local_keys = shared / "local-keys.txt"
        fleet.spawn("lkey", command=f"{sys.executable} -u {shared / 'key_agent.py'} {local_keys}")
        wait_until(lambda: Path(f"{local_keys}.pid").exists(), 30, message="the local key agent's pid")
        local_pid = int(Path(f"{local_keys}.pid").read_text())
        echo = Echo(link.argv(["cat"]))
        terminal = AttachedTerminal(remote.attach_argv(fleet, "rkey", "big"))
        # the baseline: the same keys typed into `cockpit attach` of the local agent (tmux attach here)
        local_terminal = AttachedTerminal(fleet.attach_plan("lkey", {k: v for k, v in os.environ.items()
                                                                     if k != "TMUX"}).argv)
        try:
            wait_until(lambda: b"KEY-AGENT-READY" in terminal.screen, 30, message="the attached remote screen")
            wait_until(lambda: b"KEY-AGENT-READY" in local_terminal.screen, 30, message="the attached local screen")
            seen = 0
            for r in range(rounds):
                for k in range(keys):
                    times["round_trip"].append(echo.round_trip())
                    marker = f"k{r}-{k}"
                    seen += 1
                    for screen, file, label in ((terminal, keys_file, "attach_key"),
                                                (local_terminal, local_keys, "local_attach_key")):
                        typed = screen.type(marker + "\r")

                        def arrived(count: int = seen, file: Path = file) -> bool:
                            return file.exists() and len(file.read_text().splitlines()) >= count
                        wait_until(arrived, 30, interval=0.002, message=f"key {marker} read ({label})")
                        last = file.read_text().splitlines()[-1].split()
                        assert last[0] == marker, last
                        times[label].append(float(last[1]) - typed)
                # the TUI's keys as a one-shot request each (no kept session: what they cost
                # before); over the kept session (warm, as the TUI's polls keep it); on a local agent
                transport.close_sessions()
                for label, target, agent_pid in (("one_shot_", "rkey", pid), ("", "rkey", pid),
                                                 ("local_", "lkey", local_pid)):
                    if label == "":
                        transport.keep_sessions()
                        remote.host_agents(fleet, "big")  # the TUI's poll of the host: the session is up
                    for _ in range(PAUSES_PER_ROUND):
                        for op, stopped in (("pause", True), ("resume", False)):
                            times[f"{label}{op}"].append(_key(fleet, op, target, agent_pid, stopped, times, label))
                times["ssh_true"].append(_timed(link.argv(["true"])))
                times["remote_python"].append(_timed(link.argv([python, "-c", "pass"])))
                times["remote_cockpit_version"].append(_timed(link.cockpit_argv("--version")))
        finally:
            terminal.close()
            local_terminal.close()
            echo.close()
        transport.close_sessions()
        fleet.kill("rkey")
        fleet.discard("lkey")  # (gone from the list: the log figure counts its agents)

        # -- logs ----------------------------------------------------------------------------
        fleet.spawn("local", command=f"{sys.executable} -u {shared / 'writer.py'} 100")
        remote.spawn(fleet, _spec("remote", f"{python} -u {shared / 'writer.py'} 100"), "big")
        remote_log = remote.remote_agent(fleet, "big", "remote").log
        log_latency: dict[str, list[float]] = {"local": [], "remote": []}
        per_round: dict[str, list[float]] = {"local": [], "remote": []}
        never: dict[str, int] = {"local": 0, "remote": 0}
        echo = Echo(link.argv(["cat"]))
        try:
            for _ in range(log_rounds):
                child = run_child("latency", fleet, 3, log_seconds)
                logs = {"local": Path(fleet.layout.session_log("local")).read_bytes(),
                        "remote": Path(remote_log).read_bytes()}
                for name in ("local", "remote"):
                    events = [e for e in child["events"] if e[0] == name]
                    lat, missing = match_lines(events, child["window"], {name: logs[name]})
                    log_latency[name] += [x * 1000 for x in lat]
                    per_round[name].append(summary([x * 1000 for x in lat], 1).get("p50", float("nan")))
                    never[name] += missing
                for _ in range(keys):
                    times["round_trip"].append(echo.round_trip())
        finally:
            echo.close()
        ms = {k: summary([x * 1000 for x in v], 2) for k, v in times.items()}
        return {"rounds": rounds, "keys_per_round": keys, "log_rounds": log_rounds, "log_seconds": log_seconds,
                "ms": ms, "log_ms": {k: summary(v, 1) for k, v in log_latency.items()},
                "log_p50_per_round_ms": per_round, "log_never_shown": never,
                "method": "same machine: the host is a Unix user with its own sshd on loopback"}
    finally:
        if fleet is not None:
            subprocess.run(["tmux", "-S", fleet.tmux.socket, "kill-server"], capture_output=True)
        lab.close()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)


def _key(fleet, op: str, name: str, pid: int, stopped: bool, times: dict[str, list[float]],  # type: ignore[no-untyped-def]
         label: str) -> float:
    """``Fleet.pause``/``resume`` of ``name`` (what the ``p`` key runs) until its process ``pid``
    is seen stopped / running again; the call's own duration goes to ``times``."""
    result: dict[str, float] = {}
    watcher = threading.Thread(target=lambda: result.setdefault("at", _until_state(pid, stopped)))
    started = time.time()
    watcher.start()
    getattr(fleet, op)(name)
    times[f"{label}{op}_call"].append(time.time() - started)
    watcher.join(30)
    return result["at"] - started


def _spec(name: str, command: str):  # type: ignore[no-untyped-def]
    from cockpit.core.spec import AgentSpec
    return AgentSpec(name=name, command=command, host="big")


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[-2:]} exited {result.returncode}: {result.stderr.decode()[-500:]}")
    return time.perf_counter() - started


def remote_rows(r: dict) -> list[str]:
    if "skipped" in r:
        return [f"| a remote agent's key and log latency | skipped: {r['skipped']} | | |"]
    ms, log = r["ms"], r["log_ms"]
    rtt = ms["round_trip"]

    def verdict(measured: float, bound: float) -> str:
        return "met" if measured <= bound else f"**missed** (by {measured - bound:.2f} ms at p50)"

    def fig(s: dict) -> str:
        return f"p50 {s['p50']} ms, p99 {s['p99']} (min {s['min']}, max {s['max']}, n {s['n']})"

    key = ms["attach_key"]
    rows = [f"| remote agent: a line typed into `cockpit attach` (ssh -t, tmux attach there) until the agent "
            f"read it | {fig(key)}; one round trip {fig(rtt)} | ≤ one round trip | "
            f"{verdict(key['p50'], rtt['p50'])} |"]
    here = ms.get("local_attach_key")
    if here:  # (runs before 2026-12-06 had no local baseline)
        bound = round(here["p50"] + rtt["p50"], 2)
        rows.append(f"| the same, against the same line typed into `cockpit attach` of a local agent (tmux attach "
                    f"here) | {fig(key)}; local {fig(here)} + round trip p50 {rtt['p50']} = {bound} ms | "
                    f"≤ local + one round trip | {verdict(key['p50'], bound)} |")
    for op in ("pause", "resume"):
        s, here = ms[op], ms[f"local_{op}"]
        bound = round(here["p50"] + rtt["p50"], 2)
        rows.append(f"| remote agent: the TUI's {op} (`Fleet.{op}` over the kept session) until its process is "
                    f"{'stopped' if op == 'pause' else 'running again'} | {fig(s)}; as a one-shot request (no "
                    f"kept session) {fig(ms['one_shot_' + op])} | the same key on a local agent {fig(here)} + "
                    f"round trip p50 {rtt['p50']} = {bound} ms; for the one-shot: a new ssh session "
                    f"(`ssh HOST true`) p50 {ms['ssh_true']['p50']} ms, `python -c pass` there "
                    f"{ms['remote_python']['p50']} ms, `cockpit --version` there "
                    f"{ms['remote_cockpit_version']['p50']} ms | ≤ local + one round trip | "
                    f"{verdict(s['p50'], bound)} |")
    local, far = log["local"], log["remote"]
    bound = round(local.get("p50", float("nan")) + rtt["p50"], 1)
    rows.append(f"| remote agent: log-to-screen latency, 100 lines/s (TUI, headless), "
                f"{r['log_rounds']} × {r['log_seconds']:g} s | {fig(far)}; p50 per run "
                f"{', '.join(str(x) for x in r['log_p50_per_round_ms']['remote'])} "
                f"({r['log_never_shown']['remote']} never shown) vs a local agent in the same app {fig(local)} "
                f"+ round trip p50 {rtt['p50']} = {bound} ms | ≤ local + one round trip | "
                f"{verdict(far.get('p50', 1e9), bound)} |")
    return rows
