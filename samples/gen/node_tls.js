// Node.js TLS peers for the sample captures (node:tls only).
//
//   node node_tls.js server --port P --cert chain.pem --key k.pem [--alpn h2,http/1.1]
//                           [--client-ca ca.pem] [--count N] [--host 127.0.0.1]
//   node node_tls.js client --port P --ca root.pem [--sni server.test|-] [--alpn h2]
//                           [--min TLSv1.2] [--max TLSv1.3] [--cert c.pem --key k.pem]
//                           [--keylog file]
// --sni - : no servername option, so node sends no SNI for an IP host and checks the host (IP) itself.
// Prints one JSON line describing the outcome.
'use strict';
const tls = require('node:tls');
const fs = require('node:fs');

function parse(argv) {
  const o = { mode: argv[0] };
  for (let i = 1; i < argv.length; i += 2) o[argv[i].replace(/^--/, '')] = argv[i + 1];
  return o;
}
const o = parse(process.argv.slice(2));
const host = o.host || '127.0.0.1';
const port = Number(o.port);
const out = (x) => process.stdout.write(JSON.stringify(x) + '\n');

if (o.mode === 'server') {
  const opts = { cert: fs.readFileSync(o.cert), key: fs.readFileSync(o.key) };
  if (o.alpn) opts.ALPNProtocols = o.alpn.split(',');
  if (o.min) opts.minVersion = o.min;
  if (o.max) opts.maxVersion = o.max;
  if (o['client-ca']) { opts.ca = fs.readFileSync(o['client-ca']); opts.requestCert = true; opts.rejectUnauthorized = true; }
  let left = Number(o.count || 1);
  const srv = tls.createServer(opts, (s) => {
    out({ mode: 'server', ok: true, version: s.getProtocol(), alpn: s.alpnProtocol || null });
    s.on('data', () => { s.end('HTTP/1.0 200 OK\r\nContent-Length: 15\r\n\r\nhello from node'); });
    s.on('error', (e) => out({ mode: 'server', error: String(e) }));
    s.on('close', () => { if (--left <= 0) srv.close(); });
  });
  srv.on('tlsClientError', (e) => { out({ mode: 'server', ok: false, error: String(e) }); if (--left <= 0) srv.close(); });
  if (o.keylog) srv.on('keylog', (line) => fs.appendFileSync(o.keylog, line));
  srv.listen(port, host);
} else if (o.mode === 'client') {
  const opts = { host, port };
  if (o.sni !== '-') opts.servername = o.sni || 'server.test';
  if (o.ca) opts.ca = fs.readFileSync(o.ca);
  if (o.alpn) opts.ALPNProtocols = o.alpn.split(',');
  if (o.min) opts.minVersion = o.min;
  if (o.max) opts.maxVersion = o.max;
  if (o.cert) { opts.cert = fs.readFileSync(o.cert); opts.key = fs.readFileSync(o.key); }
  const s = tls.connect(opts, () => {
    out({ mode: 'client', ok: true, version: s.getProtocol(), alpn: s.alpnProtocol || null, authorized: s.authorized });
    s.write('GET / HTTP/1.0\r\nHost: server.test\r\n\r\n');
  });
  if (o.keylog) s.on('keylog', (line) => fs.appendFileSync(o.keylog, line));
  let got = 0;
  s.on('data', (d) => { got += d.length; });
  s.on('end', () => { out({ mode: 'client', received: got }); s.end(); });
  s.on('error', (e) => { out({ mode: 'client', ok: false, error: String(e), code: e.code }); process.exitCode = 1; });
  s.setTimeout(5000, () => { out({ mode: 'client', ok: false, error: 'timeout' }); s.destroy(); });
} else {
  console.error('usage: node_tls.js server|client ...');
  process.exit(2);
}
