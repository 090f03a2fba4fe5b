"""Demo agent: waits for the user's answer on its terminal (attach to answer)."""
import sys
import time

QUESTIONS = ["Apply database migration 0042 to the dev database?", "Drop the legacy sessions table too?"]


def main() -> int:
    from _guard import inside_own_worktree
    if not inside_own_worktree():
        return 2
    print("asker: planning the schema change", flush=True)
    time.sleep(1)
    for question in QUESTIONS:
        answer = input(f"\033[1;33m? {question} [y/N] \033[0m").strip().lower()
        print(f"  -> {'applying' if answer in ('y', 'yes') else 'skipping'}", flush=True)
        time.sleep(1)
    print("asker: done, idling", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
