// A Redis that is not up yet (a pod starting beside it) or goes away: ioredis retries every few
// hundred ms and each attempt is an 'error'. natops logs one warning per outage and one line when
// it is back, not an error per retry (a fresh helm install printed 24 in its first 7 s).
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, outageLog } from '../../common/log.ts';

async function collected() {
  const lines: { level: string; msg: string }[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(l) as { level: string; msg: string });
      done();
    },
  });
  return { lines, log: await createLogger({ destination }) };
}

describe('outageLog', () => {
  it('one warning per outage, however many retries fail, and one line when it is back', async () => {
    const { lines, log } = await collected();
    const redis = outageLog(log, 'redis');
    redis.recovered(); // the first connection: nothing was down
    for (let i = 0; i < 24; i++) redis.failed('connect ECONNREFUSED 10.96.25.222:6379');
    redis.recovered();
    redis.failed('read ECONNRESET');
    redis.failed('connect ECONNREFUSED 10.96.25.222:6379');
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg]),
      [
        ['warn', 'redis unreachable: connect ECONNREFUSED 10.96.25.222:6379 (retrying; one line when it is back)'],
        ['info', 'redis reachable again after 24 failed attempts'],
        ['warn', 'redis unreachable: read ECONNRESET (retrying; one line when it is back)'],
      ],
    );
  });
});
