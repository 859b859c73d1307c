// Interop client for `wsc serve` (Node `ws`), run by wsc/tests/cli.rs:
//
//     node node_client.js URL [--compress]
//
// Against `wsc serve --echo`: text, binary, large, fragmented and empty
// messages come back unchanged, a ping gets its pong, close 1000 is
// answered with 1000. Prints `OK` and exits 0 when every check passed.
'use strict';

const path = require('path');
const root = path.resolve(__dirname, '..', '..', '..');
const WebSocket = require(path.join(root, 'peers', 'node_modules', 'ws'));

const url = process.argv[2];
const compress = process.argv.includes('--compress');
const fail = (why) => {
  console.error(`node_client: ${why}`);
  process.exit(1);
};
setTimeout(() => fail('timed out'), 20000).unref();

const ws = new WebSocket(url, { perMessageDeflate: compress ? { threshold: 0 } : false });
const inbox = [];
let waiting = null;
ws.on('message', (data, isBinary) => {
  inbox.push({ data, isBinary });
  if (waiting) {
    const w = waiting;
    waiting = null;
    w();
  }
});
ws.on('error', (e) => fail(`error: ${e.message}`));

function recv() {
  return new Promise((resolve) => {
    const take = () => resolve(inbox.shift());
    if (inbox.length) take();
    else waiting = take;
  });
}

async function expectEcho(sent, binary) {
  const got = await recv();
  if (got.isBinary !== binary) fail(`type differs for a ${sent.length}-byte message`);
  const buf = Buffer.isBuffer(sent) ? sent : Buffer.from(sent, 'utf8');
  if (!Buffer.from(got.data).equals(buf)) fail(`echo differs for a ${buf.length}-byte message`);
}

ws.on('open', async () => {
  if (compress && !String(ws.extensions).includes('permessage-deflate')) {
    fail(`deflate not negotiated: ${ws.extensions}`);
  }
  for (const text of ['héllo ✓', '', 'y'.repeat(300000)]) {
    ws.send(text);
    await expectEcho(text, false);
  }
  const bin = Buffer.alloc(1024, 0).map((_, i) => i % 256);
  ws.send(bin);
  await expectEcho(bin, true);
  // One message as three frames.
  ws.send('frag', { fin: false });
  ws.send('men', { fin: false });
  ws.send('ted', { fin: true });
  await expectEcho('fragmented', false);
  await new Promise((resolve) => {
    ws.once('pong', (data) => (String(data) === 'probe' ? resolve() : fail(`pong payload ${data}`)));
    ws.ping('probe');
  });
  ws.on('close', (code) => {
    if (code !== 1000) fail(`close code ${code}`);
    console.log('OK');
    process.exit(0);
  });
  ws.close(1000, 'bye');
});
