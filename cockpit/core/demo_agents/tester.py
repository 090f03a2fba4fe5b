"""Demo agent: a test runner. Attempt 1 fails (exit 1); a respawned attempt passes."""
import os
import sys
import time

RED, GREEN, YELLOW, RESET = "\033[31m", "\033[32m", "\033[33m", "\033[0m"
TESTS = ["test_login", "test_logout", "test_refresh_token", "test_rate_limit", "test_audit_log"]


def main() -> int:
    from _guard import inside_own_worktree
    if not inside_own_worktree():
        return 2
    attempt = int(os.environ.get("COCKPIT_ATTEMPT", "1"))
    print(f"tester: attempt {attempt}, running the suite", flush=True)
    failed = 0
    for name in TESTS:
        time.sleep(0.8)
        broken = attempt == 1 and name in ("test_refresh_token", "test_rate_limit")
        failed += broken
        mark = f"{RED}FAIL{RESET}" if broken else f"{GREEN}ok{RESET}"
        print(f"  {name:<24} {mark}", flush=True)
    if failed:
        print(f"{RED}{failed} failed{RESET}, {len(TESTS) - failed} passed", flush=True)
        return 1
    print(f"{GREEN}all {len(TESTS)} passed{RESET}; {YELLOW}watching for changes{RESET}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
