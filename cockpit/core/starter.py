"""The commented ``cockpit.toml`` that ``cockpit init`` writes."""

STARTER = '''\
# cockpit.toml: the agents cockpit runs on this repository.
# Each agent gets its own git worktree (.cockpit/worktrees/<name>), its own branch
# (cockpit/<name>), its own tmux session and its own session.log.

[cockpit]
# base = "main"          # the ref new branches are cut from (default: the current branch)
max_failures = 2         # an agent that fails this many times is halted
# gates = ["python -m pytest -q"]   # merge queue: each must pass on base + the candidate
# gate_timeout = 600     # seconds per gate
# merge = "rebase"       # or "merge" (a merge commit) or "squash" (one commit)
# idle_after = 30        # seconds without output before an agent counts as idle
# stall_after = 900      # ... and as stalled (you get a notification)
# notify_command = "cat >> ~/cockpit-notifications.jsonl"   # run per notification, JSON on stdin
# tmux_nice = 5          # the agents' tmux server yields the CPU to you (0: same priority)
# radar_interval = 3     # seconds between conflict predictions (0: none; needs git >= 2.38)
# max_tokens = 5000000   # pause agents once all of them together used this many tokens (claude-code)

# [worktree]             # make each new worktree a working environment (see docs/worktree-environment.md)
# setup = ["uv sync"]    # run in the new worktree before the agent, in order (sh -e; output in session.log)
# teardown = []          # run before a worktree is removed (after its archive)
# ports = 2              # a block of free TCP ports per agent: $COCKPIT_PORT (the first), $COCKPIT_PORTS

# [keys]                 # remap TUI keys: binding id = "key"
# discard = "D"

# [[host]]              # another machine, reached with ssh: cockpit runs there too (docs/hosts.md)
# name = "big"
# ssh = "me@build1.example"             # or an alias of ~/.ssh/config
# repo = "~/work/project"               # the repository there (~ expands there)
# cockpit = "~/.cockpit/venv/bin/cockpit"   # 'cockpit hosts install big' puts one there

[[agent]]
name = "example"                          # a-z, 0-9 and '-', at most 40 characters
command = "sh -c 'echo working on: $COCKPIT_TASK; sleep 3600'"   # run by /bin/sh in the worktree
task = "Describe the task here"           # exported to the agent as COCKPIT_TASK
scope = ["src/**"]                        # files this agent owns
after = []                                # agents this one waits for
env = {}                                  # extra environment, e.g. { LOG_LEVEL = "debug" }
# sandbox = "bwrap"                       # writes only to its worktree (needs bubblewrap)
# preset = "claude-code"                  # a known agent program: its hooks, its prompts on screen
# max_tokens = 1000000                    # pause this agent past this many tokens (claude-code)
# host = "big"                            # run it on that [[host]] (default: this machine)
'''
