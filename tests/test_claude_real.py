"""The real Claude Code CLI (npm ``@anthropic-ai/claude-code``, the version in claude_support) as a
claude-code agent, offline: with onboarding and trust marked done in a throw-away HOME it starts
its REPL, fires ``SessionStart`` and ``UserPromptSubmit`` for the task, answers "Not logged in"
with a ``StopFailure`` and no ``Stop`` hook, and waits at its prompt; ``claude --resume <id>``
restores that conversation. What cockpit recorded from it is asserted: the session id, an activity
that does not stay ``working``, the usage of its transcript (all zeros offline: non-zero usage is
tested with transcripts in the same format), and a ``down`` then ``respawn --keep`` that continues
the same conversation. Skipped only where npm is not installed (``make test`` installs the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_support import claude_home, real_claude
from cockpit.core.fleet import Fleet
from conftest import wait_until

pytestmark = pytest.mark.tmux


@pytest.fixture(scope="module")
def claude_binary() -> Path:
    binary = real_claude()
    if binary is None:
        pytest.skip("npm is not installed: the real Claude Code CLI cannot be fetched (apt-get install -y npm)")
    return binary


def cockpit(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=repo, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def hook_lines(repo: Path) -> list[dict]:
    path = repo / ".cockpit" / "agents" / "cc" / "hooks.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def events(repo: Path) -> list[str]:
    return [line["e"] for line in hook_lines(repo)]


def test_the_real_claude_code_cli_status_session_usage_and_resume(claude_binary: Path, repo: Path,
                                                                    tmp_path: Path) -> None:
    env = claude_home(tmp_path / "home", repo)
    env["PATH"] = f"{claude_binary.parent}:/usr/bin:/bin"
    table = ", ".join(f'{key} = "{value}"' for key, value in env.items())
    (repo / "cockpit.toml").write_text(f'[[agent]]\nname = "cc"\npreset = "claude-code"\ntask = "do a task"\n'
                                       f"env = {{ {table} }}\n")
    fleet = Fleet(repo)
    fleet.spawn("cc")

    # its REPL started, fired SessionStart and UserPromptSubmit for the task, answered "Not logged in"
    wait_until(lambda: "StopFailure" in events(repo), timeout=90, message="the turn to end (offline)")
    start, prompt, failure = hook_lines(repo)[:3]
    assert (start["e"], start["src"], prompt["e"]) == ("SessionStart", "startup", "UserPromptSubmit")
    assert failure["err"] == "authentication_failed" and "Not logged in" in failure["msg"]
    session = start["sid"]
    transcript = Path(start["tp"])
    assert transcript.is_relative_to(tmp_path / "home" / ".claude" / "projects")
    wait_until(transcript.is_file, message="its transcript (written a moment after the hooks)")
    wait_until(lambda: any("Not logged in" in line for line in fleet.screen("cc")), message="its answer on screen")

    # what cockpit recorded: the session, an activity that is not "working", usage from the transcript
    def listed() -> dict:
        return {a["name"]: a for a in json.loads(cockpit(repo, "ls", "--json").stdout)}["cc"]
    agent = listed()
    assert agent["session_id"] == session
    assert (agent["activity"], agent["activity_reason"]) == (
        "error", "authentication_failed: Not logged in · Please run /login")
    assert agent["usage"] == {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0,
                              "cache_creation_tokens": 0, "context_tokens": 0, "counted_tokens": 0, "sessions": 1}
    assert "Stop" not in events(repo)  # 2.1.197 ends this turn with StopFailure only
    assert cockpit(repo, "wait", "cc", "--for", "waiting", "--timeout", "10").returncode == 0

    # `down`, then `respawn --keep`: the same conversation continues, the task is not sent again
    assert cockpit(repo, "down").returncode == 0
    before = len(hook_lines(repo))
    result = cockpit(repo, "respawn", "cc", "--keep")
    assert result.returncode == 0, result.stderr
    assert f"resumed its conversation {session}" in result.stdout
    wait_until(lambda: any(line["e"] == "SessionStart" for line in hook_lines(repo)[before:]), timeout=90,
               message="the resumed session to start")
    resumed = next(line for line in hook_lines(repo)[before:] if line["e"] == "SessionStart")
    assert (resumed["src"], resumed["sid"], resumed["tp"]) == ("resume", session, str(transcript))
    wait_until(lambda: any("do a task" in line for line in fleet.screen("cc")), timeout=30,
               message="the earlier conversation on screen")
    wait_until(lambda: (fleet.agent("cc").activity, fleet.agent("cc").activity_reason) == ("waiting", "done"),
               message="waiting at its prompt")
    assert "UserPromptSubmit" not in events(repo)[before:]
    assert fleet.agent("cc").session_id == session
    assert fleet.agent("cc").usage["sessions"] == 1  # one conversation, one transcript


def prompt(fleet: Fleet, repo: Path, text: str) -> None:
    """Type ``text`` at Claude Code's prompt and submit it, as a user would: once the text shows
    (keys typed in one burst read as a paste, where Enter may not submit), then Enter, again if
    no UserPromptSubmit came."""
    submitted = events(repo).count("UserPromptSubmit")
    fleet.tmux.send_keys("cc", text)
    wait_until(lambda: any(text in line for line in fleet.screen("cc")), message=f"{text!r} typed")
    for _ in range(3):
        fleet.tmux.send_keys("cc", "Enter")
        try:
            wait_until(lambda: events(repo).count("UserPromptSubmit") > submitted, timeout=10,
                       message=f"{text!r} submitted")
            return
        except TimeoutError:
            continue
    raise TimeoutError(f"{text!r} was never submitted")


@pytest.fixture
def fake_api(tmp_path: Path) -> Iterator[str]:
    """tests/fakeapi.py on a free loopback port: the Anthropic API as far as these tests need it."""
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fakeapi.py")), str(tmp_path / "api.log")],
                              stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert server.stdout is not None
    port = server.stdout.readline().strip()
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(10)


def test_the_real_cli_with_a_model_permission_done_refusal_usage_and_limit(claude_binary: Path, repo: Path,
                                                                         tmp_path: Path, fake_api: str) -> None:
    env = claude_home(tmp_path / "home", repo)
    env.update(PATH=f"{claude_binary.parent}:/usr/bin:/bin", ANTHROPIC_BASE_URL=fake_api,
               CLAUDE_CODE_OAUTH_TOKEN="sk-ant-oat01-fake-token-for-tests")  # the subscriber path: no key dialog
    table = ", ".join(f'{key} = "{value}"' for key, value in env.items())
    (repo / "cockpit.toml").write_text(f'[[agent]]\nname = "cc"\npreset = "claude-code"\n'
                                       f'task = "TASK: please do the task"\nenv = {{ {table} }}\n')
    fleet = Fleet(repo)
    fleet.spawn("cc")

    def doing() -> tuple[str | None, str | None]:
        agent = fleet.agent("cc")
        return agent.activity, agent.activity_reason

    # a permission prompt: waiting, with the tool and its argument
    wait_until(lambda: doing() == ("waiting", "permission: Bash: touch created_by_agent.txt"), timeout=90,
               message="the permission prompt")
    # (the hook fires as the dialog opens: wait for it on screen before answering)
    wait_until(lambda: any("Do you want to proceed?" in line for line in fleet.screen("cc")), message="the dialog")
    fleet.tmux.send_keys("cc", "Enter")  # the test answers (cockpit never sends keys)
    wait_until(lambda: doing() == ("waiting", "done"), timeout=60, message="the turn done (Stop)")
    assert (fleet.layout.worktree("cc") / "created_by_agent.txt").exists()
    assert "Stop" in events(repo)

    # usage from its transcript (written a moment after the hooks): three responses of the fake API
    usage = wait_until(lambda: (u := fleet.agent("cc").usage) and u["input_tokens"] > 300 and u, timeout=30,
                       message="the last response's usage")
    assert usage["sessions"] == 1
    assert usage["input_tokens"] > 300 and usage["output_tokens"] > 120 and usage["cache_read_tokens"] > 6000
    assert usage["counted_tokens"] == usage["input_tokens"] + usage["output_tokens"] + usage["cache_creation_tokens"]
    assert usage["context_tokens"] > 2000

    # "No" to a permission: no hook fires; Claude's status file says it is idle again
    asked = events(repo).count("PermissionRequest")
    prompt(fleet, repo, "DENYME: make another file")
    wait_until(lambda: doing() == ("waiting", "permission: Bash: touch denied_file.txt"), timeout=60,
               message="the second permission prompt")
    wait_until(lambda: any("Do you want to proceed?" in line for line in fleet.screen("cc")), message="the dialog")
    # (the status file can say "permission" before the PermissionRequest hook's line is written)
    wait_until(lambda: events(repo).count("PermissionRequest") > asked, message="the second PermissionRequest")
    before = len(hook_lines(repo))
    fleet.tmux.send_keys("cc", "Escape")
    wait_until(lambda: doing() == ("waiting", "done"), timeout=30, message="idle after the refusal")
    assert hook_lines(repo)[before:] == []  # no hook said so
    assert not (fleet.layout.worktree("cc") / "denied_file.txt").exists()

    # the usage limit: rate-limited, with the reset time the message shows
    prompt(fleet, repo, "LIMIT: go")
    try:
        wait_until(lambda: doing()[0] == "rate-limited", timeout=60, message="the usage limit")
    except TimeoutError:
        raise AssertionError(f"not rate-limited: {doing()}; hooks {hook_lines(repo)[-4:]}; "
                             f"screen {fleet.screen('cc')[-12:]}") from None
    assert str(doing()[1]).startswith("resets ")


def test_hooks_switched_off_by_the_user_stay_off_and_the_screen_tells(claude_binary: Path, repo: Path,
                                                                       tmp_path: Path) -> None:
    """cockpit's settings do not set disableAllHooks: a user who switched hooks off keeps them off
    (cockpit's too, as Claude Code merges settings), and the screen patterns take over."""
    env = claude_home(tmp_path / "home", repo)
    (tmp_path / "home" / ".claude").mkdir()
    (tmp_path / "home" / ".claude" / "settings.json").write_text('{"disableAllHooks": true}')
    env["PATH"] = f"{claude_binary.parent}:/usr/bin:/bin"
    table = ", ".join(f'{key} = "{value}"' for key, value in env.items())
    (repo / "cockpit.toml").write_text(f'[[agent]]\nname = "cc"\npreset = "claude-code"\ntask = "do a task"\n'
                                       f"env = {{ {table} }}\n")
    fleet = Fleet(repo)
    fleet.spawn("cc")
    wait_until(lambda: any("Not logged in" in line for line in fleet.screen("cc")), timeout=90,
               message="its answer on screen")
    agent = wait_until(lambda: (a := fleet.agent("cc")).activity == "waiting" and a, message="waiting")
    assert agent.activity_reason == "sign-in" and agent.session_id is None
    assert hook_lines(repo) == []
