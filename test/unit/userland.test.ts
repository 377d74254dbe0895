// The scripts natops runs in a gateway pod, run here for real under both userlands a gateway
// image may have: GNU's (dash, sed, coreutils, procps: Debian's) and BusyBox's (Kube-OVN's Alpine
// image). Each userland is a PATH of its own with only symlinks in it, and every request goes
// through podCommand (in-pod timeout, sentinel pipe) with stdin left open, as over pods/exec
// before Kubernetes 1.30: a GNU-only option or a stdin that never ends fails here, not in a pod.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CommandError, type Exec, type ExecResult } from '../../common/exec.ts';
import { readGatewayState } from '../../runtime/gateway-io.ts';
import { POD_MISMATCH_EXIT, podCommand } from '../../runtime/kubernetes/pod-exec.ts';
import { USERLAND_PROBE_ARGV, userlandProblems } from '../../runtime/kubernetes/userland.ts';

const BUSYBOX = '/bin/busybox';
/** what each userland answers for: the tools natops's scripts call beside the dataplane's */
const TOOLS = ['sh', 'sed', 'timeout', 'sleep', 'cat', 'head', 'printf', 'true', 'wc', 'sysctl'] as const;
const GNU: Record<(typeof TOOLS)[number], string> = {
  sh: '/usr/bin/dash',
  sed: '/usr/bin/sed',
  timeout: '/usr/bin/timeout',
  sleep: '/usr/bin/sleep',
  cat: '/usr/bin/cat',
  head: '/usr/bin/head',
  printf: '/usr/bin/printf',
  true: '/usr/bin/true',
  wc: '/usr/bin/wc',
  sysctl: '/usr/sbin/sysctl',
};
/** the dataplane's own tools, the host's (iproute2, iptables, conntrack, iputils) */
const DATAPLANE = {
  ip: '/usr/bin/ip',
  'iptables-legacy-save': '/usr/sbin/iptables-legacy-save',
  'iptables-legacy-restore': '/usr/sbin/iptables-legacy-restore',
  'iptables-nft-save': '/usr/sbin/iptables-nft-save',
  'iptables-nft-restore': '/usr/sbin/iptables-nft-restore',
  conntrack: '/usr/sbin/conntrack',
  arping: '/usr/bin/arping',
};

interface Userland {
  name: string;
  /** the userland's tools only */
  dir: string;
  /** the userland's tools and the dataplane's */
  full: string;
}

let root: string;
const userlands: Userland[] = [];

async function linkDir(dir: string, links: Record<string, string>): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const [name, target] of Object.entries(links)) await symlink(target, join(dir, name));
  return dir;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'natops-userland-'));
  const busybox = Object.fromEntries(TOOLS.map((t) => [t, BUSYBOX]));
  for (const [name, links] of [
    ['GNU', GNU],
    ['BusyBox', busybox],
  ] as const) {
    userlands.push({
      name,
      dir: await linkDir(join(root, name, 'bin'), links),
      full: await linkDir(join(root, name, 'full'), { ...links, ...DATAPLANE }),
    });
  }
  // the userlands are what they claim (BusyBox's sed says it is not GNU's)
  const [gnu, bb] = await Promise.all(userlands.map((u) => local(u.dir)({ argv: ['sed', '--version'] })));
  assert.match(gnu!.stdout, /GNU sed/);
  assert.match(bb!.stdout, /not GNU sed/);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * An Exec that runs each request as the pod would: podCommand's argv, PATH = `path` only, stdin
 * written and never ended (as client-node cannot half-close it before Kubernetes 1.30).
 */
