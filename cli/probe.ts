// A tiny server for lab hosts: on every TCP line or UDP datagram it answers
// "<name> <peer address>", so a test sees both who answered and what source address arrived.
// And its client: `natops probe --send` sends the probes it reads as JSON from stdin, from the
// host it runs in, and writes each first line answered (preview --prove).
import { connect, createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { z } from 'zod';
import { ipv4Address } from '../common/ipv4-schema.ts';

export interface ProbeOptions {
  name: string;
  tcp: number[];
  udp: number[];
}

export function serveProbe(opts: ProbeOptions): Promise<void> {
  const ready: Promise<void>[] = [];
  for (const port of opts.tcp) {
    const server = createServer((sock) => {
      const peer = sock.remoteAddress?.replace(/^::ffff:/, '') ?? '?';
      sock.write(`${opts.name} ${peer}\n`);
      sock.on('data', () => sock.write(`${opts.name} ${peer}\n`));
      sock.on('error', () => undefined);
    });
    ready.push(new Promise((resolve) => server.listen(port, '0.0.0.0', resolve)));
  }
  for (const port of opts.udp) {
    const sock = createSocket('udp4');
    sock.on('message', (_msg, rinfo) => sock.send(`${opts.name} ${rinfo.address}\n`, rinfo.port, rinfo.address));
    ready.push(new Promise((resolve) => sock.bind(port, '0.0.0.0', resolve)));
  }
  return Promise.all(ready).then(() => {
    process.stdout.write(`listening ${opts.name} tcp=${opts.tcp.join(',')} udp=${opts.udp.join(',')}\n`);
  });
}

/** One probe a client sends: a TCP connection or a UDP datagram, and the first line back. */
export const ProbeTargets = z.array(
  z.object({ protocol: z.enum(['tcp', 'udp']), to: ipv4Address, port: z.number().int().min(1).max(65535) }),
);
export type ProbeTarget = z.infer<typeof ProbeTargets>[number];

/** The first line answered, or why none came. */
export type ProbeReply = { line: string } | { error: string };

/** Sends each target in turn, waiting at most `timeoutMs` for each answer. */
export async function sendProbes(targets: readonly ProbeTarget[], timeoutMs: number): Promise<ProbeReply[]> {
  const out: ProbeReply[] = [];
  for (const t of targets) out.push(await (t.protocol === 'tcp' ? tcpProbe(t, timeoutMs) : udpProbe(t, timeoutMs)));
  return out;
}

function tcpProbe(t: ProbeTarget, timeoutMs: number): Promise<ProbeReply> {
  return new Promise((resolve) => {
    const sock = connect({ host: t.to, port: t.port });
    let buffer = '';
    const done = (r: ProbeReply) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ error: `no answer in ${timeoutMs} ms` }), timeoutMs);
    sock.on('data', (b: Buffer) => {
      buffer += b.toString();
      const nl = buffer.indexOf('\n');
      if (nl >= 0) done({ line: buffer.slice(0, nl).trim() });
    });
    sock.on('error', (e: NodeJS.ErrnoException) => done({ error: e.code ?? e.message }));
    sock.on('end', () => done(buffer ? { line: buffer.trim() } : { error: 'closed without an answer' }));
  });
}

function udpProbe(t: ProbeTarget, timeoutMs: number): Promise<ProbeReply> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const done = (r: ProbeReply) => {
      clearTimeout(timer);
      sock.close();
      resolve(r);
    };
    const timer = setTimeout(() => done({ error: `no answer in ${timeoutMs} ms` }), timeoutMs);
    sock.on('message', (msg) => done({ line: msg.toString().split('\n')[0]!.trim() }));
    sock.on('error', (e: NodeJS.ErrnoException) => done({ error: e.code ?? e.message }));
    sock.send('probe\n', t.port, t.to);
  });
}
