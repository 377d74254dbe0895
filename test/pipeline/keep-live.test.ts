// What a broken push must not break: an invalid gateway keeps answering (its networks
// included), and a document natops cannot attribute (a misspelt kind, no name) refuses the
// commit instead of making its gateway look deleted. And gateways may be called anything,
// even what natops calls its own records. Real Redis, Git, namespaces and packets.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { namespaceExists } from '../../runtime/netns/netns.ts';
import { gatewayInOwnVpc, seedObjects, set, toFiles, unset, type Obj, type SeedObjects } from '../helpers/manifests.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';

describe('broken pushes leave live gateways answering', () => {
  let p: PipelineHarness;
  let seed: SeedObjects;

  /** Every mapping of the seed's gateway answers as it should. */
  const seedAnswers = async () => {
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50', 'port forward');
    assert.equal(await p.lab.tcp('ext', '192.168.0.111', 80), 'fip 192.168.0.50', 'floating IP inbound');
    assert.equal(await p.lab.tcp('client', '192.168.0.50', 9000), 'ext 192.168.0.112', 'SNAT');
  };

  before(async () => {
    p = await PipelineHarness.create();
    seed = await seedObjects();
    const sha = await p.push(seed, 'seed');
    assert.equal((await p.settled(sha)).get('natops')?.state, 'success');
    await p.lab.host('fip', 'sn', '10.0.1.5/24');
    await p.lab.host('web', 'sn', '10.0.1.10/24');
    await p.lab.host('client', 'sn', '10.0.1.20/24');
    await p.lab.host('ext', 'external', '192.168.0.50/24');
    await Promise.all(['fip', 'web', 'client', 'ext'].map((h) => p.lab.serve(h, { tcp: [80, 9000] })));
    await seedAnswers();
  });
  after(async () => {
    await p?.cleanup();
  });

  it('an invalid gateway fails its status and keeps everything it had, its EIP next hops included', async () => {
    const broken = structuredClone(seed);
    set(broken.gateway, 'spec.dnatRules.0.internalIp', '172.16.0.10');
    const sha = await p.push(broken, 'a port forward outside the VPC');
    const statuses = await p.settled(sha);
    assert.equal(statuses.get('natops/ngw')?.state, 'failure');
    assert.match(
      statuses.get('natops/ngw')!.description,
      /^30-nat-gateway\.yaml:\d+:\d+ VpcNatGateway\/ngw spec\.dnatRules\[0\]\.internalIp: /,
    );
    await seedAnswers();
  });

  for (const [what, breakIt] of [
    ['a misspelt kind', (gw: Obj) => set(gw, 'kind', 'VpcNatGatway')],
    ['a document without metadata.name', (gw: Obj) => unset(gw, 'metadata.name')],
  ] as const) {
    it(`${what} refuses the commit with file and line; the gateway stays`, async () => {
      const broken = structuredClone(seed);
      breakIt(broken.gateway);
      const sha = await p.push(broken, what);
      const summary = (await p.settled(sha)).get('natops')!;
      assert.equal(summary.state, 'failure');
      assert.match(summary.description, /^30-nat-gateway\.yaml:\d+:\d+ /);
      assert.equal(await namespaceExists(p.lab.lab.names.gateway('ngw')), true);
      await seedAnswers();
    });
  }

  it('an alias bomb pushed beside the manifests is refused at once with file and line, never retried; the gateway stays', async () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 12; i++)
      levels.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(',')}]`,
      );
    const bomb = {
      path: 'bomb.yaml',
      text: `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n${levels.map((l) => `  ${l}`).join('\n')}\n`,
    };
    const sha = await p.push([...toFiles(seed), bomb], 'an alias bomb');
    const summary = (await p.settled(sha)).get('natops')!;
    assert.equal(summary.state, 'failure');
    assert.match(summary.description, /^bomb\.yaml:\d+:\d+ .*aliases in this document expand to more than/);
    // (the planner publishes its verdict just before its job completes: wait for the job itself)
    const plan = await p.until(
      'the plan job to finish',
      async () => {
        const plans = await p.running!.queues.byName.plan.getJobs(['completed', 'failed']);
        return plans.find((j) => (j.data as { after?: string }).after === sha);
      },
      30_000,
    );
    // BullMQ counts the attempt that completed: one attempt, no retry.
    assert.deepEqual(
      [await plan.getState(), plan.attemptsMade],
      ['completed', 1],
      'the planner took the bomb as an input problem, not a failure to retry',
    );
    await seedAnswers();
  });

  it('gateways called "network", "networks" and "planner" are gateways like any other', async () => {
    const named = structuredClone(seed);
    for (const [gateway, n] of [
      ['network', 2],
      ['networks', 3],
      ['planner', 4],
    ] as const)
      named.extra.push(
        ...gatewayInOwnVpc({ gateway, vpc: `vpc-${n}`, subnet: `sn-${n}`, n, eip: `192.168.0.${120 + n}` }),
      );
    const sha = await p.push(named, 'gateways with reserved-looking names');
    const statuses = await p.settled(sha);
    for (const gw of ['network', 'networks', 'planner'])
      assert.match(
        statuses.get(`natops/${gw}`)?.description ?? '',
        /^live: 1 EIP/,
        JSON.stringify([...statuses.values()]),
      );
    assert.equal(statuses.get('natops:networks')?.state, 'success');
    for (const n of [2, 3, 4]) {
      await p.lab.host(`web${n}`, `sn-${n}`, `10.0.${n}.10/24`);
      await p.lab.serve(`web${n}`, { tcp: [80] });
      assert.equal(await p.lab.tcp('ext', `192.168.0.${120 + n}`, 8000), `web${n} 192.168.0.50`);
    }
    await seedAnswers();
    // Removing them removes them, and only them.
    const back = await p.push(toFiles(seed), 'remove them');
    const after = await p.settled(back);
    // (with every status and the last log lines: a clean-clone run once found no status here at all)
    for (const gw of ['network', 'networks', 'planner'])
      assert.equal(
        after.get(`natops/${gw}`)?.description,
        'removed',
        `${JSON.stringify([...after.values()])}\n${p.logs.slice(-40).join('\n')}`,
      );
    await seedAnswers();
  });
});
