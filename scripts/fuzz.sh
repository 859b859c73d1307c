#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60) and
# fails on the first crash, assertion failure, timeout or OOM.
#
#   scripts/fuzz.sh [SECONDS]
#
# What works on this project's toolchain (stable only, no nightly):
# cargo-fuzz passes nightly-only flags to rustc (-Zsanitizer=address,
# -Cllvm-args=-sanitizer-coverage-*, ...). RUSTC_BOOTSTRAP=1 lets stable
# rustc accept them, and stable's rust-std ships the sanitizer runtimes
# (librustc-stable_rt.asan.a), so the default AddressSanitizer build works.
# Set FUZZ_SANITIZER=none to build without ASan: 3-8x more execs per
# second, but memory errors in unsafe code (wsclient's few operations,
# listed in SECURITY.md, and its dependencies') are then only caught if
# they crash.
#
# Seeds are read from fuzz/corpus/<target>/ (checked in) and never written
# to; inputs the fuzzer finds go to fuzz/target/corpus/<target>/ (ignored),
# crashes to fuzz/artifacts/<target>/ (ignored), logs to fuzz/target/logs/.
# To minimise a crash: cargo fuzz tmin <target> fuzz/artifacts/<target>/crash-*
set -euo pipefail

secs="${1:-60}"
case "$secs" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz (takes a few minutes: it is compiled from source)"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-address}"

echo "==> building the fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer"

mkdir -p target/logs
summary=()
status=0
for t in $(cargo fuzz list); do
    mkdir -p "target/corpus/$t" "corpus/$t"
    log="target/logs/$t.log"
    echo "==> $t: ${secs}s"
    # -timeout: one input running over 10 s is a hang and fails the run.
    if cargo fuzz run --sanitizer "$sanitizer" "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        result=ok
    else
        result=FAILED
        status=1
        tail -n 60 "$log" >&2
        echo "==> $t FAILED (full log: fuzz/$log; artifacts in fuzz/artifacts/$t/)" >&2
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)"
    corp="$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -n1 | cut -d' ' -f2)"
    summary+=("$(printf '%-20s %-7s execs=%-10s cov=%-6s corpus=%s' "$t" "$result" "${execs:-?}" "${cov:-?}" "${corp:-?}")")
    if [ "$status" -ne 0 ]; then
        break
    fi
done

echo "==> summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
exit "$status"
