#!/usr/bin/env bash
# Idempotently install the Autobahn|Testsuite (wstest) into $REPO/.venv-autobahn.
#
# Preferred: Python 2.7 + virtualenv<20.22 + autobahntestsuite==25.10.1.
# Fallback (no Python 2.7 on the machine): kosoku==0.1.0 in a Python 3 venv,
# which runs the same case files with the same verdicts.
#
# Prints one line saying what it uses. Env overrides:
#   AUTOBAHN_VENV     venv directory          (default: $REPO/.venv-autobahn)
#   AUTOBAHN_PY27     python2.7 interpreter   (default: pyenv's 2.7.18, else python2.7 on PATH)
#   AUTOBAHN_BACKEND  force "wstest" or "kosoku"
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AUTOBAHN_VENV:-$REPO/.venv-autobahn}"
BOOT="${VENV}-bootstrap"          # small python3 venv holding virtualenv<20.22
ATS_VERSION="25.10.1"
KOSOKU_VERSION="0.1.0"
LOG="$(mktemp -t autobahn-install.XXXXXX.log)"
trap 'rm -f "$LOG"' EXIT

die() {
    echo "autobahn-install: $*" >&2
    if [[ -s "$LOG" ]]; then
        echo "---- log ----" >&2
        tail -n 60 "$LOG" >&2
    fi
    exit 1
}

# Run a command with its output captured; show it only on failure.
quiet() { "$@" >>"$LOG" 2>&1 || die "failed: $*"; }

find_py27() {
    local c
    if [[ -n "${AUTOBAHN_PY27:-}" ]]; then
        echo "$AUTOBAHN_PY27"; return 0
    fi
    if command -v pyenv >/dev/null 2>&1; then
        c="$(pyenv root)/versions/2.7.18/bin/python2.7"
        if [[ -x "$c" ]] && "$c" -c 'import sys; assert sys.version_info[:2] == (2, 7)' >/dev/null 2>&1; then
            echo "$c"; return 0
        fi
    fi
    for c in "$HOME/.pyenv/versions/2.7.18/bin/python2.7" "$(command -v python2.7 2>/dev/null || true)"; do
        if [[ -n "$c" && -x "$c" ]] && "$c" -c 'import sys; assert sys.version_info[:2] == (2, 7)' >/dev/null 2>&1; then
            echo "$c"; return 0
        fi
    done
    return 1
}

# find_py3 MINOR: a python3 >= 3.MINOR with venv (kosoku needs 3.10).
find_py3() {
    local min="${1:-8}" c v cands=("${AUTOBAHN_PY3:-}" python3)
    for v in 13 12 11 10; do cands+=("python3.$v"); done
    if command -v pyenv >/dev/null 2>&1; then
        for c in "$(pyenv root)"/versions/3.*/bin/python3; do cands+=("$c"); done
    fi
    for c in "${cands[@]}"; do
        if [[ -n "$c" ]] && command -v "$c" >/dev/null 2>&1 \
            && "$c" -c "import sys, venv; assert sys.version_info >= (3, $min)" >/dev/null 2>&1; then
            command -v "$c"; return 0
        fi
    done
    return 1
}

install_wstest() {
    local py27="$1" py3
    if [[ -x "$VENV/bin/wstest" && -f "$VENV/.autobahn-backend" ]] \
        && [[ "$(cat "$VENV/.autobahn-backend")" == "wstest $ATS_VERSION" ]] \
        && "$VENV/bin/python" -c 'import autobahntestsuite' >/dev/null 2>&1; then
        echo "autobahn-install: using wstest (autobahntestsuite $ATS_VERSION, $("$VENV/bin/python" -V 2>&1)) in $VENV (already installed)"
        return 0
    fi
    py3="$(find_py3)" || die "python3 (>= 3.8, with venv) is needed to bootstrap virtualenv"
    rm -rf "$VENV"
    if [[ ! -x "$BOOT/bin/python" ]] || ! "$BOOT/bin/python" -c 'import virtualenv' >/dev/null 2>&1; then
        rm -rf "$BOOT"
        quiet "$py3" -m venv "$BOOT"
        quiet "$BOOT/bin/python" -m pip install --quiet 'virtualenv<20.22'
    fi
    quiet "$BOOT/bin/python" -m virtualenv --quiet -p "$py27" "$VENV"
    quiet "$VENV/bin/python" -m pip install --quiet "autobahntestsuite==$ATS_VERSION"
    "$VENV/bin/python" -c 'import autobahntestsuite' >>"$LOG" 2>&1 || die "autobahntestsuite does not import"
    [[ -x "$VENV/bin/wstest" ]] || die "wstest entry point missing in $VENV/bin"
    echo "wstest $ATS_VERSION" >"$VENV/.autobahn-backend"
    echo "autobahn-install: using wstest (autobahntestsuite $ATS_VERSION, $("$VENV/bin/python" -V 2>&1)) in $VENV"
}

install_kosoku() {
    local py3
    if [[ -f "$VENV/.autobahn-backend" ]] \
        && [[ "$(cat "$VENV/.autobahn-backend")" == "kosoku $KOSOKU_VERSION" ]] \
        && "$VENV/bin/python" -c 'import kosoku' >/dev/null 2>&1; then
        echo "autobahn-install: using kosoku $KOSOKU_VERSION ($("$VENV/bin/python" -V 2>&1)) in $VENV (already installed; $WHY)"
        return 0
    fi
    py3="$(find_py3 10)" || die "neither Python 2.7 nor python3 >= 3.10 (for kosoku) found"
    rm -rf "$VENV"
    quiet "$py3" -m venv "$VENV"
    quiet "$VENV/bin/python" -m pip install --quiet "kosoku==$KOSOKU_VERSION"
    "$VENV/bin/python" -c 'import kosoku' >>"$LOG" 2>&1 || die "kosoku does not import"
    echo "kosoku $KOSOKU_VERSION" >"$VENV/.autobahn-backend"
    echo "autobahn-install: using kosoku $KOSOKU_VERSION ($("$VENV/bin/python" -V 2>&1)) in $VENV ($WHY)"
}

WHY="no Python 2.7 found"
case "${AUTOBAHN_BACKEND:-}" in
    kosoku) WHY="AUTOBAHN_BACKEND=kosoku"; install_kosoku ;;
    wstest)
        PY27="$(find_py27)" || die "AUTOBAHN_BACKEND=wstest but no Python 2.7 interpreter found"
        install_wstest "$PY27" ;;
    "")
        if PY27="$(find_py27)"; then
            install_wstest "$PY27"
        else
            install_kosoku
        fi ;;
    *) die "unknown AUTOBAHN_BACKEND=${AUTOBAHN_BACKEND} (want wstest or kosoku)" ;;
esac
