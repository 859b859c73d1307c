#!/usr/bin/env bash
# Soak test of the event-driven client (issue #6): one client process holds
# many connections to a local echo server for a long time, with periodic
# traffic and the client's ping interval on; RSS must stay flat, no fd may
# leak, and every message must come back, in order, exactly once.
#
#   scripts/soak.sh [--conns N] [--seconds S] [other soak options]
#
# Default: 10,000 connections for 600 s (after a 60 s warm-up), one 32-byte
# message per connection per second, ping interval 5 s. Other options go to
# the soak program unchanged (--warmup, --interval, --ping-interval, --size,
# --batch, --sample-every, --drain-timeout, --rss-growth-pct,
# --rss-slack-mib; see wsclient/examples/soak.rs).
#
# Builds `wsc` and the soak example in release mode, raises the open-file
# limit, starts `wsc serve --echo` on a free loopback port (a separate
# process, so the RSS measured is the client's alone), runs the soak, prints
# its report and the server's RSS, and stops the server. The exit status is
# the soak program's (0 pass, 1 fail, 2 usage or limits).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
esac

TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p wsc --bin wsc
cargo build --release --quiet -p wsclient --example soak

# Both processes need a descriptor per connection (plus a few).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 1048576 2>/dev/null || true
echo "soak.sh: open-file limit $(ulimit -n)"

TMP="$(mktemp -d)"
SERVER=""
cleanup() {
    if [[ -n "$SERVER" ]] && kill -0 "$SERVER" 2>/dev/null; then
        kill -TERM "$SERVER" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER" 2>/dev/null || true
    fi
    [[ -n "$SERVER" ]] && { wait "$SERVER" 2>/dev/null || true; }
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$TARGET/release/wsc" serve --listen 127.0.0.1:0 --echo >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER=$!
URL=""
for _ in $(seq 1 100); do
    URL="$(sed -n 's/^listening on \(ws:\/\/[^ ]*\).*/\1/p' "$TMP/server.out")"
    [[ -n "$URL" ]] && break
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$URL" ]]; then
    echo "soak.sh: the echo server did not start" >&2
    cat "$TMP/server.err" >&2
    exit 1
fi
echo "soak.sh: echo server (wsc serve --echo, pid $SERVER) on $URL"

rc=0
"$TARGET/release/examples/soak" --url "$URL/" "$@" || rc=$?

echo "soak.sh: echo server $(grep -E '^(VmRSS|VmHWM)' "/proc/$SERVER/status" 2>/dev/null | tr -s ' \t' ' ' | paste -sd, -)"
if [[ -s "$TMP/server.err" ]]; then
    echo "soak.sh: echo server stderr (first lines):"
    head -n 20 "$TMP/server.err"
fi
exit "$rc"
