// The webhook's pure decision: what each verified delivery gets answered, and when it plans.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyDelivery } from '../../functions/webhook.ts';
import { branchPush } from '../helpers/app.ts';

const push = (over: Record<string, unknown> = {}) => JSON.stringify({ ...branchPush(), ...over });
const decide = (event: string, body: string) => classifyDelivery({ id: 'd1', event, body, contentType: 'application/json' }, { branch: 'main' });

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
    for (const ref of ['refs/heads/../main', 'refs/heads/ma\u0000in', 'refs/heads/ma\nin', 'refs/heads/a b', 'refs/heads/x.lock', 'refs/heads/main/', 'refs/heads//main']) {
      const d = decide('push', push({ ref }));
      assert.equal(d.status, 400, ref);
      assert.equal(d.plan, undefined);
    }
  });

  it('refuses form-encoded payloads with how to fix the hook, and deliveries from another repository', () => {
    const form = classifyDelivery({ id: 'd', event: 'push', body: 'payload=%7B%7D', contentType: 'application/x-www-form-urlencoded' }, { branch: 'main' });
    assert.equal(form.status, 415);
    assert.match(form.outcome, /set the webhook's content type to application\/json/);
    const other = classifyDelivery({ id: 'd', event: 'push', body: push(), contentType: 'application/json' }, { branch: 'main', repository: 'natops/gitops' });
    assert.deepEqual([other.status, other.plan], [400, undefined]);
    assert.match(other.outcome, /natops tracks natops\/gitops/);
  });
});
