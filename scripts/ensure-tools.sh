#!/bin/sh
# Make sure git and tmux >= 3.2 are present; install them with apt-get when we may.
# bubblewrap (the optional write sandbox, sandbox = "bwrap"), openssh-server (the tests that log
# in over SSH) and a system Python >= 3.11 (the tests on remote hosts run cockpit as other users)
# are installed too when we may; if they cannot be, a note is printed and setup still succeeds:
# only git and tmux are required.
set -eu

# ensure_optional COMMAND PACKAGE WHAT: install PACKAGE with apt-get when COMMAND is missing and
# we may; otherwise print a note (setup still succeeds: only git and tmux are required).
ensure_optional() {
    command -v "$1" >/dev/null 2>&1 && return 0
    [ -x "/usr/sbin/$1" ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        sudo_=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo_="sudo -n"
    else
        sudo_="none"
    fi
    if [ "$sudo_" != "none" ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing: $2 (optional: $3)"
        if DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "$2" >/dev/null 2>&1 ||
           { $sudo_ apt-get update -qq >/dev/null 2>&1 &&
             DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "$2" >/dev/null 2>&1; }; then
            return 0
        fi
    fi
    echo "note: $2 is not installed, so $3 cannot be used and its tests are skipped" \
         "(install it: sudo apt-get install -y $2)" >&2
    return 0
}

# has_host_python: a Python >= 3.11 with venv on ssh's default $PATH that ANOTHER user can run
# (checked as nobody: the test hosts' users cannot run a Python under /root, which is 0700).
has_host_python() {
    as_nobody=""
    [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1 && as_nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
    for dir in /usr/local/bin /usr/bin /bin; do
        for name in python3 python3.13 python3.12 python3.11; do
            [ -x "$dir/$name" ] || continue
            # through sh: setpriv's own exec still resolves the path with root's rights
            $as_nobody /bin/sh -c '"$0" -c "import sys, venv; sys.exit(sys.version_info < (3, 11))"' \
                "$dir/$name" >/dev/null 2>&1 </dev/null && return 0
        done
    done
    return 1
}

# ensure_host_python: the tests' remote hosts (tests/hosts_support.py) install cockpit into a
# venv of such a Python. Debian 12's python3 is 3.11; older systems may offer python3.11.
ensure_host_python() {
    has_host_python && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing: a system Python >= 3.11 (optional: the tests on remote hosts)"
        apt-get update -qq >/dev/null 2>&1 || true
        for packages in "python3 python3-venv" "python3.11 python3.11-venv"; do
            # shellcheck disable=SC2086
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null 2>&1 || continue
            has_host_python && return 0
        done
    fi
    echo "note: no Python >= 3.11 that other users can run, so the tests on remote hosts fail" \
         "(install one: sudo apt-get install -y python3 python3-venv)" >&2
    return 0
}

ensure_optionals() {
    ensure_optional bwrap bubblewrap 'the write sandbox (sandbox = "bwrap")'
    ensure_optional sshd openssh-server 'the tests that log in over SSH'
    ensure_host_python
}

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
if [ -z "$need_install" ]; then
    ensure_optionals
    exit 0
fi

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
ensure_optionals