function local(path: string, opts: { raw?: boolean; pod?: { uid: string; mounts: string } } = {}): Exec {
  return (req) =>
    new Promise<ExecResult>((resolve, reject) => {
      const { command, stdin } = opts.raw
        ? { command: req.argv, stdin: undefined }
        : podCommand(req, req.timeoutMs ?? 10_000, opts.pod ? { pod: opts.pod } : {});
      const child = spawn(command[0]!, command.slice(1), { env: { PATH: path }, stdio: 'pipe' });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.stdin.on('error', () => undefined); // the command may stop reading early
      if (stdin !== undefined) child.stdin.write(stdin);
      const backstop = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${req.argv.join(' ')}: still running after 20 s (stdin never ended?)`));
      }, 20_000);
      child.on('close', (code, signal) => {
        clearTimeout(backstop);
        child.stdin.destroy();
        // a process killed by a signal reports 128 + its number over exec, as here
        const status = code ?? (signal === 'SIGKILL' ? 137 : 128);
        const stdout = Buffer.concat(out);
        const r = {
          stdout: stdout.toString(),
          stdoutBytes: stdout,
          stderr: Buffer.concat(err).toString(),
          code: status,
        };
        if (!(req.okExitCodes ?? [0]).includes(status)) reject(new CommandError('local', req.argv, status, r.stderr));
        else resolve(r);
      });
    });
}

/** Stubs of the read commands, as shell scripts of the userland's own sh. */
async function readStubs(u: Userland): Promise<string> {
  const dir = join(root, u.name, 'stubs');
  await mkdir(dir, { recursive: true });
  const stub = async (name: string, body: string) => {
    await writeFile(join(dir, name), `#!${join(u.dir, 'sh')}\n${body}\n`);
    await chmod(join(dir, name), 0o755);
  };
  await stub(
    'iptables-legacy-save',
    `printf '%s\\n' '# Generated by iptables-save' '*nat' ':PREROUTING ACCEPT [0:0]' ':DNAT_FILTER - [0:0]' ':SHARED_DNAT - [0:0]' '-A PREROUTING -j DNAT_FILTER' '-A DNAT_FILTER -j SHARED_DNAT' '-A SHARED_DNAT -d 192.168.0.112/32 -p tcp -m tcp --dport 8888 -j DNAT --to-destination 10.0.1.10:80' 'COMMIT'`,
  );
  // iptables-nft-save is not there: the shell's "not found" must read as an absent iptables
  await stub(
    'ip',
    `case "$*" in
  "-j addr show dev net1") echo '[{"ifname":"net1","flags":["UP"],"addr_info":[{"family":"inet","local":"192.168.0.111","prefixlen":24,"scope":"global"}]}]' ;;
  "-j rule show") echo '[{"priority":0,"src":"all","table":"local"}]' ;;
  *) echo 'Error: ipv4: FIB table does not exist.' >&2; echo 'Dump terminated' >&2; exit 2 ;;
esac`,
  );
  await stub('sysctl', `[ "$1" = -n ] && printf '1\\n1\\n'`);
  return dir;
}

const payloads: [string, string][] = [
  [
    'lines with shell and sed metacharacters',
    '*nat\n-A X -m comment --comment "a $b `c` \\d /e/ & ;q" -j RETURN\nCOMMIT\n',
  ],
  ['a line that is almost the sentinel', '#natops-end-\n#natops-end-0000\nlast\n'],
  ['no newline at the end', 'one\ntwo'],
  ['nothing', ''],
];

for (const name of ['GNU', 'BusyBox']) {
  describe(`the gateway's scripts under ${name}'s userland`, () => {
    const u = () => userlands.find((x) => x.name === name)!;

    for (const [what, payload] of payloads) {
      it(`stdin up to the sentinel reaches the command exactly, and it ends: ${what}`, async () => {
        const r = await local(u().dir)({ argv: ['cat'], stdin: payload });
        assert.equal(r.stdout, payload === '' || payload.endsWith('\n') ? payload : `${payload}\n`);
      });
    }

    it('a 1 MB payload (10,000 rules) passes whole', async () => {
      const payload = Array.from(
        { length: 10_000 },
        (_, i) =>
          `-A SHARED_DNAT -d 192.168.${i >> 8}.${i & 255}/32 -p tcp -m tcp --dport 8888 -j DNAT --to-destination 10.0.1.10:80 -m comment --comment x${i}`,
      ).join('\n');
      const r = await local(u().dir)({ argv: ['wc', '-c'], stdin: payload });
      assert.equal(Number(r.stdout.trim()), Buffer.byteLength(payload) + 1);
    });

    it("the command's exit status comes back, with and without stdin", async () => {
      const exec = local(u().dir);
      const fails = ['sh', '-c', 'cat >/dev/null; echo broken >&2; exit 3'];
      await assert.rejects(exec({ argv: fails, stdin: 'x\n' }), (e) => e instanceof CommandError && e.code === 3);
      await assert.rejects(exec({ argv: ['sh', '-c', 'exit 4'] }), (e) => e instanceof CommandError && e.code === 4);
    });

    it('a command past its timeout is killed by the in-pod timeout', async () => {
      const started = performance.now();
      const r = await local(u().dir)({ argv: ['sleep', '30'], timeoutMs: 1000, okExitCodes: [137] });
      assert.equal(r.code, 137);
      assert.ok(performance.now() - started < 5000, 'killed after about a second, not 30');
    });

    it('sysctl -n prints one value per line in the order asked (readSysctls relies on it)', async () => {
      const r = await local(u().dir)({ argv: ['sysctl', '-n', 'kernel.ostype', 'kernel.osrelease', 'kernel.ostype'] });
      assert.deepEqual(r.stdout.trim().split('\n'), [
        'Linux',
        (await local(u().dir)({ argv: ['cat', '/proc/sys/kernel/osrelease'] })).stdout.trim(),
        'Linux',
      ]);
    });

    it('the read script frames each read; a missing iptables reads as absent', async () => {
      const stubs = await readStubs(u());
      const state = await readGatewayState(local(`${stubs}:${u().dir}`));
      assert.equal(state.iptables, 'legacy');
      assert.deepEqual(state.nat.SHARED_DNAT, [
        '-d 192.168.0.112/32 -p tcp -m tcp --dport 8888 -j DNAT --to-destination 10.0.1.10:80',
      ]);
      assert.deepEqual(state.addresses, [{ dev: 'net1', cidr: '192.168.0.111/24' }]);
      assert.equal(state.net1Up, true);
      assert.deepEqual(state.routes, []);
      assert.deepEqual(state.rules, []);
      assert.deepEqual(state.sysctls, { 'net.ipv4.ip_forward': '1', 'net.ipv4.conf.net1.promote_secondaries': '1' });
    });

    it("a command runs only in a container of the pod it is meant for (a StatefulSet's old pod has its name)", async () => {
      // mountinfo as the kubelet's mounts show it, in a pod of UID `uid`
      const mounts = async (file: string, uid: string | undefined) => {
        const kubelet = uid
          ? [
              `1047 1030 254:0 /var/lib/kubelet/pods/${uid}/etc-hosts /etc/hosts rw,relatime - ext4 /dev/vda rw`,
              `1048 1032 254:0 /var/lib/kubelet/pods/${uid}/containers/vpc-nat-gw/2eb2 /dev/termination-log rw - ext4 /dev/vda rw`,
            ]
          : [];
        await writeFile(file, [`1030 1000 0:50 / / rw,relatime - overlay overlay rw`, ...kubelet, ''].join('\n'));
        return file;
      };
      const ran = join(root, name, 'ran');
      const touch = { argv: ['sh', '-c', 'cat > "$1"', 'sh', ran], stdin: 'x\n' };
      const mine = await mounts(join(root, name, 'mine'), '22edfa24-d930-4d30-94e6-b417083e5028');
      await local(u().dir, { pod: { uid: '22edfa24-d930-4d30-94e6-b417083e5028', mounts: mine } })(touch);
      assert.equal(await readFile(ran, 'utf8'), 'x\n', 'its own pod: the command runs, stdin whole');
      await rm(ran);
      // another pod's container (the old one of the same name): refused before the command runs
      for (const req of [touch, { argv: ['sh', '-c', 'echo > "$1"', 'sh', ran] }])
        await assert.rejects(
          local(u().dir, { pod: { uid: 'aaaaaaaa-0000-4000-8000-000000000000', mounts: mine } })(req),
          (e) =>
            e instanceof CommandError &&
            e.code === POD_MISMATCH_EXIT &&
            /another pod, not of UID aaaaaaaa-0000-4000-8000-000000000000/.test(e.message),
        );
      await assert.rejects(readFile(ran), { code: 'ENOENT' }, 'the refused command did not run');
      // a UID that is a prefix of the pod's is another pod's
      await assert.rejects(
        local(u().dir, { pod: { uid: '22edfa24', mounts: mine } })({ argv: ['true'] }),
        (e) => e instanceof CommandError && e.code === POD_MISMATCH_EXIT,
      );
      // no kubelet mounts to tell by, or none readable: the command runs as before, status kept
      const none = await mounts(join(root, name, 'none'), undefined);
      for (const m of [none, join(root, name, 'no-such-file')])
        await assert.rejects(
          local(u().dir, { pod: { uid: 'u', mounts: m } })({ argv: ['sh', '-c', 'exit 5'] }),
          (e) => e instanceof CommandError && e.code === 5,
        );
    });

    it('the userland check passes with the dataplane tools beside it', async () => {
      const r = await local(u().full, { raw: true })({ argv: USERLAND_PROBE_ARGV });
      assert.deepEqual(userlandProblems(r.stdout), []);
    });

    it('the userland check names what is missing, and an ip that is not iproute2', async () => {
      const { conntrack: _c, 'iptables-legacy-restore': _r, 'iptables-nft-save': _s, ...rest } = DATAPLANE;
      const dir = await linkDir(join(root, name, 'lacking'), {
        ...Object.fromEntries(TOOLS.filter((t) => t !== 'timeout').map((t) => [t, join(u().dir, t)])),
        ...rest,
        ip: BUSYBOX, // BusyBox's ip applet: no -j
      });
      const r = await local(dir, { raw: true })({ argv: USERLAND_PROBE_ARGV });
      assert.deepEqual(
        userlandProblems(r.stdout).map((p) => p.tool),
        ['timeout', 'conntrack', 'iptables', 'ip'],
      );
    });
  });
}
