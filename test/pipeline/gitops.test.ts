// git push -> webhook -> BullMQ -> handlers -> live gateway, with real Redis, real Git and real
// packets. The steps share one lab and one repository and run in order.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { QueueEvents } from 'bullmq';
import { notifyPush } from '../../gitops/hook/delivery.ts';
import { inNamespace, namespaceExists } from '../../runtime/netns/netns.ts';
import { HANDLER_KINDS } from '../../dataplane/kinds.ts';
import { bullPrefix } from '../../queue/queues.ts';
import { run } from '../../common/exec.ts';
import {
  gatewayInOwnVpc,
  seedObjects,
  set,
  push as pushItem,
  SEED_VERBATIM,
  toFiles,
  type SeedObjects,
} from '../helpers/manifests.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';
import { natops } from '../helpers/cli.ts';

describe('GitOps loop (real redis-server, git, namespaces)', () => {
  let p: PipelineHarness;
  let seed: SeedObjects;
  /** the worker process running the handlers from the SIGKILL step on */
  let worker: ChildProcess;
  const gwNs = () => p.lab.lab.names.gateway('ngw');

  before(async () => {
    p = await PipelineHarness.create();
    seed = await seedObjects();
    // A second gateway, in a second VPC, so two gateways' jobs run side by side.
    seed.extra.push(
      ...gatewayInOwnVpc({ gateway: 'ngw2', vpc: 'test-vpc-2', subnet: 'sn-b', n: 2, eip: '192.168.0.120' }),
    );
  });
  after(async () => {
    await p?.cleanup();
  });

  it("a push of the seed's manifests makes the gateway live: statuses say success and traffic flows", async () => {
    const sha = await p.push(seed, 'seed');
    const statuses = await p.settled(sha);
    assert.equal(statuses.get('natops')?.state, 'success', JSON.stringify([...statuses.values()]));
    assert.equal(statuses.get('natops/ngw')?.state, 'success');
    assert.match(statuses.get('natops/ngw')!.description, /live: 2 EIPs, 1 floating IP, 1 port forward, 1 SNAT/);
    assert.match(statuses.get('natops/ngw2')!.description, /live: 1 EIP, 0 floating IPs, 1 port forward, 0 SNATs/);
    assert.match(statuses.get('natops/ngw')!.targetUrl!, /\/admin\/queues\/queue\/\w[\w-]*\/g\d+\.ngw\./);
    for (const s of statuses.values()) assert.ok(s.description.length <= 140);
    // the two gateways' chains of jobs ran side by side, not one after the other
    const jobs = (
      await Promise.all(HANDLER_KINDS.map((k) => p.running!.queues.byName[k].getJobs(['completed'])))
    ).flat();
    const span = (gw: string) => {
      const mine = jobs.filter((j) => new RegExp(`^g\\d+\\.${gw}\\.`).test(j.id ?? ''));
      assert.ok(mine.length >= 2, `${gw}: ${mine.length} jobs`);
      return { start: Math.min(...mine.map((j) => j.processedOn!)), end: Math.max(...mine.map((j) => j.finishedOn!)) };
    };
    const [a, b] = [span('ngw'), span('ngw2')];
    assert.ok(a.start < b.end && b.start < a.end, `ngw ran ${JSON.stringify(a)}, ngw2 ${JSON.stringify(b)}`);
    const cli = await natops(['status', sha, '--redis', p.redis.url]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /success\s+natops\/ngw\s+live: 2 EIPs/);
    assert.match(cli.stdout, /\n {2}ngw\s+True\s+Applied\s+[0-9a-f]{7}\/\d+\s+[0-9a-f]{7}\/\d+\s+live: 2 EIPs/);

    const lab = p.lab;
    await lab.host('fip', 'sn', '10.0.1.5/24');
    await lab.host('web', 'sn', '10.0.1.10/24');
    await lab.host('client', 'sn', '10.0.1.20/24');
    await lab.host('ext', 'external', '192.168.0.50/24');
    await lab.host('web2', 'sn-b', '10.0.2.10/24');
    await Promise.all(['fip', 'web', 'client', 'ext', 'web2'].map((h) => lab.serve(h, { tcp: [80, 8080, 9000] })));
    assert.equal(await lab.tcp('ext', '192.168.0.111', 80), 'fip 192.168.0.50', 'floating IP inbound');
    assert.equal(await lab.tcp('fip', '192.168.0.50', 9000), 'ext 192.168.0.111', 'floating IP outbound');
    assert.equal(await lab.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50', 'port forward');
    assert.equal(await lab.tcp('client', '192.168.0.50', 9000), 'ext 192.168.0.112', 'SNAT');
    assert.equal(await lab.tcp('client', '192.168.0.112', 8888), 'web 192.168.0.112', 'hairpin');
    assert.equal(await lab.tcp('ext', '192.168.0.120', 8000), 'web2 192.168.0.50', 'the second gateway');
  });

  it('a push with a changed port forward: the old port stops, the new one works, only the DNAT handler ran', async () => {
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 8889);
    set(seed.gateway, 'spec.dnatRules.0.internalPort', 8080);
    const sha = await p.push(seed, 'move the port forward');
    const statuses = await p.settled(sha);
    assert.equal(statuses.get('natops/ngw')?.state, 'success');
    assert.match(statuses.get('natops/ngw')!.targetUrl!, /\/queue\/dnat\//);
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 8889), 'web 192.168.0.50');
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 8888), undefined);
  });

  it('a push of the seed as printed fails with file and line, and the live rules stay as they were', async () => {
    const live = await p.lab.gatewaySave('ngw');
    const text = await readFile(SEED_VERBATIM, 'utf8');
    const files = [{ path: 'gateway.yaml', text }, ...toFiles(seed).filter((f) => !f.path.includes('nat-gateway'))];
    const sha = await p.push(files, 'the example as printed');
    const statuses = await p.settled(sha);
    const summary = statuses.get('natops')!;
    assert.equal(summary.state, 'failure');
    assert.match(summary.description, /^gateway\.yaml:\d+:\d+ /);
    const cli = await natops(['status', sha, '--redis', p.redis.url]);
    assert.equal(cli.code, 1);
    assert.match(cli.stdout, /failure\s+natops\s+gateway\.yaml:\d+:\d+ /);
    assert.equal(await p.lab.gatewaySave('ngw'), live);
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 8889), 'web 192.168.0.50');
  });

  it('two pushes delivered in reverse order: the newer commit is what is live', async () => {
    const a = await p.push(seed, 'back to valid');
    await p.settled(a);
    // Two commits pushed with the hook off, then delivered newest first.
    await run(['git', `--git-dir=${p.bare}`, 'config', 'core.hooksPath', '/dev/null']);
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 6000);
    const b = await p.commitOnly(seed, 'B');
    await run(['git', '-C', p.work, 'push', '--quiet', 'origin', 'HEAD:main']);
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 7000);
    const c = await p.commitOnly(seed, 'C');
    await run(['git', '-C', p.work, 'push', '--quiet', 'origin', 'HEAD:main']);
    await run(['git', `--git-dir=${p.bare}`, 'config', '--unset', 'core.hooksPath']);

    // Newest first, the older one right behind it while the first is still being planned and applied.
    const [toC, toB] = await Promise.all([
      notifyPush(p.bare, { before: b, after: c, ref: 'refs/heads/main' }),
      new Promise((r) => setTimeout(r, 5)).then(() =>
        notifyPush(p.bare, { before: a, after: b, ref: 'refs/heads/main' }),
      ),
    ]);
    assert.deepEqual([toC.status, toB.status], [202, 202]);
    assert.equal((await p.settled(c)).get('natops/ngw')?.state, 'success');
    // Whichever the planner took first: C planned first makes B "older than the head" and not
    // applied; B planned first is superseded by C (or was live for a moment before C).
    const older = await p.settled(b);
    assert.equal(older.get('natops')?.state, 'success', JSON.stringify([...older.values()]));
    const olderGw = older.get('natops/ngw');
    assert.ok(
      /superseded by newer commit/.test(older.get('natops')!.description) ||
        /superseded by newer commit|^live: /.test(olderGw?.description ?? ''),
      JSON.stringify([...older.values()]),
    );
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 7000), 'web 192.168.0.50');
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 6000), undefined, "B's forward is live while C is the newest");
  });

  it('a worker killed with SIGKILL mid-job: the job is retried after stall detection and the state converges', async () => {
    // Handlers move to worker processes; this process keeps the webhook and the planner.
    await p.running!.close();
    await p.start(['plan']);
    const events = new QueueEvents('dnat', {
      connection: { host: '127.0.0.1', port: p.redis.port, password: new URL(p.redis.url).password },
      prefix: bullPrefix(p.config.prefix),
    });
    events.on('error', () => undefined);
    await events.waitUntilReady();
    const stalled: string[] = [];
    events.on('stalled', ({ jobId }) => stalled.push(jobId));
    let activeJob: string | undefined;
    events.on('active', ({ jobId }) => (activeJob ??= jobId));

    const first = p.startWorkerProcess(HANDLER_KINDS);
    // Enough forwards that applying them takes a while.
    for (let i = 0; i < 3000; i++)
      pushItem(seed.gateway, 'spec.dnatRules', {
        eip: '192.168.0.112',
        externalPort: 30000 + i,
        protocol: 'tcp',
        internalIp: '10.0.1.10',
        internalPort: 80,
      });
    const sha = await p.push(seed, '3000 more port forwards');
    const jobId = await p.until('the DNAT job to start', async () => activeJob, 30_000);
    first.kill('SIGKILL');
    worker = p.startWorkerProcess(HANDLER_KINDS);
    const statuses = await p.settled(sha, 90_000);
    assert.equal(statuses.get('natops/ngw')?.state, 'success', JSON.stringify([...statuses.values()]));
    assert.ok(stalled.includes(jobId), `job ${jobId} was not detected as stalled (stalled: ${stalled.join(', ')})`);
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 32999), 'web 192.168.0.50');
    await events.close();
  });

  it('a worker given SIGTERM mid-job finishes that job before it exits', async () => {
    const events = new QueueEvents('dnat', {
      connection: { host: '127.0.0.1', port: p.redis.port, password: new URL(p.redis.url).password },
      prefix: bullPrefix(p.config.prefix),
    });
    events.on('error', () => undefined);
    await events.waitUntilReady();
    let activeJob: string | undefined;
    events.on('active', ({ jobId }) => (activeJob ??= jobId));
    const stalled: string[] = [];
    events.on('stalled', ({ jobId }) => stalled.push(jobId));
    seed.gateway = (await seedObjects()).gateway; // the 3000 forwards go: another long DNAT job
    const sha = await p.push(seed, 'back to one port forward');
    const jobId = await p.until('the DNAT job to start', async () => activeJob, 30_000);
    const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
    const signalledAt = Date.now();
    worker.kill('SIGTERM');
    assert.equal(await exited, 0);
    const job = await p.running!.queues.byName.dnat.getJob(jobId);
    assert.equal(await job?.getState(), 'completed');
    assert.ok(
      job!.finishedOn! > signalledAt,
      `the job had finished ${signalledAt - job!.finishedOn!} ms before the signal: nothing was shown`,
    );
    assert.deepEqual(stalled, []);
    worker = p.startWorkerProcess(HANDLER_KINDS);
    assert.equal((await p.settled(sha)).get('natops/ngw')?.state, 'success');
    await events.close();
  });

  it('Redis killed and restarted with jobs queued: no job is lost and the pipeline converges', async () => {
    // No handler running: the planner's jobs wait in Redis.
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.kill('SIGTERM');
    await exited;
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 7100);
    const sha = await p.push(seed, 'across a Redis crash');
    await p.until('the DNAT job to be queued', async () => (await p.running!.queues.byName.dnat.getWaitingCount()) > 0);
    await p.redis.stop('SIGKILL');
    // a worker stopped while Redis is gone (helm uninstall removes Redis with natops) stops at
    // once and cleanly: it does not wait for a Redis that will not come back
    const orphan = p.startWorkerProcess(HANDLER_KINDS);
    await new Promise((r) => setTimeout(r, 1500));
    const orphanExit = new Promise<number | null>((resolve) => orphan.once('exit', (code) => resolve(code)));
    const signalled = Date.now();
    orphan.kill('SIGTERM');
    assert.equal(await orphanExit, 0, 'a clean stop, not the forced exit at the deadline');
    assert.ok(Date.now() - signalled < p.config.shutdownMs, 'stopped before its own deadline');
    await p.redis.restart();
    worker = p.startWorkerProcess(HANDLER_KINDS);
    const statuses = await p.settled(sha, 90_000);
    assert.equal(statuses.get('natops/ngw')?.state, 'success');
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 7100), 'web 192.168.0.50');
    const exitedAgain = new Promise((resolve) => worker.once('exit', resolve));
    worker.kill('SIGTERM');
    await exitedAgain;
  });

  it('the resync restores a deleted gateway namespace and rules changed by hand, and records it', async () => {
    // The handlers back in this process, with a resync every second.
    await p.running!.close();
    p.config.resyncMs = 1000;
    await p.start();
    await run(['ip', 'netns', 'del', gwNs()]);
    await p.until(
      'the gateway to be restored',
      async () => (await p.lab.tcp('ext', '192.168.0.112', 7100)) === 'web 192.168.0.50',
    );
    await inNamespace(gwNs(), {
      argv: [(await p.lab.gatewayIptables('ngw')).iptables, '-t', 'nat', '-F', 'SHARED_DNAT'],
    });
    await p.until(
      'the port forward to be restored',
      async () => (await p.lab.tcp('ext', '192.168.0.112', 7100)) === 'web 192.168.0.50',
    );
    const repairs = await p.running!.store.repairs();
    assert.ok(
      repairs.some((r) => r.target === 'ngw' && r.what.some((w) => /missing/.test(w))),
      JSON.stringify(repairs),
    );
    assert.ok(
      repairs.some((r) => r.target === 'ngw' && r.what.some((w) => /SHARED_DNAT/.test(w))),
      JSON.stringify(repairs),
    );
    const cli = await natops(['status', '--redis', p.redis.url]);
    assert.match(cli.stdout, /recent repairs by the resync:\n.* ngw: /);
    // the networks did not drift: a resync that finds nothing records nothing
    assert.ok(!repairs.some((r) => r.target === 'networks'), JSON.stringify(repairs));
  });

  it("deleting a gateway's manifest removes its namespace", async () => {
    const files = toFiles(seed).filter((f) => !f.path.includes('nat-gateway'));
    const sha = await p.push(files, 'remove the gateway');
    const statuses = await p.settled(sha);
    assert.equal(statuses.get('natops/ngw')?.description, 'removed');
    assert.equal(await namespaceExists(gwNs()), false);
    // (the resync's catch-up may plan the push before its delivery does: then it says so)
    assert.match(statuses.get('natops/ngw2')?.description ?? '', /^no change/);
    assert.equal(await p.lab.tcp('ext', '192.168.0.120', 8000), 'web2 192.168.0.50', 'the other gateway stays');
  });
});
