// The webhook's pure decision: what each verified delivery gets answered, and when it plans.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyDelivery, type Tracked } from '../../functions/webhook.ts';
import { branchPush, examplePayloads } from '../helpers/app.ts';

const push = (over: Record<string, unknown> = {}) => JSON.stringify({ ...branchPush(), ...over });
const decide = (event: string, body: string) =>
  classifyDelivery({ id: 'd1', event, body, contentType: 'application/json' }, { branch: 'main' });

describe('the webhook decides (pure)', () => {
  it("plans GitHub's example push to the tracked branch, with the delivery id as the dedupe key", () => {
    const d = decide('push', push());
    assert.equal(d.status, 202);
    assert.equal(d.plan?.delivery, 'd1');
    assert.equal(d.plan?.branch, 'main');
    assert.match(d.outcome, /^queued plan of [0-9a-f]{7}$/);
  });

  it('answers ping, ignores other events, tags, other branches and deletions without planning', () => {
    assert.deepEqual(decide('ping', '{}'), { status: 200, outcome: 'pong' });
    assert.equal(decide('issues', '{}').plan, undefined);
    for (const over of [{ ref: 'refs/tags/v1' }, { ref: 'refs/heads/dev' }, { deleted: true }]) {
      const d = decide('push', push(over));
      assert.deepEqual([d.status, d.plan], [202, undefined], JSON.stringify(over));
    }
  });

  it('refuses bodies that are not JSON or not a push, and refs git would never send', () => {
    assert.deepEqual(decide('push', '{"ref":'), { status: 400, outcome: 'body is not JSON' });
    assert.equal(decide('push', '[]').status, 400);
    assert.equal(decide('push', push({ after: 'nope' })).status, 400);
    for (const ref of [
      'refs/heads/../main',
      'refs/heads/ma\u0000in',
      'refs/heads/ma\nin',
      'refs/heads/a b',
      'refs/heads/x.lock',
      'refs/heads/main/',
      'refs/heads//main',
    ]) {
      const d = decide('push', push({ ref }));
      assert.equal(d.status, 400, ref);
      assert.equal(d.plan, undefined);
    }
  });

  it('refuses form-encoded payloads with how to fix the hook, and deliveries from another repository', () => {
    const form = classifyDelivery(
      { id: 'd', event: 'push', body: 'payload=%7B%7D', contentType: 'application/x-www-form-urlencoded' },
      { branch: 'main' },
    );
    assert.equal(form.status, 415);
    assert.match(form.outcome, /set the webhook's content type to application\/json/);
    const other = classifyDelivery(
      { id: 'd', event: 'push', body: push(), contentType: 'application/json' },
      { branch: 'main', repository: 'natops/gitops' },
    );
    assert.deepEqual([other.status, other.plan], [400, undefined]);
    assert.match(other.outcome, /natops tracks natops\/gitops/);
  });
});

describe('pull requests (pure)', () => {
  const example = (action: string) => examplePayloads('pull_request').find((p) => p.action === action)!;
  // GitHub's examples are pull requests into master; natops tracks main here.
  const into = (action: string, over: Record<string, unknown> = {}) => {
    const p = structuredClone(example(action)) as { pull_request: { base: { ref: string } } } & Record<string, unknown>;
    p.pull_request.base.ref = 'main';
    return JSON.stringify({ ...p, ...over });
  };
  const pr = (body: string, tracked: Partial<Tracked> = {}) =>
    classifyDelivery(
      { id: 'd2', event: 'pull_request', body, contentType: 'application/json' },
      { branch: 'main', previews: true, ...tracked },
    );

  it("queues a preview of GitHub's example opened and synchronize events, with head, base and the pull request's time", () => {
    for (const action of ['opened', 'synchronize', 'reopened']) {
      const d = pr(into(action));
      const ex = example(action) as {
        number: number;
        pull_request: { head: { sha: string }; base: { sha: string }; updated_at: string };
      };
      assert.equal(d.status, 202, action);
      assert.deepEqual(
        d.preview && d.preview.action === 'preview'
          ? [d.preview.number, d.preview.head, d.preview.base, d.preview.updatedAt, d.preview.delivery]
          : undefined,
        [ex.number, ex.pull_request.head.sha, ex.pull_request.base.sha, Date.parse(ex.pull_request.updated_at), 'd2'],
        action,
      );
    }
  });

  it('a close marks the preview outdated; an edit previews again only when the base changed; labels and the like do nothing', () => {
    const closed = pr(into('closed'));
    assert.equal(closed.preview?.action, 'close');
    assert.equal(pr(into('opened', { action: 'edited', changes: { title: { from: 'x' } } })).preview, undefined);
    assert.equal(
      pr(
        into('opened', {
          action: 'edited',
          changes: { base: { ref: { from: 'dev' }, sha: { from: 'a'.repeat(40) } } },
        }),
      ).preview?.action,
      'preview',
    );
    for (const action of ['labeled', 'assigned', 'review_requested']) {
      const d = pr(into(action));
      assert.deepEqual([d.status, d.preview], [202, undefined], action);
    }
  });

  it('ignores pull requests into another branch, and all of them when natops does not talk to GitHub; refuses a broken payload', () => {
    const other = pr(JSON.stringify(example('opened')));
    assert.deepEqual([other.status, other.preview], [202, undefined]);
    assert.match(other.outcome, /is into master, not main/);
    const off = pr(into('opened'), { previews: false });
    assert.deepEqual([off.status, off.preview], [202, undefined]);
    assert.match(off.outcome, /when natops talks to GitHub/);
    const broken = pr(into('opened', { number: 'one' }));
    assert.deepEqual([broken.status, broken.preview], [400, undefined]);
    assert.match(broken.outcome, /not a pull_request payload: number/);
    assert.equal(pr(into('opened'), { repository: 'natops/gitops' }).status, 400);
  });
});
