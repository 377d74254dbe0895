// A tiny server for lab hosts: on every TCP line or UDP datagram it answers
// "<name> <peer address>", so a test sees both who answered and what source address arrived.
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';

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
