// The image's HEALTHCHECK: GET /healthz where `natops serve` (or `natops worker --listen`) listens,
// with Node's own fetch (the image has no curl): NATOPS_DASHBOARD_LISTEN when set (serve's probes
// are there then), else NATOPS_LISTEN, else natops's default 127.0.0.1:8080. A wildcard address is
// asked on the loopback. Exit 0 when it answers 2xx.
const listen = process.env.NATOPS_DASHBOARD_LISTEN || process.env.NATOPS_LISTEN || '127.0.0.1:8080';
const colon = listen.lastIndexOf(':');
let host = listen.slice(0, colon);
if (['', '0.0.0.0', '::', '[::]'].includes(host)) host = '127.0.0.1';
if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
try {
  const res = await fetch(`http://${host}:${listen.slice(colon + 1)}/healthz`, { signal: AbortSignal.timeout(4000) });
  process.exit(res.ok ? 0 : 1);
} catch {
  process.exit(1);
}
