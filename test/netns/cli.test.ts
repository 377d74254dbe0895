// The lab through the command line, as the README's newcomer uses it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { listNamespaces } from '../../runtime/netns/netns.ts';
import { natops } from '../helpers/cli.ts';
import { requireNetnsPrerequisites } from '../helpers/lab-harness.ts';
import { seedObjects, set, writeManifestDir } from '../helpers/manifests.ts';

describe('natops lab, apply and plan on the command line', () => {
  requireNetnsPrerequisites();
  const lab = `c${randomBytes(4).toString('hex')}`;
  const mine = async () => (await listNamespaces()).filter((n) => n.startsWith(`${lab}-`)).sort();
  after(async () => {
    await natops(['lab', 'down', '--lab', lab]);
  });

  it('brings the seed up, serves traffic through it, plans against live, and tears it all down', async () => {
    const up = await natops(['lab', 'up', 'examples/seed', '--lab', lab]);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /created bridge eth1 for underlay eth1/);
    assert.deepEqual(await mine(), [`${lab}-lab`, `${lab}-upstream`, `${lab}-vpc-test-vpc-1`]);

    const apply = await natops(['apply', 'examples/seed', '--lab', lab]);
    assert.equal(apply.code, 0, apply.stderr);
    assert.match(apply.stdout, /^gateway ngw: create\n/m);
    assert.match(apply.stdout, /\+ port forward tcp 192\.168\.0\.112:8888 -> 10\.0\.1\.10:80/);
    assert.ok((await mine()).includes(`${lab}-gw-ngw`));

    for (const [name, net, ip] of [
      ['web', 'sn', '10.0.1.10/24'],
      ['ext', 'external', '192.168.0.50/24'],
    ]) {
      const r = await natops(['lab', 'host', 'add', name!, '--net', net!, '--ip', ip!, '--lab', lab]);
      assert.equal(r.code, 0, r.stderr);
    }
    const bad = await natops(['lab', 'host', 'add', 'x', '--net', 'sn', '--ip', '10.9.0.1/24', '--lab', lab]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /not an address of subnet sn/);

    // A server in web, started through lab exec; the client asks through the port forward.
    const server = natops([
      'lab',
      'exec',
      'web',
      '--lab',
      lab,
      '--',
      process.execPath,
      'bin/natops.js',
      'probe',
      '--name',
      'web',
      '--tcp',
      '80',
    ]);
    let answer = '';
    for (let i = 0; i < 50 && !answer.startsWith('web'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      answer = (
        await natops([
          'lab',
          'exec',
          'ext',
          '--lab',
          lab,
          '--',
          'socat',
          '-T2',
          '-',
          'TCP:192.168.0.112:8888,connect-timeout=1',
        ])
      ).stdout.trim();
    }
    assert.equal(answer, 'web 192.168.0.50');

    const same = await natops(['plan', 'examples/seed', '--lab', lab]);
    assert.equal(same.stdout.trim(), 'gateway ngw: unchanged\n  no changes');
    const seed = await seedObjects();
    set(seed.gateway, 'spec.dnatRules.0.internalPort', 8080);
    const changed = await natops(['plan', await writeManifestDir(seed), '--against', 'live', '--lab', lab]);
    assert.match(
      changed.stdout,
      /^gateway ngw: update\n {2}\+ port forward tcp 192\.168\.0\.112:8888 -> 10\.0\.1\.10:8080\n {2}- port forward tcp 192\.168\.0\.112:8888 -> 10\.0\.1\.10:80\n/,
    );

    const down = await natops(['lab', 'down', '--lab', lab]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(await mine(), []);
    await server;
  });
});
