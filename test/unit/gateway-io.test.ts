// readGatewayState over a gateway's nft session, with the exec and the session played here: what
// it keeps in the NftablesCache, and when.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ExecRequest } from '../../common/exec.ts';
import { emptyMappings, nftablesProbe, nftLine } from '../../dataplane/nftables.ts';
import { NftablesCache, readGatewayState } from '../../runtime/gateway-io.ts';
import type { NftSession } from '../../runtime/nft-session.ts';

const SAVE =
  '*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n';

/** The read script's output for the sections it names, each a save of an empty nat table. */
async function script(req: ExecRequest) {
  const sections = [...req.argv.join(' ').matchAll(/#natops-read (\S+)\\n'; printf/g)].map((m) => m[1]!);
  const out = sections.map((s) => `\n#natops-read ${s}\n${SAVE}\n#natops-read-exit ${s} 0\n`).join('');
  const err = sections.map((s) => `\n#natops-read ${s}\n`).join('');
  return { stdout: out, stderr: err, code: 0 };
}

describe('reading nat through the nft session', () => {
  it('never makes a kept table look read afresh when it ages out meanwhile', async () => {
    const cache = new NftablesCache(100);
    const table = { nat: emptyMappings(), intact: true, revision: 9 };
    cache.set('gw', table, Date.now() - 90);
    cache.forgetIptables('gw');
    const kept = cache.get('gw');
    const probe = nftablesProbe(9);
    const { line, columns } = nftLine(probe.payload);
    // the probe holds: only its last command (revision 0) fails; the answer takes 30 ms
    const session = {
      target: 'gw',
      transact: async () => {
        await new Promise((r) => setTimeout(r, 30));
        return `Error: Could not process rule: No such file or directory\n${line}\n${' '.repeat(columns[1]! + 36)}^\n`;
      },
    } as unknown as NftSession;
    const state = await readGatewayState(script, ['nat'], { cache, key: 'gw', session: () => session });
    assert.equal(state.nftables, kept, 'the probe held: the kept table is the reading');
    const readAt = cache.readAt('gw');
    assert.ok(readAt === undefined || Date.now() - readAt >= 90, `the entry is ${Date.now() - (readAt ?? 0)} ms old`);
  });
});
