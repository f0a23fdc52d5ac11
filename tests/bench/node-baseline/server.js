// The comparison handler of tests/bench/gateway_load.rs (scenario `node`): Node's http server with
// @wecom/crypto, one process per core (cluster), no I/O. For each safe-mode Official Account
// callback it does what the gateway does before publishing: reads the query, takes <Encrypt> out
// of the body, checks msg_signature, decrypts, checks the receive id and reads the message's
// fields; then answers `success`. Bad input gets 400/403, as in the gateway.
//
// Usage: node server.js PORT TOKEN ENCODING_AES_KEY APPID [PROCESSES]
'use strict';

const cluster = require('cluster');
const http = require('http');
const os = require('os');
const { getSignature, decrypt } = require('@wecom/crypto');

const [port, token, aesKey, appid, processes] = process.argv.slice(2);

const ENCRYPT = /<Encrypt><!\[CDATA\[([^\]]*)\]\]><\/Encrypt>/;
const FIELD = /<(\w+)>(?:<!\[CDATA\[([\s\S]*?)\]\]>|([^<]*))<\/\1>/g;

function handle(req, res, body) {
  const q = new URLSearchParams(req.url.slice(req.url.indexOf('?') + 1));
  const m = ENCRYPT.exec(body);
  if (!m) {
    res.statusCode = 400;
    return res.end('body: element `Encrypt` is missing');
  }
  if (getSignature(token, q.get('timestamp'), q.get('nonce'), m[1]) !== q.get('msg_signature')) {
    res.statusCode = 403;
    return res.end('msg_signature does not match');
  }
  const { message, id } = decrypt(aesKey, m[1]);
  if (id !== appid) {
    res.statusCode = 403;
    return res.end('receive id mismatch');
  }
  const fields = {};
  for (const f of message.matchAll(FIELD)) fields[f[1]] = f[2] !== undefined ? f[2] : f[3];
  if (!fields.MsgType || !fields.FromUserName) {
    res.statusCode = 400;
    return res.end('message: MsgType and FromUserName are required');
  }
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  return res.end('success');
}

if (cluster.isPrimary) {
  const n = Number(processes || os.cpus().length);
  for (let i = 0; i < n; i += 1) cluster.fork();
} else {
  http
    .createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => handle(req, res, Buffer.concat(chunks).toString()));
    })
    .listen(Number(port), '127.0.0.1');
}
