// A commit's check run, pure: one row per gateway while they fit GitHub's 65,535-character
// summary; past that, the failed and pending first and "… and N more", never a summary GitHub
// refuses (a 422 is not retried, so the run would be lost).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkRunContent, SUMMARY_LIMIT } from '../../functions/github/check-run.ts';
import type { CommitStatus } from '../../state/statuses.ts';

const status = (context: string, state: CommitStatus['state'], description: string): CommitStatus => ({
  context,
  state,
  description,
  updatedAt: 0,
});

describe('check run content', () => {
  it('a row per gateway when they fit, in order', () => {
    const c = checkRunContent(
      [
        status('natops', 'failure', '1 of 2 failed: natops/b'),
        status('natops/a', 'success', 'live'),
        status('natops/b', 'failure', 'dnat failed'),
      ],
      [],
    );
    assert.equal(c.conclusion, 'failure');
    assert.equal(
      c.output.summary,
      [
        '**1 of 2 failed: natops/b**',
        '',
        '| | gateway | result |',
        '|---|---|---|',
        '| ✅ | `natops/a` | live |',
        '| ❌ | `natops/b` | dnat failed |',
      ].join('\n'),
    );
  });

  it("a failure's error text stays off the check run: its public description is shown", () => {
    const c = checkRunContent(
      [
        status('natops', 'failure', '1 of 1 failed: natops/b'),
        {
          ...status('natops/b', 'failure', 'dnat failed: iptables-restore: line 3 failed (10.0.0.9 node-a)'),
          publicDescription: "dnat failed; the error is on natops's dashboard",
        },
      ],
      [],
    );
    assert.doesNotMatch(c.output.summary, /iptables-restore|node-a/);
    assert.match(c.output.summary, /dnat failed; the error is on natops's dashboard/);
  });

  it('3,000 gateways: within the limit, the failed and pending first, and how many more', () => {
    const n = 3000;
    const statuses = [
      status('natops', 'failure', `2 of ${n} failed`),
      ...Array.from({ length: n }, (_, i) => {
        const state: CommitStatus['state'] =
          i === n - 1 ? 'failure' : i === n - 2 ? 'pending' : i === 5 ? 'error' : 'success';
        return status(
          `natops/gateway-with-a-long-name-${String(i).padStart(4, '0')}`,
          state,
          `live: ${'x'.repeat(100)}`,
        );
      }),
    ];
    const c = checkRunContent(statuses, [
      { pos: { file: 'a.yaml', line: 1, column: 1 }, resource: '-', field: 'x', message: 'm' },
    ]);
    const summary = c.output.summary;
    assert.ok(summary.length <= SUMMARY_LIMIT, `${summary.length} characters`);
    const rows = summary.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| | gateway'));
    const shown = rows.length - 1;
    assert.ok(shown > 100 && shown < n, `${shown} rows`);
    assert.equal(rows.at(-1), `| | … and ${n - shown} more | see the commit's statuses |`);
    assert.match(rows[0]!, /gateway-with-a-long-name-0005/, 'the error first');
    assert.match(rows[1]!, /gateway-with-a-long-name-2999/, 'then the failure');
    assert.match(rows[2]!, /gateway-with-a-long-name-2998/, 'then the pending');
    assert.ok(summary.endsWith('1 problem in the manifests: see the annotations.'), 'the line after the table stays');
  });
});
