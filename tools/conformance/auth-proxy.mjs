// A loopback forwarding proxy that adds `Authorization: Bearer <token>` to every request.
//
// Why: `serve --http` refuses any request without a bearer token, and the conformance suite's server mode
// (@modelcontextprotocol/conformance 0.1.x: `server --url`) has no option to send a header. The suite talks
// to this proxy; the proxy forwards each request to the service unchanged except for that one header. Host
// and Origin pass through verbatim, so the service's own DNS-rebinding guard is what the suite's
// dns-rebinding-protection scenario tests (serve is told the proxy's address with --allowed-host).
// Bodies stream both ways (SSE answers and the standalone GET stream are not buffered).
//
//   CONFORMANCE_BEARER_TOKEN=... node auth-proxy.mjs UPSTREAM_PORT
//
// Listens on 127.0.0.1 at a free port and prints that port as its first stdout line. The token comes from
// the environment, not argv, so it does not show in `ps`.
import { createServer, request } from 'node:http';

const upstreamPort = Number(process.argv[2]);
const token = process.env.CONFORMANCE_BEARER_TOKEN;
if (!Number.isInteger(upstreamPort) || upstreamPort <= 0 || !token) {
  console.error('usage: CONFORMANCE_BEARER_TOKEN=<token> node auth-proxy.mjs UPSTREAM_PORT');
  process.exit(2);
}

// Hop-by-hop headers belong to one connection, not to the message (RFC 9110 7.6.1); node sets its own.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

function endToEnd(headers) {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name)));
}

const proxy = createServer((req, res) => {
  const upstream = request(
    { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: { ...endToEnd(req.headers), authorization: `Bearer ${token}` } },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers));
      res.flushHeaders();
      answer.pipe(res);
    },
  );
  upstream.on('error', (error) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`auth-proxy: upstream 127.0.0.1:${upstreamPort}: ${error.message}\n`);
  });
  // The client went away (e.g. closed its SSE stream): close the upstream request too.
  res.on('close', () => upstream.destroy());
  req.pipe(upstream);
});

proxy.listen(0, '127.0.0.1', () => {
  console.log(proxy.address().port);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.once(signal, () => process.exit(0));
