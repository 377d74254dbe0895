// bench/README.md is what `npm run bench:render` makes of the committed bench/results/*.json, so the
// two cannot drift; and a figure without a same-run baseline, or that did not measure, is refused.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Report, type Results, type Series } from '../../bench/report.ts';
import { loadAbout, loadResults, parseResults, README, render } from '../../bench/render.ts';

const results: Results = {
  bench: 'apply',
  machine: { cpu: 'a CPU', cores: 2, memoryGiB: 4, kernel: '6.1.0', os: 'Debian GNU/Linux 12 (bookworm)' },
  node: 'v20.0.0',
  date: '2025-01-01T00:00:00.000Z',
  commit: '0'.repeat(40),
  args: { reps: '3' },
  figures: [
    {
      table: 'a table',
      name: 'natops',
      unit: 'ms',
      n: 3,
      min: 1,
      median: 2,
      max: 3,
      baseline: { name: 'the baseline', n: 3, min: 10, median: 20, max: 30 },
      ratio: 0.1,
    },
  ],
};

describe('bench/README.md', () => {
  it('is the rendering of the committed results (npm run bench:render)', () => {
    assert.equal(render(loadResults(), loadAbout()), readFileSync(README, 'utf8'));
  });

  it('the renderer refuses a figure without a baseline or with a non-finite median', () => {
    assert.equal(parseResults(JSON.stringify(results), 'ok.json').figures.length, 1);
    const { baseline: _, ...bare } = results.figures[0]!;
    assert.throws(
      () => parseResults(JSON.stringify({ ...results, figures: [bare] }), 'x.json'),
      /at figures\[0\]\.baseline$/m,
    );
    // JSON has no NaN (it writes null) and reads 1e999 as Infinity
    for (const median of ['null', '1e999'])
      assert.throws(
        () => parseResults(JSON.stringify(results).replace('"median":2', `"median":${median}`), 'x.json'),
        /at figures\[0\]\.median$/m,
      );
    assert.throws(() => parseResults(JSON.stringify({ ...results, figures: [] }), 'x.json'), /at figures$/m);
  });

  it('the recorder refuses them too', () => {
    const report = new Report('apply', { reps: '3', out: '/tmp/x.json' });
    const baseline = { name: 'the baseline', values: [10, 20, 30] };
    assert.throws(() => report.add('t', 'ms', { name: 'nan', values: [Number.NaN] }, baseline), /at median$/m);
    assert.throws(() => report.add('t', 'ms', { name: 'none', values: [] }, baseline), /at n$/m);
    assert.throws(
      () => report.add('t', 'ms', { name: 'x', values: [1] }, undefined as unknown as Series),
      /has no baseline/,
    );
    assert.throws(
      () => report.add('t', 'ms', { name: 'x', values: [1] }, { name: 'inf', values: [Number.POSITIVE_INFINITY] }),
      /at baseline\.median$/m,
    );
    assert.throws(() => report.results(), /at figures$/m);
    report.add('t', 'ms', { name: 'natops', values: [1, 2, 3] }, baseline);
    const r = report.results();
    assert.deepEqual(r.figures[0]?.baseline, { name: 'the baseline', n: 3, min: 10, median: 20, max: 30 });
    assert.equal(r.figures[0]?.ratio, 0.1);
    assert.deepEqual(r.args, { reps: '3' }, 'where the figures go is not an argument of the run');
  });
});
