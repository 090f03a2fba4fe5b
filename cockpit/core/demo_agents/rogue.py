"""Demo agent: declared scope src/rogue/**, but it also edits files outside it."""
import pathlib
import time

edits = [
    ("src/rogue/feature.py", "def feature():\n    return 42\n"),
    ("README.md", "# demo\n\nRewritten by rogue (outside its scope!)\n"),
    ("src/app/config.py", "DEBUG = True  # changed by rogue, outside its scope\n"),
]
for path, text in edits:
    time.sleep(1.5)
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"rogue: wrote {path}", flush=True)
print("rogue: done; look at my diff", flush=True)
while True:
    time.sleep(3600)
