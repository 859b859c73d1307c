#!/usr/bin/env bash
# Autobahn|Testsuite conformance harness (loopback only).
#
#   scripts/autobahn.sh client [--deflate] [--cases 'PAT,...']
#       Runs the fuzzingserver on 127.0.0.1:<free port> and drives it with
#       `cargo run --release -p wsclient --example autobahn_client -- URL AGENT [--deflate]`.
#   scripts/autobahn.sh server [--cases 'PAT,...']
#       Starts the server under test ($AUTOBAHN_SERVER_CMD, default
#       `cargo run --release -p wsc -- serve --listen 127.0.0.1:{port} --echo`)
#       and runs the fuzzingclient against it.
#   scripts/autobahn.sh selftest [--cases 'PAT,...']
#       Checks the harness itself with Autobahn's own Python testee client and
#       testee server (no Rust code involved). Needs the wstest backend.
#
# Case patterns are Autobahn's: comma-separated ids where `*` means "any
# characters" and matching is anchored at the start only, so '9.*' is section
# 9 and '12.*.1' matches 12.N.1 *and* 12.N.10-12.N.18 (50 cases). List exact ids
# (e.g. '12.1.1,12.2.1') for an exact set. Default: sections 1-7, 9, 10
# (there is no section 8) = 301 cases.
#
# Reports go to ${CARGO_TARGET_DIR:-target}/autobahn/{client,client-deflate,server}
# (index.html/index.json plus wstest/client/server logs); the result is checked by
# scripts/autobahn_check.py, whose last line is `N passed, M failed`.
#
# Environment:
#   AUTOBAHN_CLIENT_CMD    client command template; {url} {agent} {deflate} are
#                          substituted, and appended when absent. Default builds
#                          and runs the wsclient example.
#   AUTOBAHN_SERVER_CMD    server command template; {port} is substituted and
#                          $PORT exported. Default: see above.
#   AUTOBAHN_AGENT         agent name (default: wsclient / wsc)
#   AUTOBAHN_OUTDIR        report directory (default: see above)
#   AUTOBAHN_TIMEOUT       seconds allowed for the test run (default 1800)
#   AUTOBAHN_START_TIMEOUT seconds to wait for a port to accept (default 60)
#   AUTOBAHN_BACKEND       wstest | kosoku (default: wstest when Python 2.7 exists)
#   AUTOBAHN_VENV          tool venv (default: .venv-autobahn), made by
#                          scripts/autobahn-install.sh, which this script runs.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$REPO/scripts"
export AUTOBAHN_VENV="${AUTOBAHN_VENV:-$REPO/.venv-autobahn}"
VENV="$AUTOBAHN_VENV"
HOST=127.0.0.1
DEFAULT_CASES="1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*"
RUN_TIMEOUT="${AUTOBAHN_TIMEOUT:-1800}"
START_TIMEOUT="${AUTOBAHN_START_TIMEOUT:-60}"

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit "${1:-2}"
}

say() { echo "autobahn: $*"; }
die() { echo "autobahn: $*" >&2; exit 1; }

# ---------------------------------------------------------------- processes
TMP=""
PIDS=()

# Kill a process started by start_group (its own process group), TERM then KILL.
kill_group() {
    local pid="$1"
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        kill_group "$pid"
    done
    [[ -n "$TMP" ]] && rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_group LOG CMD...: run CMD in its own session/process group, stdin from
# /dev/null, output to LOG; sets STARTED_PID (== its process group id).
start_group() {
    local log="$1"; shift
    setsid "$@" </dev/null >"$log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT PID LOG WHAT: poll until 127.0.0.1:PORT accepts, PID must stay alive.
wait_port() {
    local port="$1" pid="$2" log="$3" what="$4" deadline=$((SECONDS + START_TIMEOUT))
    while ! (: <>"/dev/tcp/$HOST/$port") 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log "$log"
            die "$what exited before listening on $HOST:$port"
        fi
        if ((SECONDS >= deadline)); then
            show_log "$log"
            die "$what did not accept connections on $HOST:$port within ${START_TIMEOUT}s"
        fi
        sleep 0.2
    done
}

show_log() {
    [[ -s "$1" ]] || return 0
    echo "---- $1 (last 40 lines) ----" >&2
    tail -n 40 "$1" >&2
    echo "----" >&2
}

# ---------------------------------------------------------------- backend
install_tool() {
    local out
    out="$("$SCRIPTS/autobahn-install.sh")" || die "installing the test suite failed"
    BACKEND="$(cut -d' ' -f1 "$VENV/.autobahn-backend")"
    case "$BACKEND" in
        wstest|kosoku) ;;
        *) die "unknown backend in $VENV/.autobahn-backend" ;;
    esac
    echo "$out"
}

