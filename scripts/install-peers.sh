#!/usr/bin/env bash
# Installs the third-party WebSocket server peers used by wsclient's
# integration tests (see peers/README.md):
#   - $REPO/.venv-peers : Python venv with `websockets` (pinned in peers/requirements.txt)
#   - $REPO/peers/node_modules : Node `ws` (pinned in peers/package.json + package-lock.json)
# Idempotent: safe to run again; only does work when something is missing or stale.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="$REPO/peers"
VENV="$REPO/.venv-peers"
PYTHON="${PYTHON:-python3}"

log() { printf '[install-peers] %s\n' "$*" >&2; }

# --- Python: websockets -----------------------------------------------------
command -v "$PYTHON" >/dev/null || { log "error: $PYTHON not found"; exit 1; }
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "existing venv at $VENV is broken; recreating"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" - "$PEERS/requirements.txt" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
then
    log "pip install -r peers/requirements.txt"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$PEERS/requirements.txt"
fi

# --- Node: ws ---------------------------------------------------------------
command -v node >/dev/null || { log "error: node not found"; exit 1; }
command -v npm >/dev/null || { log "error: npm not found"; exit 1; }
want_ws="$(node -p "require('$PEERS/package.json').dependencies.ws")"
have_ws="$(node -p "try { require('$PEERS/node_modules/ws/package.json').version } catch (e) { '' }")"
if [ "$have_ws" != "$want_ws" ]; then
    if [ -f "$PEERS/package-lock.json" ]; then
        log "npm ci in peers/"
        (cd "$PEERS" && npm ci --no-audit --no-fund --loglevel=error)
    else
        log "npm install in peers/"
        (cd "$PEERS" && npm install --no-audit --no-fund --loglevel=error)
    fi
fi

# --- Report -----------------------------------------------------------------
echo "python: $("$VENV/bin/python" --version 2>&1) ($VENV)"
echo "websockets: $("$VENV/bin/python" -c 'import websockets; print(websockets.__version__)')"
echo "node: $(node --version)"
echo "ws: $(node -p "require('$PEERS/node_modules/ws/package.json').version")"
