"""Demo agent: a chatty builder. Colours, a \\r progress bar, and small edits inside its scope."""
import itertools
import os
import pathlib
import sys
import time

GREEN, CYAN, DIM, BOLD, RESET = "\033[32m", "\033[36m", "\033[2m", "\033[1m", "\033[0m"
STEPS = ["resolving modules", "compiling app/core", "compiling app/http", "bundling assets", "linking"]


def main() -> int:
    from _guard import inside_own_worktree
    if not inside_own_worktree():
        return 2
    print(f"{BOLD}builder{RESET}: task = {os.environ.get('COCKPIT_TASK', '')}", flush=True)
    if os.environ.get("COCKPIT_PORT"):
        print(f"{DIM}preview on port {os.environ['COCKPIT_PORT']} (its own: $COCKPIT_PORT), "
              f"settings from .env: {pathlib.Path('.env').is_file()}{RESET}", flush=True)
    for round_ in itertools.count(1):
        for step in STEPS:
            for pct in range(0, 101, 20):
                bar = "#" * (pct // 10)
                sys.stdout.write(f"\r{CYAN}[{bar:<10}]{RESET} {pct:3d}% {step}")
                sys.stdout.flush()
                time.sleep(0.08)
            sys.stdout.write(f"\r{GREEN}\u2714{RESET} {step}\033[K\n")
        out = pathlib.Path("src/app/build_info.py")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"BUILD = {round_}\n")
        print(f"{DIM}round {round_} done, wrote {out}{RESET}", flush=True)
        time.sleep(1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
