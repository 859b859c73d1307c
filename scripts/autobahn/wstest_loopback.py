# -*- coding: utf-8 -*-
"""Run Autobahn|Testsuite's `wstest` with every listening socket bound to loopback.

Usage (with the Python 2.7 interpreter of .venv-autobahn):

    python wstest_loopback.py -m fuzzingserver -s spec.json -u 0

wstest has no option for the listen address: autobahn.twisted.websocket.listenWS()
calls reactor.listenTCP(port, factory, backlog, interface='') -- i.e. all
interfaces -- and the host part of the spec's "url" is only used for the
handshake, never for bind(). The embedded web server (-u/--webport, default
8080) also binds all interfaces. So this wrapper installs wstest's reactor as
wstest itself does, then replaces reactor.listenTCP / reactor.listenSSL with
versions that force `interface` to AUTOBAHN_BIND (default 127.0.0.1, and only
loopback addresses are accepted) before handing over to wstest's own main.
Outgoing connections (fuzzingclient mode) are unaffected; their targets come
from the spec, which scripts/autobahn.sh writes with 127.0.0.1 only.

Python 2.7 syntax on purpose (runs inside the wstest virtualenv).
"""
import os
import sys

BIND = os.environ.get("AUTOBAHN_BIND", "127.0.0.1")
if not (BIND.startswith("127.") or BIND in ("::1", "localhost")):
    sys.stderr.write("wstest_loopback: refusing non-loopback bind address %r\n" % BIND)
    sys.exit(2)
if BIND == "localhost":
    BIND = "127.0.0.1"

# Must come first: autobahntestsuite.wstest imports its `choosereactor`, which
# installs the best reactor (epoll) before twisted.internet.reactor is touched.
from autobahntestsuite import wstest  # noqa: E402
from twisted.internet import reactor  # noqa: E402

_listenTCP = reactor.listenTCP
_listenSSL = reactor.listenSSL


def _check(interface):
    if interface not in ("", BIND):
        sys.stderr.write("wstest_loopback: overriding bind address %r -> %r\n" % (interface, BIND))


def listenTCP(port, factory, backlog=50, interface=""):
    _check(interface)
    return _listenTCP(port, factory, backlog, BIND)


def listenSSL(port, factory, contextFactory, backlog=50, interface=""):
    _check(interface)
    return _listenSSL(port, factory, contextFactory, backlog, BIND)


reactor.listenTCP = listenTCP
reactor.listenSSL = listenSSL

if __name__ == "__main__":
    sys.argv[0] = "wstest"
    sys.exit(wstest.run())
