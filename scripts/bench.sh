#!/usr/bin/env bash
# Regenerates bench/RESULTS.md and the benchmark tables in README.md:
# builds wsbench in release mode and runs every cell (~10 minutes on two
# cores). Extra arguments go to `wsbench all`, e.g.
#   scripts/bench.sh --reps 5          # more repetitions
#   scripts/bench.sh --quick           # smoke run (seconds), written to
#                                      # target/wsbench-quick.md instead
#   scripts/bench.sh --cells recv,send --clients wsclient,tokio-websockets
#   scripts/bench.sh --server-cc cubic # the server's sockets on cubic, not
#                                      # the system's default congestion
#                                      # control (README: why it matters)
# The servers and clients pin themselves to CPUs (sched_setaffinity); the
# run is niced to -10 when allowed, so that background work disturbs it less.
set -euo pipefail
cd "$(dirname "$0")/.."

out=bench/RESULTS.md
for a in "$@"; do
    if [[ "$a" == "--quick" ]]; then out=target/wsbench-quick.md; fi
done
for ((i = 1; i <= $#; i++)); do
    if [[ "${!i}" == "--out" ]]; then j=$((i + 1)); out="${!j}"; fi
done

cargo build --release -p bench
bin=target/release/wsbench

nice=()
if nice -n -10 true 2>/dev/null; then nice=(nice -n -10); fi

# Which code was measured: the commit, and any uncommitted changes.
note="Built from commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty=$(git status --porcelain -- wsclient bench Cargo.toml Cargo.lock 2>/dev/null | awk '{print $2}' | tr '\n' ' ')
if [[ -n "$dirty" ]]; then note="$note plus uncommitted changes to: $dirty"; fi

mkdir -p "$(dirname "$out")"
# The full run also writes its tables into the README (between its
# `wsbench` markers); a quick run or another --out does not.
readme=()
if [[ "$out" == bench/RESULTS.md ]]; then readme=(--readme README.md); fi
"${nice[@]}" "$bin" all --out "$out" "${readme[@]}" --invoked-as "scripts/bench.sh${*:+ $*}" --note "$note" "$@"
echo "wrote $out" >&2
