#!/usr/bin/env node
// WebSockets over HTTP/2 (RFC 8441) test peer: Node's own HTTP/2 server
// (`node:http2`, with SETTINGS_ENABLE_CONNECT_PROTOCOL) carrying WebSocket
// frames read and written by Node `ws`'s Receiver and Sender, the same
// framing code as its WebSocket server.
//
// Prints exactly one line `PORT <n>` on stdout once listening.
//
// Extended CONNECT requests (`:method CONNECT`, `:protocol websocket`) by
// `:path`:
//   /echo                  echo every message (text as text, binary as binary)
//   /headers               first a text message: JSON of the request headers
//                          (pseudo-headers included) plus "sessions" (HTTP/2
//                          connections accepted so far) and "streams" (on this
//                          connection so far); then echo
//   /reject?status=S       answers S (default 403) with `x-reject: yes`
// Anything else: 404. Subprotocols: the first offered of --subprotocols.
//
// Flags: --port N, --host H, --tls-cert F --tls-key F (h2 over TLS, ALPN h2),
// --no-connect-protocol (do not enable RFC 8441: requests then fail),
// --subprotocols a,b, --compression (accept permessage-deflate, compress
// every message).

'use strict';

const fs = require('fs');
const http2 = require('http2');
const { Receiver, Sender, PerMessageDeflate, extension } = require('ws');

const args = {
  port: 0,
  host: '127.0.0.1',
  tlsCert: null,
  tlsKey: null,
  connectProtocol: true,
  subprotocols: [],
  compression: false,
};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const next = () => process.argv[++i];
  switch (a) {
    case '--port': args.port = parseInt(next(), 10); break;
    case '--host': args.host = next(); break;
    case '--tls-cert': args.tlsCert = next(); break;
    case '--tls-key': args.tlsKey = next(); break;
    case '--no-connect-protocol': args.connectProtocol = false; break;
    case '--subprotocols': args.subprotocols = next().split(',').filter((s) => s); break;
    case '--compression': args.compression = true; break;
    default:
      process.stderr.write(`h2_server.js: unknown argument ${a}\n`);
      process.exit(2);
  }
}

const settings = { enableConnectProtocol: args.connectProtocol };
// Node's default session memory limit (10 MB) tears a connection with a
// few hundred busy streams down; a load test needs more.
const maxSessionMemory = 1024;
const server = args.tlsCert
  ? http2.createSecureServer({
      cert: fs.readFileSync(args.tlsCert),
      key: fs.readFileSync(args.tlsKey),
      settings,
      maxSessionMemory,
    })
  : http2.createServer({ settings, maxSessionMemory });

let sessions = 0;
server.on('session', (session) => {
  sessions += 1;
  session.streamsSeen = 0;
});

server.on('stream', (stream, headers) => {
  const session = stream.session;
  session.streamsSeen += 1;
  if (headers[':method'] !== 'CONNECT' || headers[':protocol'] !== 'websocket') {
    stream.respond({ ':status': 400 });
    stream.end('not an extended CONNECT for websocket');
    return;
  }
  const url = new URL(headers[':path'] || '/', 'http://x');
  if (url.pathname === '/reject') {
    const status = parseInt(url.searchParams.get('status') || '403', 10);
    stream.respond({ ':status': status, 'x-reject': 'yes' });
    stream.end(`rejected ${status}`);
    return;
  }
  if (url.pathname !== '/echo' && url.pathname !== '/headers') {
    stream.respond({ ':status': 404 });
    stream.end();
    return;
  }
  if (headers['sec-websocket-version'] !== '13') {
    stream.respond({ ':status': 400 });
    stream.end('sec-websocket-version must be 13');
    return;
  }
  const offered = (headers['sec-websocket-protocol'] || '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s);
  const chosen = offered.find((p) => args.subprotocols.includes(p));
  const answer = { ':status': 200 };
  if (chosen) answer['sec-websocket-protocol'] = chosen;
  // permessage-deflate as Node `ws`'s server negotiates it.
  const maxPayload = 64 * 1024 * 1024;
  const extensions = {};
  if (args.compression && headers['sec-websocket-extensions']) {
    const pmd = new PerMessageDeflate({ threshold: 0, isServer: true, maxPayload });
    try {
      const offers = extension.parse(headers['sec-websocket-extensions']);
      if (offers[PerMessageDeflate.extensionName]) {
        pmd.accept(offers[PerMessageDeflate.extensionName]);
        answer['sec-websocket-extensions'] = extension.format({
          [PerMessageDeflate.extensionName]: [pmd.params],
        });
        extensions[PerMessageDeflate.extensionName] = pmd;
      }
    } catch (e) {
      stream.respond({ ':status': 400 });
      stream.end(`bad extension offer: ${e.message}`);
      return;
    }
  }
  const compress = PerMessageDeflate.extensionName in extensions;
  stream.respond(answer);

  const receiver = new Receiver({ isServer: true, maxPayload, extensions });
  const sender = new Sender(stream, extensions);
  let closed = false;
  receiver.on('message', (data, isBinary) => {
    if (!closed) sender.send(data, { binary: isBinary, fin: true, mask: false, compress }, () => {});
  });
  receiver.on('ping', (data) => {
    if (!closed) sender.pong(data, false, () => {});
  });
  receiver.on('conclude', (code, reason) => {
    if (closed) return;
    closed = true;
    sender.close(code === 1005 ? undefined : code, reason, false, () => stream.end());
  });
  receiver.on('error', (err) => {
    if (closed) return;
    closed = true;
    sender.close(err[Symbol.for('status-code')] || 1002, '', false, () => stream.end());
  });
  stream.on('data', (chunk) => receiver.write(chunk));
  stream.on('error', () => {});
  if (url.pathname === '/headers') {
    const seen = { ...headers, sessions, streams: session.streamsSeen };
    sender.send(Buffer.from(JSON.stringify(seen)), { binary: false, fin: true, mask: false, compress: false }, () => {});
  }
});

server.on('error', (e) => {
  process.stderr.write(`[h2_server] ${e.stack}\n`);
  process.exit(1);
});
server.listen(args.port, args.host, () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
