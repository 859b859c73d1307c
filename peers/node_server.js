#!/usr/bin/env node
'use strict';
// WebSocket test peer built on Node `ws`.
//
// Behaviour is documented in peers/README.md and is identical to
// peers/py_server.py.  Dependencies: `npm ci` in peers/ (done by
// scripts/install-peers.sh).
//
// Prints exactly one line `PORT <n>` on stdout once listening (`PORT 0` with
// `--unix PATH`, which listens on that Unix domain socket instead).

const fs = require('fs');
const http = require('http');
const https = require('https');
const path = require('path');

let WebSocketServer;
try {
  ({ WebSocketServer } = require(path.join(__dirname, 'node_modules', 'ws')));
} catch (e) {
  process.stderr.write(
    '[node_server] cannot load ws from peers/node_modules: run scripts/install-peers.sh\n'
  );
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Payload rules (keep in sync with py_server.py, README.md and
// wsclient/tests/support/peers.rs).
// ---------------------------------------------------------------------------

const TEXT_UNIT = Buffer.from('héllo wörld ✓ ', 'utf8'); // 18 bytes

// Exactly n bytes of valid UTF-8: the bytes of TEXT_UNIT repeated, cut to n
// bytes; if the cut splits a multi-byte character, that partial character's
// bytes are replaced by ASCII '.' (one '.' per byte).
function textPayload(n) {
  const buf = Buffer.alloc(n);
  for (let i = 0; i < n; i++) buf[i] = TEXT_UNIT[i % TEXT_UNIT.length];
  // Walk back over continuation bytes to the last lead byte.
  let j = n;
  while (j > 0 && (buf[j - 1] & 0xc0) === 0x80) j--;
  if (j > 0 && buf[j - 1] >= 0xc0) {
    const lead = buf[j - 1];
    const need = lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
    if (n - (j - 1) < need) buf.fill(0x2e, j - 1, n);
  }
  return buf;
}

// Byte i is i % 256.
function binaryPayload(n) {
  const buf = Buffer.alloc(n);
  for (let i = 0; i < n; i++) buf[i] = i & 0xff;
  return buf;
}

// Chunk i is data[floor(i*N/K) .. floor((i+1)*N/K)] (byte boundaries; may
// split a UTF-8 character across frames on purpose).
function splitChunks(data, k) {
  const n = data.length;
  const out = [];
  for (let i = 0; i < k; i++) {
    out.push(data.subarray(Math.floor((i * n) / k), Math.floor(((i + 1) * n) / k)));
  }
  return out;
}

function closeFrame(code, reason) {
  const payload =
    code === null
      ? Buffer.alloc(0)
      : Buffer.concat([Buffer.from([code >> 8, code & 0xff]), reason]);
  const n = payload.length;
  let header;
  if (n < 126) header = Buffer.from([0x88, n]);
  else if (n < 65536) header = Buffer.from([0x88, 126, n >> 8, n & 0xff]);
  else {
    header = Buffer.alloc(10);
    header[0] = 0x88;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([header, payload]);
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

function parseArgs(argv) {
  const a = {
    port: 0,
    host: '127.0.0.1',
    tlsCert: null,
    tlsKey: null,
    tlsClientCa: null,
    compression: false,
    subprotocols: [],
    maxSize: 64 * 1024 * 1024,
    unix: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`missing value for ${arg}`);
      return argv[++i];
    };
    switch (arg) {
      case '--port': a.port = parseInt(next(), 10); break;
      case '--host': a.host = next(); break;
      case '--tls-cert': a.tlsCert = next(); break;
      case '--tls-key': a.tlsKey = next(); break;
      case '--tls-client-ca': a.tlsClientCa = next(); break;
      case '--compression': a.compression = true; break;
      case '--subprotocols': a.subprotocols = next().split(',').filter((s) => s); break;
      case '--max-size': a.maxSize = parseInt(next(), 10); break;
      case '--unix': a.unix = next(); break;
      case '-h':
      case '--help': usage(null); break;
      default: usage(`unknown argument ${arg}`);
    }
  }
  if (!!a.tlsCert !== !!a.tlsKey) usage('--tls-cert and --tls-key go together');
  if (a.tlsClientCa && !a.tlsCert) usage('--tls-client-ca needs --tls-cert and --tls-key');
  return a;
}

function usage(err) {
  const text =
    'usage: node_server.js [--port N] [--host H] [--tls-cert F --tls-key F] [--tls-client-ca F] ' +
    '[--compression] [--subprotocols a,b] [--max-size BYTES] [--unix PATH]\n';
  if (err) {
    process.stderr.write(`node_server.js: ${err}\n${text}`);
    process.exit(2);
  }
  process.stdout.write(text);
  process.exit(0);
}

const args = parseArgs(process.argv.slice(2));

// ---------------------------------------------------------------------------
// Handshake routing
// ---------------------------------------------------------------------------

const KNOWN_PATHS = new Set([
  '/echo', '/headers', '/fragmented', '/send', '/close', '/ping',
  '/reject', '/drop-mid-message', '/silent', '/close-after',
]);

function parseTarget(target) {
  const u = new URL(target, 'http://peer.invalid');
  return { pathname: u.pathname, query: u.searchParams };
}

function qInt(query, name, dflt) {
  const v = query.get(name);
  if (v === null || v === '') return dflt;
  const n = parseInt(v, 10);
  if (Number.isNaN(n)) throw new Error(`bad integer for ${name}: ${v}`);
  return n;
}

function rejectUpgrade(socket, status, retryAfter) {
  const phrase = http.STATUS_CODES[status] || 'Unknown';
  const body = status === 204 || status === 304 ? Buffer.alloc(0) : Buffer.from(`rejected ${status}`);
  let head =
    `HTTP/1.1 ${status} ${phrase}\r\n` +
    `Date: ${new Date().toUTCString()}\r\n` +
    'Connection: close\r\n' +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${body.length}\r\n` +
    'X-Reject: yes\r\n';
  if (retryAfter !== null && (status === 429 || status === 503)) {
    head += `Retry-After: ${retryAfter}\r\n`;
  }
  head += '\r\n';
  socket.once('finish', () => socket.destroy());
  socket.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
}

const wss = new WebSocketServer({
  noServer: true,
  clientTracking: true,
  maxPayload: args.maxSize,
  perMessageDeflate: args.compression ? { threshold: 0 } : false,
  handleProtocols: (offered /* Set, client order */) => {
    for (const p of offered) if (args.subprotocols.includes(p)) return p;
    return false;
  },
});

const server = args.tlsCert
  ? https.createServer({
      cert: fs.readFileSync(args.tlsCert),
      key: fs.readFileSync(args.tlsKey),
      ALPNProtocols: ['http/1.1'],
      ...(args.tlsClientCa
        ? { ca: fs.readFileSync(args.tlsClientCa), requestCert: true, rejectUnauthorized: true }
        : {}),
    })
  : http.createServer();

server.on('request', (req, res) => {
  res.writeHead(426, { 'Content-Type': 'text/plain', Connection: 'close' });
  res.end('upgrade required\n');
});

server.on('upgrade', (req, socket, head) => {
  socket.on('error', (e) => process.stderr.write(`[node_server] socket error: ${e.message}\n`));
  let route;
  try {
    route = parseTarget(req.url);
  } catch (e) {
    rejectUpgrade(socket, 400, null);
    return;
  }
  if (route.pathname === '/reject') {
    let status = 403;
    try { status = qInt(route.query, 'status', 403); } catch (e) { status = 400; }
    if (!(status >= 200 && status <= 599)) status = 400;
    rejectUpgrade(socket, status, route.query.get('retry_after'));
    return;
  }
  if (!KNOWN_PATHS.has(route.pathname)) {
    rejectUpgrade(socket, 404, null);
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    try {
      onConnection(ws, req, route);
    } catch (e) {
      process.stderr.write(`[node_server] handler for ${req.url} failed: ${e.stack}\n`);
      ws.terminate();
    }
  });
});

// ---------------------------------------------------------------------------
// Behaviours
// ---------------------------------------------------------------------------

function echo(ws, limit, onDone) {
  let n = 0;
  if (limit !== undefined && limit <= 0) {
    onDone();
    return;
  }
  const listener = (data, isBinary) => {
    if (limit !== undefined && n >= limit) return;
    ws.send(data, { binary: isBinary });
    n++;
    if (limit !== undefined && n >= limit) {
      ws.removeListener('message', listener);
      onDone();
    }
  };
  ws.on('message', listener);
}

// Take the TCP socket away from ws: whatever the client sends is discarded
// (or, with closeOnData, closes the socket). ws still sees 'end'/'close'.
function detach(ws, closeOnData) {
  const sock = ws._socket;
  sock.removeAllListeners('data');
  sock.on('data', () => {
    if (closeOnData) sock.destroy();
  });
  sock.resume();
  return sock;
}

function onConnection(ws, req, route) {
  const q = route.query;
  ws.on('error', (e) => process.stderr.write(`[node_server] ${req.url}: ${e.message}\n`));

  switch (route.pathname) {
    case '/echo':
      echo(ws);
      break;

    case '/headers': {
      const obj = {};
      const raw = req.rawHeaders;
      for (let i = 0; i + 1 < raw.length; i += 2) {
        const key = raw[i].toLowerCase();
        obj[key] = key in obj ? `${obj[key]}, ${raw[i + 1]}` : raw[i + 1];
      }
      obj.path = req.url;
      obj.subprotocol = ws.protocol ? ws.protocol : null;
      ws.send(JSON.stringify(obj));
      echo(ws);
      break;
    }

    case '/fragmented': {
      const size = qInt(q, 'size', 1024);
      const count = Math.max(1, qInt(q, 'count', 4));
      const isText = (q.get('type') || 'text') === 'text';
      const data = isText ? textPayload(size) : binaryPayload(size);
      const chunks = splitChunks(data, count);
      chunks.forEach((chunk, i) => {
        ws.send(chunk, { binary: !isText, fin: i === chunks.length - 1 });
      });
      echo(ws);
      break;
    }

    case '/send': {
      const size = qInt(q, 'size', 16);
      const count = qInt(q, 'count', 1);
      const isText = (q.get('type') || 'binary') === 'text';
      const data = isText ? textPayload(size) : binaryPayload(size);
      for (let i = 0; i < count; i++) ws.send(data, { binary: !isText });
      echo(ws);
      break;
    }

    case '/close': {
      const codeS = q.get('code') || '1000';
      const reason = q.get('reason') || '';
      const code = codeS === 'none' || codeS === '1005' ? null : parseInt(codeS, 10);
      if (q.get('raw') === '1') {
        const sock = detach(ws, true);
        sock.write(closeFrame(code, Buffer.from(reason, 'utf8')));
        const t = setTimeout(() => sock.destroy(), 5000);
        sock.once('close', () => clearTimeout(t));
      } else if (code === null) {
        ws.close();
      } else {
        ws.close(code, reason);
      }
      break;
    }

    case '/ping': {
      const data = Buffer.from(q.get('data') || '', 'utf8');
      let answered = false;
      ws.on('pong', (payload) => {
        if (!answered && payload.equals(data)) {
          answered = true;
          ws.send(`pong:${data.toString('utf8')}`);
        }
      });
      ws.ping(data);
      echo(ws);
      break;
    }

    case '/drop-mid-message': {
      const sock = detach(ws, false);
      // Binary frame, FIN, 16-bit length = 1000, then only 10 bytes.
      const frame = Buffer.concat([Buffer.from([0x82, 0x7e, 0x03, 0xe8]), binaryPayload(10)]);
      sock.write(frame, () => sock.destroy());
      break;
    }

    case '/silent':
      detach(ws, false); // read & discard everything, never write
      break;

    case '/close-after': {
      const n = qInt(q, 'n', 1);
      echo(ws, n, () => ws.close(1000, 'done'));
      break;
    }

    default:
      ws.terminate();
  }
}

// ---------------------------------------------------------------------------
// Start / stop
// ---------------------------------------------------------------------------

server.on('error', (e) => {
  process.stderr.write(`[node_server] server error: ${e.stack}\n`);
  process.exit(1);
});

if (args.unix) {
  // A Unix domain socket instead of TCP: `PORT 0` once listening.
  server.listen(args.unix, () => {
    process.stdout.write('PORT 0\n');
  });
} else {
  server.listen(args.port, args.host, () => {
    process.stdout.write(`PORT ${server.address().port}\n`);
  });
}

function shutdown() {
  for (const ws of wss.clients) ws.terminate();
  server.close();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
