#!/bin/sh
# Make sure git and tmux >= 3.2 are present; install them with apt-get when we may.
set -eu

need_install=""
command -v git >/dev/null 2>&1 || need_install="$need_install git"
if command -v tmux >/dev/null 2>&1; then
    version=$(tmux -V | sed -n 's/^tmux \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    major=${version% *}; minor=${version#* }
    if [ -z "$version" ] || [ "$major" -lt 3 ] || { [ "$major" -eq 3 ] && [ "$minor" -lt 2 ]; }; then
        need_install="$need_install tmux"
    fi
else
    need_install="$need_install tmux"
fi
[ -z "$need_install" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "cockpit needs:$need_install (tmux >= 3.2). Install with: sudo apt-get install -y$need_install" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "cockpit needs:$need_install (tmux >= 3.2); no apt-get here: install them with your package manager" >&2
    exit 1
fi
echo "installing:$need_install"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need_install >/dev/null
tmux -V
