// Randomized interleavings of the whole GitOps loop (real redis-server, Git, worker processes,
// namespaces, packets): each sequence comes from a seed and mixes pushes, reverts, invalid
// commits, late and duplicate deliveries, worker SIGKILLs and a Redis restart; afterwards what
// is live in every gateway must be what the newest commit says (an invalid gateway: the newest
// valid state), and the newest commit's statuses must say so. See test/helpers/interleave.ts.
//
//   NATOPS_INTERLEAVINGS=100 node --import tsx --test test/pipeline/interleavings.test.ts   # more sequences
//   NATOPS_INTERLEAVING_SEED=1234 node --import tsx --test test/pipeline/interleavings.test.ts  # one seed again
import { randomInt } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { seedObjects } from '../helpers/manifests.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';
import { generateSequence, Interleaver } from '../helpers/interleave.ts';

function seeds(): number[] {
  const one = process.env.NATOPS_INTERLEAVING_SEED;
  if (one !== undefined && one !== '') {
    const seed = Number(one);
    if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32)
      throw new Error(`NATOPS_INTERLEAVING_SEED must be an integer 0..2^32-1, not ${JSON.stringify(one)}`);
    return [seed];
  }
  // ten fresh seeds a run (about 5 s each): CI runs often, so the seeds tried add up across runs
  const count = Number(process.env.NATOPS_INTERLEAVINGS ?? 10);
  if (!Number.isInteger(count) || count < 1)
    throw new Error(
      `NATOPS_INTERLEAVINGS must be a positive integer, not ${JSON.stringify(process.env.NATOPS_INTERLEAVINGS)}`,
    );
  return Array.from({ length: count }, () => randomInt(2 ** 32));
}

describe('randomized interleavings: the newest commit is what is live (real Redis, Git, workers, namespaces)', () => {
  let p: PipelineHarness;
  let il: Interleaver;

  before(async () => {
    p = await PipelineHarness.create();
    il = await Interleaver.create(p, await seedObjects());
  });
  after(async () => {
    await il?.stop();
    await p?.cleanup();
  });

  for (const [i, seed] of seeds().entries()) {
    const seq = generateSequence(seed);
    it(`sequence ${i + 1}, seed ${seed}: ${seq.steps.length} steps`, async (t) => {
      const { ms, log } = await il.run(seq);
      t.diagnostic(`seed ${seed}: ${ms} ms`);
      for (const line of log) t.diagnostic(line);
    });
  }
});
