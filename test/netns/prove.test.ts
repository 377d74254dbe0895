// `natops preview --prove` on a real repository: base and head each built in a throwaway lab of
// their own (namespaces pv<8 hex>), a host behind every mapping, real packets through each, and
// nothing left behind: after a run, after SIGTERM mid-run, and after SIGKILL mid-run (the next
// prove removes the dead one's lab).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run } from '../../common/exec.ts';
import { natops } from '../helpers/cli.ts';
import { proveLabs, requireNetnsPrerequisites } from '../helpers/lab-harness.ts';
import { push, set, toFiles, type SeedObjects } from '../helpers/manifests.ts';
import { scenarioManifests } from '../helpers/scenario.ts';

const BIN = fileURLToPath(new URL('../../bin/natops.js', import.meta.url));

describe('natops preview --prove: real packets through a throwaway lab of each side', () => {
  let dir = '';
  let work = '';
  const git = (...args: string[]) => run(['git', '-C', work, ...args]);
  async function commit(seed: SeedObjects, message: string, branch: string): Promise<void> {
    await git('checkout', '--quiet', '-B', branch, 'main');
    for (const f of toFiles(seed)) await writeFile(join(work, f.path), f.text);
    await git('add', '-A');
    await git('commit', '--quiet', '-m', message);
  }
  const prove = (head: string, ...more: string[]) =>
    natops(['preview', '--repo', work, '--base', 'main', '--head', head, '--prove', ...more]);
  /** each mapping's lines of the text: "gateway G: MAPPING", "base ...", "head ..." */
  const rows = (text: string) => {
    const out = new Map<string, { base: string; head: string }>();
    const lines = text.split('\n');
    lines.forEach((l, i) => {
      const m = /^ {2}gateway (\S+): (.+)$/.exec(l);
      if (m && lines[i + 1]?.startsWith('    base'))
        out.set(`${m[1]} ${m[2]}`, { base: lines[i + 1]!.trim(), head: lines[i + 2]!.trim() });
    });
    return out;
  };

  before(async () => {
    requireNetnsPrerequisites();
    assert.deepEqual(await proveLabs(), [], 'no prove lab is left from before');
    dir = await mkdtemp(join(tmpdir(), 'natops-prove-'));
    work = join(dir, 'work');
    await run(['git', 'init', '--quiet', '--initial-branch=main', work]);
    await git('config', 'user.email', 't@example.com');
    await git('config', 'user.name', 't');
    const base = await scenarioManifests();
    for (const f of toFiles(base)) await writeFile(join(work, f.path), f.text);
    await git('add', '-A');
    await git('commit', '--quiet', '-m', 'the scenario');
    // the head: the web forward moved 8888 -> 8080
    const moved = await scenarioManifests();
    set(moved.gateway, 'spec.dnatRules.0.externalPort', 8080);
    await commit(moved, 'move the web forward', 'moved');
    // a broken one: a forward to the subnet's gateway address, where no host can answer
    const broken = await scenarioManifests();
    push(broken.gateway, 'spec.dnatRules', {
      eip: '192.168.0.112',
      externalPort: 8081,
      protocol: 'tcp',
      internalIp: '10.0.1.1',
      internalPort: 80,
    });
    await commit(broken, 'a forward to the router', 'broken');
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('every mapping of the seed answers, at base and at head, each as it must: who answered, the source seen', async () => {
    const r = await prove('moved');
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.match(
      r.stdout,
      /packets through a throwaway lab: 8 of 8 probes answered at head \(8 of 8 probes answered at base\)\./,
    );
    const p = rows(r.stdout);
    const at = (mapping: string) => {
      const row = p.get(`ngw ${mapping}`);
      assert.ok(row, `${mapping} in\n${r.stdout}`);
      return row;
    };
    assert.deepEqual(at('port forward tcp 192.168.0.112:8080 -> 10.0.1.10:80'), {
      base: 'base  -',
      head: 'head  answered: h2 answered',
    });
    assert.deepEqual(at('port forward tcp 192.168.0.112:8888 -> 10.0.1.10:80'), {
      base: 'base  answered: h2 answered',
      head: 'head  -',
    });
    assert.equal(at('port forward udp 192.168.0.112:5353 -> 10.0.1.10:53').head, 'head  answered: h2 answered');
    assert.match(at('port forward tcp 192.168.0.112:2222 -> 10.0.2.10:9000').head, /^head {2}answered: h\d answered$/);
    assert.equal(at('floating IP 192.168.0.111 -> 10.0.1.5 (in)').head, 'head  answered: h1 answered');
    assert.equal(
      at('floating IP 192.168.0.111 -> 10.0.1.5 (out)').head,
      'head  answered: ext answered, seeing 192.168.0.111',
    );
    assert.equal(at('SNAT 10.0.1.0/24 -> 192.168.0.112').head, 'head  answered: ext answered, seeing 192.168.0.112');
    assert.equal(at('SNAT 10.0.2.0/24 -> 192.168.0.112').head, 'head  answered: ext answered, seeing 192.168.0.112');
    assert.ok(
      [...p.keys()].some((k) =>
        /^ngw hairpin 10\.0\.1\.\d+ -> 192\.168\.0\.112:8080 \(at base: hairpin 10\.0\.1\.\d+ -> 192\.168\.0\.112:8888\)$/.test(
          k,
        ),
      ),
      [...p.keys()].join('\n'),
    );
    assert.deepEqual(await proveLabs(), [], 'both labs removed');
  });

  it('a mapping no host can stand behind is reported, with why, and the command exits 3', async () => {
    const r = await prove('broken', '--format', 'markdown');
    assert.equal(r.code, 3, `${r.stdout}${r.stderr}`);
    assert.match(
      r.stdout,
      /^\| `ngw` \| `port forward tcp 192\.168\.0\.112:8081 -> 10\.0\.1\.1:80` \| – \| ❌ no host behind it: 10\.0\.1\.1 is subnet sn's gateway \(its VPC router\): no host can stand there \|$/m,
    );
    assert.match(
      r.stdout,
      /^\| `ngw` \| `port forward tcp 192\.168\.0\.112:8888 -> 10\.0\.1\.10:80` \| ✅ h2 answered \| ✅ h2 answered \|$/m,
    );
    assert.deepEqual(await proveLabs(), []);
  });

  it('killed midway: SIGTERM removes its lab; after SIGKILL no probe server lives on, and the next prove removes the lab', async () => {
    /** the prove's probe servers: `natops probe --name ... --while-stdin` of this checkout */
    const servers = async () =>
      (await run(['pgrep', '-f', `${BIN} probe --name`], { okExitCodes: [0, 1] })).stdout.split('\n').filter(Boolean);
    const until = async (what: string, ok: () => Promise<boolean>) => {
      for (let i = 0; i < 400 && !(await ok()); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(await ok(), what);
    };
    const started = async (signal: NodeJS.Signals, when: () => Promise<boolean>) => {
      const child = spawn(
        process.execPath,
        [BIN, 'preview', '--repo', work, '--base', 'main', '--head', 'moved', '--prove'],
        {
          stdio: 'ignore',
        },
      );
      const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
      await until('the prove got that far', when);
      child.kill(signal);
      await exited;
    };
    await started('SIGTERM', async () => (await proveLabs()).length > 0);
    assert.deepEqual(await proveLabs(), [], 'SIGTERM: the prove removed its lab before it ended');
    // SIGKILL once its probe servers listen: they end with it (their stdin closes)
    await started('SIGKILL', async () => (await servers()).length > 0);
    await until('no probe server outlives the prove', async () => (await servers()).length === 0);
    assert.ok((await proveLabs()).length, 'SIGKILL leaves the lab (nothing runs to remove it)');
    const r = await prove('moved');
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.deepEqual(await proveLabs(), [], 'the next prove removed the dead one');
  });
});
