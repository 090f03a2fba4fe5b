"""How the UI's modules hang together (issue 13): they talk to the app one way, Textual's and
pyte's internals stay in one module, and no module grows past what one sitting can read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from textual.app import App

from cockpit.ui.diffview import DiffScreen
from cockpit.ui.messages import Failure

UI = Path(__file__).resolve().parent.parent / "cockpit" / "ui"
MODULES = sorted(UI.rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top, in functions or for type checking only."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_nothing_imports_the_app_back() -> None:
    assert len(MODULES) > 10
    for path in MODULES:
        if path.name != "app.py":
            assert "cockpit.ui.app" not in imported_modules(path), f"{path.name} imports the app"


def test_workers_answer_with_messages_not_callbacks() -> None:
    for path in MODULES:
        assert "call_from_thread" not in path.read_text(), f"{path.name}: post a message instead"


PRIVATE = re.compile(r"_reactive_connect|_bindings_ready|_divide_cache|_taking_plain_text|['\"]_default['\"]"
                     r"|bfightmagenta|pyte\.screens import wcwidth")


def test_library_internals_are_touched_in_one_module_only() -> None:
    for path in MODULES:
        private_imports = {m for m in imported_modules(path)
                           if m.split(".")[0] in ("textual", "pyte") and any(p.startswith("_") for p in m.split("."))}
        if path.name == "internals.py":
            assert private_imports and PRIVATE.search(path.read_text())
            continue
        assert not private_imports, f"{path.name} imports {private_imports}"
        assert not PRIVATE.search(path.read_text()), f"{path.name} touches {PRIVATE.search(path.read_text())[0]}"


def test_no_ui_module_is_over_500_lines_and_most_are_under_400() -> None:
    lengths = {path.relative_to(UI).as_posix(): len(path.read_text().splitlines()) for path in MODULES}
    assert max(lengths.values()) <= 500, lengths
    assert sum(n < 400 for n in lengths.values()) > 3 * len(lengths) // 4, lengths


async def test_a_screen_reports_its_failure_to_whichever_app_hosts_it() -> None:
    """The diff view gets the function that computes a diff; its error goes up as a message."""
    failures: list[str] = []

    class Host(App[None]):
        def on_failure(self, message: Failure) -> None:
            failures.append(message.message)

    def broken(name: str):  # type: ignore[no-untyped-def]
        raise OSError(f"no worktree for {name}")

    app = Host()
    async with app.run_test() as pilot:
        screen = DiffScreen("lost", broken)
        await app.push_screen(screen)
        for _ in range(100):
            if failures:
                break
            await pilot.pause(0.02)
        assert failures == ["diff lost: OSError: no worktree for lost"]
        assert "no worktree for lost" in str(screen.query_one("#diff-title").content)
