#!/usr/bin/env bash
# Installs the real proxy servers that wsclient's proxy tests
# (wsclient/tests/proxy.rs) run as child processes on loopback ports:
#   - tinyproxy  : HTTP proxy with CONNECT and Basic auth (`BasicAuth user pass`)
#   - microsocks : SOCKS5 proxy with RFC 1929 user/password (`-u user -P pass`)
# and, optionally, nftables (`nft`) for the network-fault tests
# (wsclient/tests/netem.rs: random loss and blackholes inside a network
# namespace; they skip what they cannot do without it).
# Both are Debian packages; the tests start their own instances with a temp
# configuration, so the packaged services are neither needed nor started here.
# Idempotent: does nothing when both binaries are present; runs
# `apt-get update` once, only when something has to be installed.
set -euo pipefail

log() { printf '[install-proxies] %s\n' "$*" >&2; }

missing=()
command -v tinyproxy >/dev/null 2>&1 || missing+=(tinyproxy)
command -v microsocks >/dev/null 2>&1 || missing+=(microsocks)

if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { log "error: need root (or sudo) to install ${missing[*]}"; exit 1; }
        SUDO="sudo"
    fi
    log "installing ${missing[*]}"
    $SUDO apt-get update -qq
    # policy-rc.d-less containers may try to start tinyproxy's service: that
    # is harmless (it fails or is denied) and not what the tests use.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Optional: nft for wsclient/tests/netem.rs. A failure here (no root, no
# package, offline) only makes those tests use their fallbacks or skip.
if ! command -v nft >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    log "installing nftables (optional, for the network-fault tests)"
    if ! { DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nftables >/dev/null 2>&1 \
        || { $SUDO apt-get update -qq >/dev/null 2>&1 \
            && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nftables >/dev/null 2>&1; }; }; then
        log "warning: could not install nftables; tests/netem.rs will fall back or skip"
    fi
fi

echo "tinyproxy: $(command -v tinyproxy) ($(tinyproxy -v 2>&1 | head -n1))"
echo "microsocks: $(command -v microsocks)"
echo "nft: $(command -v nft || echo 'not installed (optional)')"
