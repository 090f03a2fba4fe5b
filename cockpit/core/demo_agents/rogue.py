"""Demo agent: declared scope src/rogue/**, but it also edits files outside it."""
import pathlib
import sys
import time

EDITS = [
    ("src/rogue/feature.py", "def feature():\n    return 42\n"),
    ("README.md", "# demo\n\nRewritten by rogue (outside its scope!)\n"),
    ("src/app/config.py", "DEBUG = True  # changed by rogue, outside its scope\n"),
]


def main() -> int:
    from _guard import inside_own_worktree
    if not inside_own_worktree():
        return 2
    for path, text in EDITS:
        time.sleep(1.5)
        target = pathlib.Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"rogue: wrote {path}", flush=True)
    print("rogue: done; look at my diff", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