# Start the backend's fuzzingserver on $HOST:PORT for the cases in $CASES.
# start_fuzzingserver PORT OUTDIR LOG
start_fuzzingserver() {
    local port="$1" outdir="$2" log="$3" spec args=() p
    if [[ "$BACKEND" == wstest ]]; then
        spec="$TMP/fuzzingserver-$port.json"
        write_spec "$spec" fuzzingserver "$port" "$outdir" ""
        # -u 0: no embedded web server (it would bind 0.0.0.0:8080);
        # wstest_loopback.py forces every listen socket onto 127.0.0.1.
        start_group "$log" "$VENV/bin/python" "$SCRIPTS/autobahn/wstest_loopback.py" \
            -m fuzzingserver -s "$spec" -u 0
    else
        for p in "${CASE_LIST[@]}"; do args+=(-i "$p"); done
        start_group "$log" "$VENV/bin/kosoku" -m fuzzingserver "$HOST:$port" "${args[@]}" -o "$outdir"
    fi
}

# write_spec FILE MODE PORT OUTDIR AGENT
write_spec() {
    python3 - "$@" "$CASES" <<'EOF'
import json, sys
path, mode, port, outdir, agent, cases = sys.argv[1:7]
url = "ws://127.0.0.1:%d" % int(port)
spec = {
    "outdir": outdir,
    "cases": [c for c in cases.split(",") if c],
    "exclude-cases": [],
    "exclude-agent-cases": {},
}
if mode == "fuzzingserver":
    spec["url"] = url
else:
    spec["servers"] = [{"agent": agent, "url": url}]
with open(path, "w") as f:
    json.dump(spec, f, indent=2)
EOF
}

# Number of cases the patterns select, asked of the live fuzzingserver.
probe_case_count() {
    local port="$1" n
    n="$(python3 "$SCRIPTS/autobahn/ws_probe.py" "ws://$HOST:$port" --path /getCaseCount)" \
        || die "fuzzingserver on $HOST:$port did not answer /getCaseCount"
    [[ "$n" =~ ^[0-9]+$ ]] || die "unexpected /getCaseCount answer: $n"
    ((n > 0)) || die "case patterns '$CASES' select no cases"
    echo "$n"
}

# Case count for server mode, into COUNT: a short-lived fuzzingserver with the
# same patterns. (Not called in a $(...) subshell, so the trap sees its pid.)
count_cases() {
    local port pid
    port="$(free_port)"
    start_fuzzingserver "$port" "$TMP/count-out" "$TMP/count.log"
    pid=$STARTED_PID
    wait_port "$port" "$pid" "$TMP/count.log" "fuzzingserver (case count)"
    COUNT="$(probe_case_count "$port")"
    kill_group "$pid"
}

# ---------------------------------------------------------------- arguments
MODE="${1:-}"
[[ -n "$MODE" ]] || usage
shift
DEFLATE=0
CASES="$DEFAULT_CASES"
while (($#)); do
    case "$1" in
        --deflate) DEFLATE=1 ;;
        --cases) [[ $# -ge 2 ]] || die "--cases needs a value"; CASES="$2"; shift ;;
        --cases=*) CASES="${1#--cases=}" ;;
        -h|--help) usage 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
CASES="$(tr -d ' \t\n' <<<"$CASES")"
[[ "$CASES" =~ ^[0-9*.]+(,[0-9*.]+)*$ ]] || die "bad --cases '$CASES' (comma-separated ids like 1.*,9.1.2)"
IFS=, read -r -a CASE_LIST <<<"$CASES"

case "$MODE" in
    client|server|selftest) ;;
    -h|--help|help) usage 0 ;;
    *) die "unknown mode '$MODE' (client, server or selftest)" ;;
esac
if [[ "$MODE" == server && "$DEFLATE" == 1 ]]; then
    die "--deflate is for client mode (the fuzzingclient always offers permessage-deflate in 12.*/13.*)"
