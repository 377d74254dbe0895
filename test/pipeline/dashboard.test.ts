// The dashboard in a real browser (Debian's Chromium driven by playwright-core): what an operator
// sees at /admin/commits and in bull-board, and that nothing shows without the password.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { gatewayTarget } from '../../state/records.ts';
import { conditionStatus } from '../../state/statuses.ts';
import { branchPush, DASHBOARD, startApp, type TestApp } from '../helpers/app.ts';

const CHROMIUM = '/usr/bin/chromium';
// Flags for a machine without outside network (see the env notes): no background connections.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('dashboard in a real browser', () => {
  let t: TestApp;
  let browser: Browser;
  const delivery = randomUUID();
  const sha = 'c0ffee'.padEnd(40, '0');

  before(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`the dashboard test needs ${CHROMIUM}: run scripts/install-deps.sh (Debian package chromium)`);
    t = await startApp();
    const answer = await t.deliver('push', branchPush(), { id: delivery });
    assert.equal(answer.status, 202);
    await t.app.statuses.publish([
      conditionStatus(gatewayTarget('ngw'), {
        ready: 'False',
        reason: 'Failed',
        message: 'dnat failed: <script>alert(1)</script>',
        sha,
        gen: 3,
        cause: 'push',
        at: Date.now(),
        url: `${t.app.url}/admin/queues/queue/plan/delivery-${delivery}`,
      }),
    ]);
    await t.app.records.update(gatewayTarget('ngw'), () => ({
      name: 'ngw',
      pending: ['dnat'],
      observedGen: 3,
      condition: {
        ready: 'False',
        reason: 'Failed',
        message: 'dnat failed: <img src=x onerror=alert(2)>',
        sha,
        gen: 3,
        cause: 'push',
        at: Date.now(),
      },
    }));
    await t.app.store.recordRepair({ at: Date.now(), target: 'ngw', sha, gen: 3, what: ['gateway ngw is missing'] });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  it("shows the gateways' records, commits with their statuses (escaped), repairs and deliveries", async () => {
    const page = await (await browser.newContext({ httpCredentials: DASHBOARD })).newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    const response = await page.goto(`${t.app.url}/admin/commits`);
    assert.equal(response?.status(), 200);
    const commits = await page.locator('#commits').innerText();
    assert.match(commits, /c0ffee000000/);
    assert.match(commits, /natops\/ngw\s+failure\s+dnat failed: <script>alert\(1\)<\/script>/);
    assert.match(commits, /natops\s+failure\s+1 of 1 failed: natops\/ngw/);
    assert.match(
      await page.locator('#gateways').innerText(),
      /ngw\s+False\s+Failed\s+dnat failed: <img src=x onerror=alert\(2\)>\s+-\s+-\s+dnat/,
    );
    assert.deepEqual(dialogs, [], 'a status description ran as script');
    assert.match(await page.locator('#repairs').innerText(), /ngw.*gateway ngw is missing/s);
    assert.match(
      await page.locator('#deliveries').innerText(),
      new RegExp(`${delivery}\\s+push\\s+refs/heads/main\\s+queued plan of`),
    );
  });

  it('lists every natops queue in bull-board and opens the job a status links to', async () => {
    const page = await (await browser.newContext({ httpCredentials: DASHBOARD })).newPage();
    await page.goto(`${t.app.url}/admin/queues`);
    for (const name of Object.keys(t.app.queues.byName))
      await page.getByText(name, { exact: true }).first().waitFor({ timeout: 15_000 });
    await page.goto(`${t.app.url}/admin/commits`);
    await page.getByRole('link', { name: /dnat failed/ }).click();
    await page.waitForURL(/\/admin\/queues\/queue\/plan\/delivery-/);
    await page.getByText(`delivery-${delivery}`).first().waitFor({ timeout: 15_000 });
  });

  it('shows nothing without the password', async () => {
    // Headless Chromium turns a 401 with a challenge into a navigation error; the context's own
    // requests (same cookies, no credentials) show the answer itself.
    const context = await browser.newContext();
    await assert.rejects(
      context.newPage().then((p) => p.goto(`${t.app.url}/admin/commits`)),
      /ERR_INVALID_AUTH_CREDENTIALS/,
    );
    for (const path of ['/admin/commits', '/admin/queues', '/admin/queues/api/queues']) {
      const response = await context.request.get(`${t.app.url}${path}`);
      assert.equal(response.status(), 401, path);
      assert.doesNotMatch(await response.text(), /c0ffee|natops\/ngw/);
    }
  });
});
