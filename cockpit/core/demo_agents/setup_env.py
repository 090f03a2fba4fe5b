"""Demo setup step: what a real project's ``[worktree] setup`` does before the agent starts —
check the ``.env`` that ``.worktreeinclude`` copied in, and "install dependencies" (into an
ignored directory of the worktree, so the worktree stays clean)."""
import os
import pathlib
import sys
import time

CYAN, GREEN, RESET = "\033[36m", "\033[32m", "\033[0m"
PACKAGES = ["demo-http 1.4.2", "demo-orm 0.9.0", "demo-cli 2.1.0"]


def main() -> int:
    from _guard import inside_own_worktree
    if not inside_own_worktree():
        return 2
    env = pathlib.Path(".env")
    if not env.is_file():
        print("no .env in this worktree: .worktreeinclude should have copied it", flush=True)
        return 1
    keys = [line.split("=", 1)[0] for line in env.read_text().splitlines() if "=" in line]
    print(f".env copied from the main checkout by .worktreeinclude: {', '.join(keys)}", flush=True)
    deps = pathlib.Path(".demo-deps")
    deps.mkdir(exist_ok=True)
    for package in PACKAGES:
        print(f"{CYAN}installing{RESET} {package}", flush=True)
        (deps / package.split()[0]).write_text(package + "\n")
        time.sleep(0.4)
    print(f"{GREEN}\u2714{RESET} dependencies installed; port for this agent: {os.environ.get('COCKPIT_PORT', '-')}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