fi

command -v setsid >/dev/null || die "setsid (util-linux) is required"
command -v timeout >/dev/null || die "timeout (coreutils) is required"
command -v python3 >/dev/null || die "python3 is required"
TMP="$(mktemp -d -t autobahn.XXXXXX)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
[[ "$TARGET" == /* ]] || TARGET="$REPO/$TARGET"

install_tool

# ---------------------------------------------------------------- selftest
if [[ "$MODE" == selftest ]]; then
    [[ "$BACKEND" == wstest ]] || die "selftest needs the wstest backend (Autobahn's Python testees)"
    rc=0
    say "selftest: Autobahn's testee client against the fuzzingserver"
    AUTOBAHN_CLIENT_CMD="'$VENV/bin/wstest' -m testeeclient -w {url} -i {agent}" \
        AUTOBAHN_AGENT=selftest-client AUTOBAHN_OUTDIR="$TARGET/autobahn/selftest-client" \
        "$0" client --cases "$CASES" || rc=1
    say "selftest: the fuzzingclient against Autobahn's testee server"
    AUTOBAHN_SERVER_CMD="'$VENV/bin/python' '$SCRIPTS/autobahn/wstest_loopback.py' -m testeeserver -w ws://127.0.0.1:{port}" \
        AUTOBAHN_AGENT=selftest-server AUTOBAHN_OUTDIR="$TARGET/autobahn/selftest-server" \
        "$0" server --cases "$CASES" || rc=1
    exit "$rc"
fi

# ---------------------------------------------------------------- client / server
if [[ "$MODE" == client ]]; then
    AGENT="${AUTOBAHN_AGENT:-wsclient}"
    default_out="$TARGET/autobahn/client"
    ((DEFLATE)) && default_out+="-deflate"
else
    AGENT="${AUTOBAHN_AGENT:-wsc}"
    default_out="$TARGET/autobahn/server"
fi
[[ "$AGENT" =~ ^[A-Za-z0-9._-]+$ ]] || die "agent name must match [A-Za-z0-9._-]+: $AGENT"
OUTDIR="${AUTOBAHN_OUTDIR:-$default_out}"
[[ "$OUTDIR" == /* ]] || OUTDIR="$REPO/$OUTDIR"
rm -rf "$OUTDIR"
mkdir -p "$OUTDIR"

# cargo_prebuild LOG ARGS...: build first so compile time and errors stay out of the run.
cargo_prebuild() {
    local log="$1" rc=0; shift
    # In the background + wait, so a signal reaches the trap (and kills the
    # build) at once instead of after the build.
    start_group "$log" cargo build --manifest-path "$REPO/Cargo.toml" --release --quiet "$@"
    wait "$STARTED_PID" || rc=$?
    if ((rc != 0)); then
        show_log "$log"
        die "cargo build --release $* failed (status $rc)"
    fi
}

PORT="$(free_port)"
URL="ws://$HOST:$PORT"
CHECK_AGENT="$AGENT"
RUN_RC=0

if [[ "$MODE" == client ]]; then
    if [[ -n "${AUTOBAHN_CLIENT_CMD:-}" ]]; then
        cmd="$AUTOBAHN_CLIENT_CMD"
    else
        cargo_prebuild "$OUTDIR/build.log" -p wsclient --example autobahn_client
        cmd="cargo run --release --quiet -p wsclient --example autobahn_client -- {url} {agent} {deflate}"
    fi
    [[ "$cmd" == *"{url}"* ]] || cmd+=" {url} {agent} {deflate}"
    flag=""
    ((DEFLATE)) && flag="--deflate"
    cmd="${cmd//\{url\}/$URL}"
    cmd="${cmd//\{agent\}/$AGENT}"
    cmd="${cmd//\{deflate\}/$flag}"

    start_fuzzingserver "$PORT" "$OUTDIR" "$OUTDIR/fuzzingserver.log"
    SERVER_PID=$STARTED_PID
    wait_port "$PORT" "$SERVER_PID" "$OUTDIR/fuzzingserver.log" "fuzzingserver"
    EXPECT="$(probe_case_count "$PORT")"

    # timeout(1) makes its own process group; setsid makes sure of it.
    start_group "$OUTDIR/client.log" timeout -k 10 "$RUN_TIMEOUT" \
        env AUTOBAHN_URL="$URL" AUTOBAHN_AGENT="$AGENT" bash -c "cd '$REPO' && $cmd"
    CLIENT_PID=$STARTED_PID
    wait "$CLIENT_PID" || RUN_RC=$?
    if ((RUN_RC == 124 || RUN_RC == 137)); then
        say "client timed out after ${RUN_TIMEOUT}s"
    elif ((RUN_RC != 0)); then
        say "client exited with status $RUN_RC: $cmd"
    fi
    ((RUN_RC == 0)) || show_log "$OUTDIR/client.log"
    if [[ ! -f "$OUTDIR/index.json" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        # The client never asked for the reports: write them for what did run,
        # so the checker can tell the failing cases from the missing ones.
        python3 "$SCRIPTS/autobahn/ws_probe.py" "$URL" --timeout 60 \
            --path "/updateReports?agent=$AGENT" >/dev/null 2>&1 || true
    fi

    if [[ "$BACKEND" == kosoku ]]; then
        # kosoku writes its reports and exits once /updateReports was called.
        deadline=$((SECONDS + 60))
        while kill -0 "$SERVER_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    fi
    kill_group "$SERVER_PID"
else
    if [[ -n "${AUTOBAHN_SERVER_CMD:-}" ]]; then
        cmd="$AUTOBAHN_SERVER_CMD"
    else
        cargo_prebuild "$OUTDIR/build.log" -p wsc
        cmd="cargo run --release --quiet -p wsc -- serve --listen 127.0.0.1:{port} --echo"
    fi
    cmd="${cmd//\{port\}/$PORT}"
    count_cases
    EXPECT="$COUNT"

    start_group "$OUTDIR/server.log" env PORT="$PORT" AUTOBAHN_PORT="$PORT" bash -c "cd '$REPO' && exec $cmd"
    SERVER_PID=$STARTED_PID
    wait_port "$PORT" "$SERVER_PID" "$OUTDIR/server.log" "server under test ($cmd)"

    if [[ "$BACKEND" == wstest ]]; then
        write_spec "$TMP/fuzzingclient.json" fuzzingclient "$PORT" "$OUTDIR" "$AGENT"
        start_group "$OUTDIR/fuzzingclient.log" timeout -k 10 "$RUN_TIMEOUT" \
            "$VENV/bin/python" "$SCRIPTS/autobahn/wstest_loopback.py" -m fuzzingclient -s "$TMP/fuzzingclient.json"
    else
        # kosoku names the agent after the server's Server header.
        CHECK_AGENT="*"
        args=()
        for p in "${CASE_LIST[@]}"; do args+=(-i "$p"); done
        start_group "$OUTDIR/fuzzingclient.log" timeout -k 10 "$RUN_TIMEOUT" \
            "$VENV/bin/kosoku" -m fuzzingclient "$URL" "${args[@]}" -o "$OUTDIR"
    fi
    FUZZ_PID=$STARTED_PID
    wait "$FUZZ_PID" || RUN_RC=$?
    if ((RUN_RC == 124 || RUN_RC == 137)); then
        say "fuzzingclient timed out after ${RUN_TIMEOUT}s"
        show_log "$OUTDIR/fuzzingclient.log"
    elif ((RUN_RC != 0)) && [[ "$BACKEND" == kosoku && -f "$OUTDIR/index.json" ]]; then
        RUN_RC=0   # kosoku exits 1 when a case fails; the checker reports those
    elif ((RUN_RC != 0)); then
        say "fuzzingclient exited with status $RUN_RC"
        show_log "$OUTDIR/fuzzingclient.log"
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        say "server under test exited during the run"
        show_log "$OUTDIR/server.log"
        RUN_RC=1
    fi
    kill_group "$SERVER_PID"
fi

if [[ -f "$OUTDIR/index.html" ]]; then
    say "report: ${OUTDIR#"$REPO"/}/index.html"
fi
# The checker's last line, `N passed, M failed`, is this script's last line.
CHECK_RC=0
python3 "$SCRIPTS/autobahn_check.py" "$OUTDIR/index.json" "$CHECK_AGENT" --expect-cases "$EXPECT" || CHECK_RC=$?
((RUN_RC == 0 && CHECK_RC == 0))
