// A real Git server over https for tests: git-http-backend (git's own smart-HTTP CGI) behind a
// Node https server with a self-signed certificate made by openssl, asking for basic auth.
// Every Authorization header it saw is kept, so a test can tell the credential went over.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { run } from '../../common/exec.ts';

export interface GitHttpsServer {
  /** https://HOST:PORT/ */
  url: string;
  /** the certificate to trust (PEM) */
  caFile: string;
  /** the user:password pairs of every request that carried basic auth */
  seen: string[];
  close(): Promise<void>;
}

/**
 * Serves the repositories under `root`; `user`/`password` are required on every request. `host`:
 * the address it listens on and its certificate names (127.0.0.1; the test cluster's pods reach
 * the node at 10.244.0.1).
 */
export async function startGitHttps(
  root: string,
  dir: string,
  user: string,
  password: string,
  host = '127.0.0.1',
): Promise<GitHttpsServer> {
  const key = join(dir, 'key.pem');
  const caFile = join(dir, 'cert.pem');
  await run([
    'openssl',
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    caFile,
    '-days',
    '1',
    '-subj',
    `/CN=${host}`,
    '-addext',
    `subjectAltName=IP:${host}`,
  ]);
  const backend = (await run(['git', '--exec-path'])).stdout.trim();
  const seen: string[] = [];
  const server: Server = createServer({ key: await readFile(key), cert: await readFile(caFile) }, (req, res) => {
    const auth = req.headers.authorization;
    const given = auth?.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString() : undefined;
    if (given !== undefined) seen.push(given);
    if (given !== `${user}:${password}`) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' }).end();
      return;
    }
    const url = new URL(req.url ?? '/', 'https://x');
    const cgi = spawn(join(backend, 'git-http-backend'), [], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        REQUEST_METHOD: req.method,
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        REMOTE_USER: user,
        REMOTE_ADDR: '127.0.0.1',
        ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
        ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: String(req.headers['content-encoding']) } : {}),
      },
    });
    req.pipe(cgi.stdin);
    const out: Buffer[] = [];
    cgi.stdout.on('data', (b: Buffer) => out.push(b));
    cgi.on('close', () => {
      const all = Buffer.concat(out);
      const end = all.indexOf('\r\n\r\n') >= 0 ? all.indexOf('\r\n\r\n') : all.indexOf('\n\n');
      const sep = all[end] === 0x0d ? 4 : 2;
      const headers: Record<string, string> = {};
      let status = 200;
      for (const line of all.subarray(0, end).toString().split(/\r?\n/)) {
        const i = line.indexOf(':');
        const [name, value] = [line.slice(0, i).trim(), line.slice(i + 1).trim()];
        if (name.toLowerCase() === 'status') status = Number(value.split(' ')[0]);
        else if (name) headers[name] = value;
      }
      res.writeHead(status, headers).end(all.subarray(end + sep));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://${host}:${port}/`,
    caFile,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
